"""Refresh the measured part of ``separation/models/demo_student.json`` from a pareto results file.

    python scripts/student_card_json.py results/student_v3/results.json --prefix student_v3 --version 3

The row ``<prefix>_o4`` gives the headline numbers; every other ``<prefix>_<setting>`` row goes
under ``settings``. The training history in the JSON is kept as it is (edit it by hand).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

CARD = Path(__file__).resolve().parents[1] / "separation" / "models" / "demo_student.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results")
    p.add_argument("--prefix", required=True)
    p.add_argument("--version", type=int, required=True)
    args = p.parse_args()
    results = json.loads(Path(args.results).read_text())
    rows = {r["variant"]: r for r in results["variants"]}
    head = rows[f"{args.prefix}_o4"]
    card = json.loads(CARD.read_text())
    card["version"] = args.version
    card["evaluation"] = {"command": results["meta"]["command"], "tracks": head["num_tracks"],
                          "data": "21 clips x 10 s of the unseen kits BJA_Pacific and The Black Pearl 1.0 (data/heldout_test)",
                          "num_overlap": head["num_overlap"], "machine": results["meta"]["machine"]}
    card["sdr_vs_ground_truth"] = head["sdr"]
    card["sdr_mean_ci95"] = head["sdr_ci"]["mean"]
    card["delta_sdr_vs_teacher_v3"] = head["delta_sdr_vs_teacher"]
    card["delta_sdr_vs_teacher_v3_ci95"] = head["delta_sdr_ci"]["mean"]
    card["speed_x_teacher_o4"] = head["speed_ratio_vs_teacher"]
    card["settings"] = {
        name[len(args.prefix) + 1:]: {"speed_x_teacher_o4": r["speed_ratio_vs_teacher"], "sdr_mean": r["sdr"]["mean"],
                                      "sdr_mean_ci95": r["sdr_ci"]["mean"],
                                      "delta_sdr_vs_teacher_v3": r["delta_sdr_vs_teacher"]["mean"],
                                      "delta_sdr_ci95": r["delta_sdr_ci"]["mean"], "num_overlap": r["num_overlap"],
                                      "precision": r["precision"], "wiener": r.get("wiener")}
        for name, r in rows.items() if name.startswith(args.prefix + "_") and name != f"{args.prefix}_o4"}
    CARD.write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {CARD}")


if __name__ == "__main__":
    main()

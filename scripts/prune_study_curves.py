"""Validation SDR of the prune study's runs (scripts/prune_study.sh), step by step, as JSON + a Markdown table.

    python scripts/prune_study_curves.py --out results/prune_study

Reads the Lightning CSV logs under ``runs/`` (one per pruning step for the pruned runs, one for the
scratch student); steps are counted cumulatively across pruning steps, so every run ends at the same
number of distillation steps. Validation is the rendered validation split (2 kits), utterance SDR
against the stems, as logged by the trainers.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

STEMS = ("kick", "snare", "toms", "hh", "cymbals")
RUNS = {"taylor_iterative_25": "runs/prune-taylor-0.25", "taylor_iterative_50": "runs/prune-taylor-0.5",
        "taylor_iterative_75": "runs/prune-taylor-0.75", "taylor_oneshot_50": "runs/prune-taylor-oneshot-0.5",
        "scratch_c16": "runs/distill-scratch16"}


def validation_rows(metrics: Path, offset: int, label: str) -> list[dict]:
    rows = []
    with metrics.open() as fh:
        for row in csv.DictReader(fh):
            if row.get("val/sdr"):
                rows.append({"step": offset + int(row["step"]) + 1, "phase": label, "sdr": float(row["val/sdr"]),
                             **{f"sdr_{s}": float(row[f"val/sdr_{s}"]) for s in STEMS if row.get(f"val/sdr_{s}")}})
    return rows


def curve(run: Path) -> list[dict]:
    steps = sorted(run.glob("step*/csv/version_*/metrics.csv"))
    if not steps:  # a distillation run: one log
        return validation_rows(sorted(run.glob("csv/version_*/metrics.csv"))[-1], 0, "distill")
    rows, offset = [], 0
    for metrics in steps:
        part = validation_rows(metrics, offset, metrics.parts[-4])
        rows += part
        with metrics.open() as fh:
            offset += max(int(r["step"]) + 1 for r in csv.DictReader(fh) if r["step"])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/prune_study")
    args = p.parse_args()
    curves = {name: curve(Path(path)) for name, path in RUNS.items() if Path(path).is_dir()}
    lines = ["| run | after step | phase | mean | " + " | ".join(STEMS) + " |", "|---|---|---|---|" + "---|" * len(STEMS)]
    for name, rows in curves.items():
        for r in rows:
            stems = " | ".join(f"{r.get(f'sdr_{s}', float('nan')):.2f}" for s in STEMS)
            lines.append(f"| {name} | {r['step']} | {r['phase']} | {r['sdr']:.2f} | {stems} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "validation_curves.json").write_text(json.dumps(curves, indent=1) + "\n")
    (out / "validation_curves.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""End-of-run measurement of an exported model against its teacher, through ``eval.tables.pareto``.

Same runner settings, same audio, same process for both, so the speed ratio is honest; SDR is
museval on the held-out test kits; fidelity is the student's SDR with the teacher's output as
the reference.
"""
from __future__ import annotations

from pathlib import Path

from separation.errors import UserError


def teacher_variant(teacher_desc: dict) -> dict:
    from separation.pretrained import REGISTRY

    model, config = teacher_desc["checkpoint"], teacher_desc.get("config")
    if teacher_desc.get("weights") and model in REGISTRY:  # a local copy of a registry file
        config = config or str(REGISTRY[model].config)
        model = teacher_desc["weights"]
    return {"name": "teacher", "kind": "teacher", "model": str(model), "config": config}


def test_split_dataset(cfg) -> dict:
    data = cfg.data
    if data.kind == "rendered":
        return {"root": str(data.root), "split": "test"}
    test_root = cfg.export.get("test_folder")
    if not test_root:
        raise UserError("export.evaluate needs held-out tracks: set export.test_folder=<folder of tracks> "
                        "or export.evaluate=false.")
    return {"folder": str(test_root)}


def evaluate_export(cfg, paths: dict, teacher_desc: dict | None, command: str | None = None) -> dict:
    """Measure the exported model (and its teacher) and return the model-card fields."""
    from eval.tables.pareto import run_pareto

    runner = {"num_overlap": int(cfg.export.num_overlap), "batch_size": 1}
    own = {"name": "student" if teacher_desc else "model", "kind": "student" if teacher_desc else "teacher",
           "model": str(paths["checkpoint"]), "runner": runner}
    variants = ([{**teacher_variant(teacher_desc), "runner": runner}] if teacher_desc else []) + [own]
    dataset = {**test_split_dataset(cfg), "max_tracks": cfg.export.max_tracks, "max_seconds": cfg.export.max_seconds}
    out = Path(cfg.output_dir) / "eval"
    rows = run_pareto({"dataset": dataset, "out_dir": str(out), "variants": variants,
                       "teacher": variants[0]["name"], "museval": {"jobs": None}, "command": command})
    table = (out / "results.md").read_text()
    print("\n" + table)
    print(f"results: {out}/results.json, {out}/results.csv, {out}/pareto.png")
    mine = rows[-1]
    return {
        "sdr_vs_ground_truth": mine.get("sdr"),
        "sdr_vs_teacher": mine.get("fidelity_sdr"),
        "teacher_sdr_vs_ground_truth": rows[0].get("sdr") if teacher_desc else None,
        "delta_sdr_vs_teacher": mine.get("delta_sdr_vs_teacher") if teacher_desc else None,
        "speed_ratio_vs_teacher": mine.get("speed_ratio_vs_teacher") if teacher_desc else None,
        "seconds_per_audio_minute": mine.get("seconds_per_audio_minute"),
        "evaluation": {"dataset": dataset, "runner": runner, "results_dir": str(out)},
        "results_table": table,
    }

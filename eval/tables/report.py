"""Writing and reading result tables: JSON (full), CSV (flat), Markdown (for the README), PNG."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from separation.atomic_io import atomic_write_text
from separation.audio import read_audio

from ..scoring.stats import fmt_ci

from .tracks import find_tracks


def flatten(row: dict) -> dict:
    """``{"sdr": {"kick": 1}}`` -> ``{"sdr_kick": 1}``; an interval ``{"sdr_ci": {"kick": {"mean",
    "ci", "n"}}}`` keeps its half-width as ``sdr_ci_kick``; the machine collapses to its CPU name."""
    flat = {}
    for key, value in row.items():
        if key == "machine":
            flat["machine_cpu"] = value.get("cpu")
            flat["machine_cores"] = value.get("cores")
            flat["torch"] = value.get("torch")
        elif isinstance(value, dict):
            flat.update({f"{key}_{k}": (v.get("ci") if isinstance(v, dict) else v) for k, v in value.items()
                         if not isinstance(v, dict) or "ci" in v})
        else:
            flat[key] = value
    return flat


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio_cell(row: dict) -> str:
    """The speed ratio; with timing rounds, their median and the range of the per-round ratios."""
    rounds = [x for x in row.get("speed_ratio_rounds") or [] if x is not None]
    if len(rounds) < 2:
        return _fmt(row.get("speed_ratio_vs_teacher"))
    return f"{_fmt(row.get('speed_ratio_vs_teacher'))} ({min(rounds):.2f}–{max(rounds):.2f})"


def markdown_table(rows: list[dict], stems: list[str]) -> str:
    """variant | params | size (tensors as stored) | file (on disk, "–" if made at load time) |
    GFLOP/s-audio | s/min | speed ratio (with timing rounds: median of the per-round ratios, their range) | mean SDR ± 95 % CI | per-stem SDR | ΔSDR vs the teacher,
    mean and per stem, paired over tracks ± 95 % CI | fidelity (mean SDR against the teacher's
    output). Rows from before confidence intervals existed print plain values."""
    head = (["variant", "kind", "params (M)", "size MB", "file MB", "GFLOP / audio s", "s / audio min",
             "speed × teacher", "mean SDR", "Δ mean"] + [f"SDR {s}" for s in stems] + [f"Δ {s}" for s in stems]
            + ["fidelity"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        sdr, delta = r.get("sdr") or {}, r.get("delta_sdr_vs_teacher") or {}
        sdr_ci, delta_ci = r.get("sdr_ci") or {}, r.get("delta_sdr_ci") or {}
        cells = [r["variant"], r.get("kind", ""), _fmt(r["params"] / 1e6 if r.get("params") else None),
                 _fmt(r.get("size_mb"), 1), _fmt(r.get("file_mb"), 1), _fmt(r.get("gflop_per_audio_second"), 1),
                 _fmt(r.get("seconds_per_audio_minute"), 1), _ratio_cell(r),
                 fmt_ci(sdr_ci["mean"]) if "mean" in sdr_ci else _fmt(sdr.get("mean")),
                 fmt_ci(delta_ci["mean"], signed=True) if "mean" in delta_ci else _fmt(delta.get("mean"))]
        cells += [_fmt(sdr.get(s)) for s in stems]
        cells += [fmt_ci(delta_ci[s], signed=True) if s in delta_ci else _fmt(delta.get(s)) for s in stems]
        cells.append(_fmt((r.get("fidelity_sdr") or {}).get("mean")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict], meta: dict, out: str | os.PathLike) -> None:
    """``results.json`` ({"meta", "variants"}), ``results.csv``, ``results.md`` and ``pareto.png``."""
    import pandas as pd

    from .plots import plot_pareto

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps({"meta": meta, "variants": rows}, indent=2, default=str))
    atomic_write_text(out / "results.csv", pd.DataFrame([flatten(r) for r in rows]).to_csv(index=False))
    m = meta.get("machine", {})
    cpu_detail = ", ".join(filter(None, [m.get("cpu_family_model") and f"family/model {m['cpu_family_model']}",
                                         " ".join(m.get("simd") or [])]))
    note = (f"\nMachine: {m.get('cpu')}{f' ({cpu_detail})' if cpu_detail else ''}, {m.get('cores')} cores, torch {m.get('torch')}. "
            f"Tracks: {len(meta.get('tracks', []))} (± = 95 % interval over tracks; Δ paired per track)"
            f"{'' if meta.get('ground_truth', True) else ' (no ground truth: fidelity only)'}. "
            f"Command: `{meta.get('command')}`\n")
    atomic_write_text(out / "results.md", markdown_table(rows, meta.get("stems", [])) + note)
    fig = plot_pareto(rows)
    fig.savefig(out / "pareto.png", dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)


def load_results(results_dir: str | os.PathLike) -> tuple[list[dict], dict]:
    """``(rows, meta)`` from a directory written by :func:`write_tables`."""
    data = json.loads((Path(results_dir) / "results.json").read_text())
    return data["variants"], data["meta"]


def _dataset_root(root: str, results_dir) -> Path:
    """The dataset root as the eval run saw it. A relative root was relative to that run's working
    directory (the repository root, usually), not to a notebook's: look for it above the results."""
    path = Path(root)
    if path.is_absolute() or path.exists():
        return path
    for parent in Path(results_dir).resolve().parents:
        if (parent / path).exists():
            return parent / path
    return path  # find_tracks then says which folder is missing


def listen_signals(results_dir, track: str, stem: str, variants: list[str]) -> dict[str, np.ndarray]:
    """Mixture, reference (if the dataset has it) and each variant's estimate of ``stem`` for one
    track of a :mod:`eval.tables.pareto` output directory, cut to the estimates' length."""
    _, meta = load_results(results_dir)
    dataset = {**meta["dataset"], "root": str(_dataset_root(meta["dataset"]["root"], results_dir)), "max_tracks": None}
    folder = dict(find_tracks(dataset)[0])[track]
    out = {}
    for v in variants:
        out[v] = read_audio(Path(results_dir) / "estimates" / v / track / f"{stem}.wav")[0]
    n = min(a.shape[-1] for a in out.values())
    signals = {"mixture": read_audio(folder / "mixture.wav")[0][:, :n]}
    if (folder / f"{stem}.wav").is_file():
        signals["reference"] = read_audio(folder / f"{stem}.wav")[0][:, :n]
    signals.update({v: a[:, :n] for v, a in out.items()})
    return signals

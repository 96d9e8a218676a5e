"""Where a stem's museval score comes from: its 1-s frames, one row each.

    python -m eval.frames data/heldout_test/test/00017-bja-pacific \\
        results/teacher_v6_segsdr/estimates/teacher_v3_o4/00017-bja-pacific --stems cymbals

museval scores a track by the median of its 1-s frame SDRs. A stem that is loud for one second and
then decays (a crash) has most of its scored frames in the tail, so its score is set by how far
the estimate's error sits under the tail, not under the hit. This table shows per frame the
reference's level, the error's level (reference minus estimate) and their ratio, the frame SDR,
with museval's silent frames marked. Plain SDR without museval's distortion filter
(:func:`eval.scoring.metrics.frame_sdrs`), so it reads a little under museval.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from drumdata import STEMS
from eval.scoring.metrics import frame_sdrs
from eval.scoring.museval_sdr import check_references, load_stem_pair
from separation.atomic_io import atomic_write_text
from separation.errors import AudioError, UserError, exit_on_user_error

FRAME = 44100


def level_db(x: torch.Tensor) -> torch.Tensor:
    """Mean-square level in dBFS of each 1-s frame of ``(C, L)`` -> ``(K,)``; -200 for digital silence."""
    frames = x.unfold(-1, FRAME, FRAME)  # (C, K, FRAME)
    return 10 * torch.log10(frames.pow(2).mean((0, -1)) + 1e-20)


def frame_table(reference_dir: Path, estimate_dir: Path, stems: list[str]) -> dict[str, list[dict]]:
    """Per stem, one row per whole 1-s frame: reference and error level (dBFS), frame SDR, scored."""
    check_references(reference_dir.parent, [reference_dir.name], stems)  # a wrong folder is not "all silent"
    refs, ests = load_stem_pair(reference_dir, estimate_dir, stems)  # museval's loader: (S, C, L) at 44.1 kHz
    if refs.shape[-1] < FRAME:
        raise AudioError(f"{estimate_dir}: {refs.shape[-1]} samples is shorter than one 1-s frame ({FRAME}).")
    table = {}
    for stem, ref, est in zip(stems, torch.from_numpy(refs).double(), torch.from_numpy(ests).double()):
        sdr, scored = frame_sdrs(ref, est, FRAME)
        table[stem] = [{"frame": k, "reference_dbfs": round(float(r), 1), "error_dbfs": round(float(e), 1),
                        "sdr": round(float(s), 2), "scored": bool(ok)}
                       for k, (r, e, s, ok) in enumerate(zip(level_db(ref), level_db(ref - est), sdr, scored))]
    return table


def median_sdr(rows: list[dict]) -> float:
    scored = [r["sdr"] for r in rows if r["scored"]]
    return float(np.median(scored)) if scored else float("nan")


def markdown(table: dict[str, list[dict]]) -> str:
    lines = []
    for stem, rows in table.items():
        lines += [f"**{stem}**: median of scored frames {median_sdr(rows):.2f} dB", "",
                  "| frame (s) | reference dBFS | error dBFS | frame SDR | scored |", "|---|---|---|---|---|"]
        lines += [f"| {r['frame']} | {r['reference_dbfs']:.1f} | {r['error_dbfs']:.1f} | {r['sdr']:.1f} | "
                  f"{'yes' if r['scored'] else 'silent'} |" for r in rows]
        lines.append("")
    return "\n".join(lines)


@exit_on_user_error
def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reference", type=Path, help="track folder with the true stems (kick.wav, ...)")
    p.add_argument("estimate", type=Path, help="folder with the estimated stems of the same track")
    p.add_argument("--stems", default=",".join(STEMS), help="comma-separated, default all five")
    p.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    stems = [s.strip() for s in args.stems.split(",") if s.strip()]
    unknown = sorted(set(stems) - set(STEMS))
    if unknown:
        raise UserError(f"unknown stem(s) {unknown}; the stems are {', '.join(STEMS)}.")
    table = frame_table(args.reference, args.estimate, stems)
    print(markdown(table))
    if args.out:
        atomic_write_text(args.out, json.dumps({"reference": str(args.reference), "estimate": str(args.estimate),
                                                "frames": table}, indent=1))
    return table

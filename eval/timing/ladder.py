"""Speed of a ladder of student shapes beside the teacher: which TFC_TDF_net could run at N x the teacher here.

Timing does not depend on the weights, so every shape of the grid (width ``num_channels = growth``, ``num_scales``,
``num_blocks_per_scale``) is built with random weights from the student's config and timed through the same
runner and backend as a distilled student would be (``openvino:bf16`` by default), on one generated clip, beside the
teacher at its reference setting (the bundled demo teacher, ``num_overlap`` 4, torch fp32) in the same process, so
the ``x teacher`` column is a ratio of neighbours. Whether a shape keeps the teacher's quality is a question for
distillation (``eval.pareto``); this says which shapes are worth distilling for a speed target on this machine::

    python -m eval.ladder_speed --widths 16,24,32 --scales 3,4,5 --blocks 1,2 --seconds 30 --threads 2 \\
        --out results/ladder/amx.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch

from separation.atomic_io import atomic_write_text
from separation.config import ModelSpec
from separation.errors import UserError, exit_on_user_error
from separation.model import TFC_TDF_net

from .benchlib import (FLOP_NOTE, REPO_ROOT, build_model, command_string, machine_info, model_stats, parse_cli,
                       synthetic_mix)
from .measure import benchmark_variants

STUDENT_CONFIG = REPO_ROOT / "separation" / "models" / "demo_student.yaml"
TEACHER = "teacher"


def _log(message: str) -> None:
    print(f"[ladder] {message}", file=sys.stderr)


def shape_name(width: int, scales: int, blocks: int) -> str:
    return f"c{width}_s{scales}_b{blocks}"


def ladder_models(config: str | Path, widths, scales, blocks, seed: int = 0) -> dict[str, torch.nn.Module]:
    """``{shape_name: random-init TFC_TDF_net}`` for every (width, scales, blocks) of the grid."""
    base = ModelSpec.from_yaml(config)
    models = {}
    for width, num_scales, num_blocks in itertools.product(widths, scales, blocks):
        spec = base.replace(model={"num_channels": width, "growth": width, "num_scales": num_scales,
                                   "num_blocks_per_scale": num_blocks})
        torch.manual_seed(seed)
        models[shape_name(width, num_scales, num_blocks)] = TFC_TDF_net(spec).eval()
    return models


def ladder_report(teacher, students: dict, seconds: float, backend: str = "openvino:bf16", student_overlap: int = 1,
                  teacher_overlap: int = 4, threads: int | None = None, teacher_name: str | None = None) -> dict:
    """Every student shape on ``backend`` at ``student_overlap`` and the teacher (torch fp32 at ``teacher_overlap``)
    on the same generated clip in this process. Rows are :func:`benchmark_variants`'s (``speed_ratio_vs_teacher``:
    teacher seconds / row seconds) plus the shape."""
    from separation.backends import prepare_backend, runner_precision

    name, _, precision = backend.partition(":")
    precision = precision or "fp32"
    variants = {TEACHER: teacher}
    per_row = {TEACHER: {"num_overlap": teacher_overlap, "precision": "fp32"}}
    stats = {(TEACHER, teacher.spec.audio.chunk_size, teacher_overlap):
             model_stats(teacher, teacher.spec.audio.chunk_size, teacher_overlap)}
    for shape, model in students.items():
        chunk = model.spec.audio.chunk_size
        stats[(shape, chunk, student_overlap)] = model_stats(model, chunk, student_overlap)  # FLOPs of the torch graph
        variants[shape] = prepare_backend(model, name, threads, precision=precision, log=_log)
        per_row[shape] = {"num_overlap": student_overlap, "precision": runner_precision(name, precision)}
    rows = benchmark_variants(variants, synthetic_mix(seconds), {}, reference_variant=TEACHER,
                              per_variant_kwargs=per_row, stats=stats, progress=True)
    for row in rows:
        row["backend"] = "torch" if row["variant"] == TEACHER else name
        row["backend_precision"] = "fp32" if row["variant"] == TEACHER else precision
        if row["variant"] != TEACHER:
            spec = students[row["variant"]].spec.model
            row.update(width=spec.num_channels, num_scales=spec.num_scales, num_blocks_per_scale=spec.num_blocks_per_scale)
    return {"rows": rows, "teacher": teacher_name, "seconds": seconds, "machine": machine_info(),
            "flop_note": FLOP_NOTE, "command": command_string("eval.ladder_speed")}


COLUMNS = ("shape", "params (M)", "GFLOP / audio s", "s / audio min", "x teacher", "achieved GFLOP/s")


def markdown_table(report: dict) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in sorted(report["rows"], key=lambda r: r["seconds"]):
        achieved = f"{r['achieved_gflops']:.0f}" if r.get("achieved_gflops") else "–"
        lines.append(f"| {r['variant']} | {r['params'] / 1e6:.2f} | {r['gflop_per_audio_second']:.1f} | "
                     f"{r['seconds_per_audio_minute']:.2f} | {r['speed_ratio_vs_teacher']:.1f} | {achieved} |")
    return "\n".join(lines) + "\n"


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{text!r}: give comma-separated whole numbers, e.g. 16,24,32.") from None
    if not values or min(values) < 1:
        raise UserError(f"{text!r}: give at least one value, each >= 1.")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.ladder_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(STUDENT_CONFIG), help="student config the shapes start from "
                   "(default: the demo student's; its STFT front-end and chunk are kept)")
    p.add_argument("--widths", default="16,24,32", help="num_channels = growth")
    p.add_argument("--scales", default="3,4,5", help="num_scales")
    p.add_argument("--blocks", default="1,2", help="num_blocks_per_scale")
    p.add_argument("--teacher", default="drumsep-demo-teacher", help="registry name or checkpoint of the teacher")
    p.add_argument("--backend", default="openvino:bf16", help="BACKEND[:PRECISION] the students run on")
    p.add_argument("--num-overlap", type=int, default=1, help="the students' num_overlap")
    p.add_argument("--teacher-overlap", type=int, default=4)
    p.add_argument("--seconds", type=float, default=30.0, help="length of the generated clip")
    p.add_argument("--threads", type=int, help="torch / runtime threads (default: torch's choice)")
    p.add_argument("--out", help="write the JSON report here (and the table beside it as .md)")
    return p


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    args = parse_cli(build_parser(), argv)
    if args.seconds <= 0:
        raise UserError("--seconds must be positive.")
    if not Path(args.config).is_file():
        raise UserError(f"--config {args.config} does not exist.")
    students = ladder_models(args.config, _ints(args.widths), _ints(args.scales), _ints(args.blocks))
    report = ladder_report(build_model(model=args.teacher), students, args.seconds, args.backend,
                           args.num_overlap, args.teacher_overlap, args.threads, teacher_name=args.teacher)
    table = markdown_table(report)
    print(table, file=sys.stderr)
    text = json.dumps(report, indent=2)
    if args.out:
        atomic_write_text(args.out, text)
        atomic_write_text(Path(args.out).with_suffix(".md"), table)
    print(text)
    return report

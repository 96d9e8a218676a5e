"""Speed of the runner on generated audio: s/min, RTF, peak RSS, FLOPs, a matmul peak, and the
straightforward reference implementation (``eval/timing/reference_runner.py``) in the same run.

All numbers of one report come from one process on one machine, so ratios between them
(runner vs reference, variant vs teacher, achieved vs matmul peak) are meaningful even where
absolute times are not. Usage::

    python -m eval.speed --config separation/models/drumsep_5stems.yaml --seconds 20
    python -m eval.speed --config ... --width 32 --seconds 60 --out results/speed_c32.json
    python -m eval.speed --model drumsep-demo-teacher --seconds 30
    python -m eval.speed --preset seed_cases --out results/seed_cases.json

Without ``--model`` the weights are random: timing does not depend on their values.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from separation.atomic_io import atomic_write_text
from separation.errors import UserError, exit_on_user_error

from .benchlib import (DEFAULT_CONFIG, FLOP_NOTE, REPO_ROOT, build_model, command_string, machine_info,
                       model_stats, parse_cli, runner_for, synthetic_mix)
from .seed_cases import markdown_table, print_table, run_seed_cases
from .measure import benchmark_variants, null_db, time_generated_input, time_reference


def speed_report(model, name: str, seconds: float, sample_rate: int = 44100, channels: int = 2,
                 runner_kwargs: dict | None = None, reference_impl: bool = True) -> dict:
    """The JSON report of one model on generated audio (:func:`time_generated_input`), with the
    reference implementation timed in the same run."""
    row = time_generated_input(model, name, seconds, sample_rate, channels, runner_kwargs,
                               with_reference_impl=reference_impl)
    ref = row.get("reference_impl", {})
    if "seconds" in ref:
        row["speed_ratio_vs_reference_impl"] = ref["seconds"] / row["runner_seconds"]
    row["flop_note"] = FLOP_NOTE
    row["machine"] = machine_info()
    row["command"] = command_string("eval.speed")
    return row


def backend_report(model, name: str, backends: list[str], seconds: float, runner_kwargs: dict,
                   threads: int | None, reference_impl: bool = True, repeats: int = 1,
                   null_floor: bool = False) -> dict:
    """Every backend of ``model`` on the same generated clip in this process: s/audio-min, the
    ratio to the straightforward reference implementation timed in the same run, the null
    against torch fp32, achieved GFLOP/s against the matmul peak, and peak RSS.

    ``repeats`` > 1 times every backend and the reference again in ``repeats - 1`` interleaved
    rounds (backend 1, 2, ..., reference; again): each row's ``seconds`` and derived speeds are then the
    median over rounds, and its ratio to the reference the median of the per-round ratios (each
    round's times are neighbours, so a slow spell of the machine cancels in the ratio).

    ``null_floor`` also runs the model once in float64 (``float64_floor`` in the report, and
    ``null_db_vs_fp64`` in each row): how far each row, torch fp32 included, is from the exact result."""
    from separation.backends import prepare_backend, runner_precision

    mix = synthetic_mix(seconds)
    # "openvino:bf16" / "torch:bf16" = that backend at that precision: OpenVINO runs bf16 itself, the
    # torch backends through the Runner's autocast; a row without one runs at the run's --precision
    named = {b: b.partition(":")[::2] for b in backends}  # "torch:bf16" -> ("torch", "bf16"), "torch" -> ("torch", "")
    variants = {b: prepare_backend(model, name, threads, precision=given or "fp32") for b, (name, given) in named.items()}
    per_row = {b: {"precision": runner_precision(name, given)} for b, (name, given) in named.items() if given}
    chunk = runner_kwargs.get("chunk_size") or model.spec.audio.chunk_size
    shared = model_stats(model, chunk, runner_kwargs["num_overlap"])  # the model's FLOPs, whatever runs it
    stats = {(b, chunk, runner_kwargs["num_overlap"]): shared for b in backends}
    outputs, kwargs = {}, {**runner_kwargs, "chunk_size": chunk}
    rows = benchmark_variants(variants, mix, kwargs, reference_variant="torch", per_variant_kwargs=per_row,
                              stats=stats, outputs=outputs, progress=True)
    reference, kept = {}, {}
    if reference_impl:
        runner = runner_for(model, kwargs)
        reference = time_reference(model, mix, runner, outputs.get("torch", outputs[backends[0]]), seconds, keep=kept)
    # the null's base: the torch row, else the reference implementation (torch fp32, MSST's semantics;
    # the runner's torch output matches it to <= -100 dB in tests/test_runner.py, and bit for bit on the
    # 109 M model in results/backends/full_cpu_o1_streams_null_check.json)
    base, base_name = ((outputs["torch"], "torch backend") if "torch" in outputs else
                       (kept.get("out"), "reference implementation (torch fp32)"))
    for row in rows:
        row["backend"] = row["variant"]
        row["null_db_vs_torch_fp32"] = null_db(outputs[row["variant"]], base) if base is not None else None
        row["null_base"] = base_name if base is not None else None
        if "seconds" in reference:
            row["speed_ratio_vs_reference_impl"] = reference["seconds"] / row["seconds"]
    floor = _float64_floor(model, mix, kwargs, rows, outputs, base, base_name) if null_floor else None
    if repeats > 1:
        _repeat_rounds(model, variants, rows, reference, mix, kwargs, repeats, per_row)
    report = {"model": name, "backends": rows, "reference_impl": reference, "machine": machine_info(),
              "flop_note": FLOP_NOTE, "command": command_string("eval.speed"), "repeats": repeats}
    if floor:
        report["float64_floor"] = floor
    return report


def _float64_floor(model, mix, runner_kwargs: dict, rows: list[dict], outputs: dict, base, base_name: str) -> dict:
    """``--null-floor``: the model once in float64 on the same clip and settings; every row gets
    ``null_db_vs_fp64``, and the report the floor of ``base`` (the rows' null base, named ``base_name``;
    see eval.timing.precision_floor)."""
    from .precision_floor import float64_output

    print("float64 pass for the null floor ...", flush=True)
    exact, seconds = float64_output(model, mix, runner_kwargs)
    for row in rows:
        row["null_db_vs_fp64"] = null_db(outputs[row["variant"]], exact)
    return {"seconds": seconds,
            "torch_null_db_vs_fp64": null_db(base, exact) if base is not None else None,
            "torch_source": (f"{base_name} at {runner_kwargs.get('precision', 'fp32')}" if "torch" in outputs
                             else base_name),
            "note": "null of each row against the model run in float64 through the same Runner; torch fp32's "
                    "own null is the rounding floor that another fp32 summation order is measured against"}


def _repeat_rounds(model, variants: dict, rows: list[dict], reference: dict, mix, runner_kwargs: dict,
                   repeats: int, per_row: dict[str, dict]) -> None:
    """Rounds 2..``repeats`` of :func:`backend_report`; rewrites the rows' timings as medians."""
    from statistics import median

    from .benchlib import time_call
    from .reference_runner import reference_separate

    samples = {row["variant"]: [row["seconds"]] for row in rows}
    ref_samples = [reference["seconds"]] if "seconds" in reference else []
    runners = {b: runner_for(m, {**runner_kwargs, **per_row.get(b, {})}) for b, m in variants.items()}
    plan = next(iter(runners.values()))  # every runner has the same chunk and overlap
    for _ in range(repeats - 1):
        for b, runner in runners.items():
            samples[b].append(time_call(lambda: runner.separate(mix))[1])
        if ref_samples:
            ref_samples.append(time_call(lambda: reference_separate(model, mix, plan.chunk_size, plan.num_overlap))[1])
    if ref_samples:
        reference["seconds_samples"] = ref_samples
        reference["seconds"] = median(ref_samples)
        reference["seconds_per_audio_minute"] = reference["seconds"] / rows[0]["audio_seconds"] * 60
    torch_median = median(samples["torch"]) if "torch" in samples else None
    for row in rows:
        times = samples[row["variant"]]
        old = row["seconds"]
        row["seconds_samples"], row["seconds"] = times, median(times)
        for key in ("seconds_per_audio_minute", "rtf"):
            row[key] *= row["seconds"] / old
        for key in ("achieved_gflops", "fraction_of_matmul_peak"):
            if row.get(key):
                row[key] *= old / row["seconds"]
        if torch_median:
            row["speed_ratio_vs_teacher"] = torch_median / row["seconds"]
        if ref_samples:
            ratios = [r / t for r, t in zip(ref_samples, times)]
            row["speed_ratio_vs_reference_impl_samples"] = ratios
            row["speed_ratio_vs_reference_impl"] = median(ratios)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=["seed_cases"], help="run a named set of cases (see eval.timing.seed_cases)")
    p.add_argument("--config", help=f"MSST YAML (default {DEFAULT_CONFIG.relative_to(REPO_ROOT)})")
    p.add_argument("--model", help="registry name or checkpoint path (default: random weights)")
    p.add_argument("--width", type=int, help="random-init width: num_channels = growth = WIDTH")
    p.add_argument("--name", help="variant name in the report")
    p.add_argument("--seconds", type=float, default=20.0, help="length of the generated clip")
    p.add_argument("--sample-rate", type=int, default=44100)
    p.add_argument("--channels", type=int, default=2)
    p.add_argument("--num-overlap", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--chunk-size", type=int, help="default: the config's audio.chunk_size")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--window", default="msst", choices=["msst", "hann"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--no-reference", action="store_true", help="skip timing eval/timing/reference_runner.py")
    p.add_argument("--repeats", type=int, default=1,
                   help="--backends: time every backend and the reference this many times, interleaved; report medians")
    p.add_argument("--null-floor", action="store_true",
                   help="--backends: also run the model once in float64 and give every row its null against that "
                        "(the fp32 rounding floor, eval.timing.precision_floor)")
    p.add_argument("--backends", help="comma-separated: torch,compile,onnx,openvino[,openvino:bf16] - one row each, one run")
    p.add_argument("--durations", type=float, nargs="+", help="seed_cases: override clip lengths (s)")
    p.add_argument("--out", help="write the JSON report here (it is always printed)")
    return p


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = parse_cli(build_parser(), argv)
    from separation.machine import allocator_setting, keep_freed_memory

    # as the separate CLI does, so these timings hold for it; the reference impl shares the process
    # setting, so ratios compare the code, not the allocator (DRUMSEP_KEEP_FREED_MEMORY=0: glibc's default)
    keep_freed_memory()
    allocator = allocator_setting()
    if args.seconds <= 0:
        raise UserError("--seconds must be positive.")
    if args.null_floor and not args.backends:
        raise UserError("--null-floor compares backends: give --backends too.")
    if args.repeats < 1:
        raise UserError("--repeats must be at least 1.")
    if args.preset == "seed_cases" and args.width is None and not args.model and not args.config:
        args.width = 32  # the preset's default model: c=32 (the size a distilled student aims at)
    model = build_model(args.config, args.model, args.width)
    name = args.name or (Path(args.model).stem if args.model else
                         f"{Path(args.config or DEFAULT_CONFIG).stem}" + (f"_c{args.width}" if args.width else ""))
    runner_kwargs = {"num_overlap": args.num_overlap, "batch_size": args.batch_size, "precision": args.precision,
                     "window": args.window, "device": args.device}
    if args.chunk_size:
        runner_kwargs["chunk_size"] = args.chunk_size
    if args.backends:
        report = backend_report(model, name, [b.strip() for b in args.backends.split(",") if b.strip()],
                                args.seconds, runner_kwargs, args.threads, reference_impl=not args.no_reference,
                                repeats=args.repeats, null_floor=args.null_floor)
    elif args.preset == "seed_cases":
        report = run_seed_cases(model, name, runner_kwargs, durations=args.durations)
        print_table(report["cases"])
    else:
        report = speed_report(model, name, args.seconds, args.sample_rate, args.channels, runner_kwargs,
                              reference_impl=not args.no_reference)
    report["allocator"] = allocator
    text = json.dumps(report, indent=2)
    if args.out:
        atomic_write_text(args.out, text)
        if args.preset == "seed_cases":
            atomic_write_text(Path(args.out).with_suffix(".md"), markdown_table(report["cases"]))
    print(text)


if __name__ == "__main__":
    main()

"""One-process speed comparison on THIS machine: fp32 parent vs pruned vs int8 vs ONNX Runtime.

    python -m compress.bench [--width 32] [--chunk-size 65024] [--seconds 10] [--out bench.json]

Every variant separates the same audio with the same :class:`separation.Runner` settings, one
after another in this process, so the speed ratios compare like with like (absolute numbers
depend on the machine's load; ``machine.loadavg_1min`` says how busy it was). Weights are random
unless ``--checkpoint`` is given: speed does not depend on them, and ``null_db_vs_fp32`` (the
output difference from the fp32 parent) then measures only the numerical effect of the method.
Fields follow the results format of GUIDE.md; ``sdr`` is null (no ground truth here).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from separation import ModelSpec, TFC_TDF_net
from separation.audio import read_audio
from separation.atomic_io import atomic_write_bytes
from separation.checkpoint import load_model
from separation.errors import exit_on_user_error
from separation.pretrained import MODELS_DIR
from eval.timing.benchlib import model_size_mb as size_mb

from .common import crops_from_audio, null_db

VARIANTS = ("fp32", "pruned_uniform50", "pruned_free50", "int8_weight_only", "int8_dynamic", "int8_static", "onnx")


def drum_like(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Deterministic stereo ``(2, L)``: decaying noise bursts and low thumps on a 1/8-second grid.
    Speed does not depend on content; this only keeps the numbers in a realistic range."""
    rng = np.random.default_rng(seed)
    n, hit = int(seconds * sample_rate), int(0.125 * sample_rate)
    t = np.arange(hit) / sample_rate
    out = np.zeros((2, n + hit), np.float32)
    for start in range(0, n, hit):
        burst = rng.uniform(0.05, 0.3) * np.exp(-t / rng.uniform(0.01, 0.08)) * rng.standard_normal((2, hit))
        if rng.random() < 0.3:
            burst += 0.4 * np.exp(-t / 0.1) * np.sin(2 * np.pi * 55 * t)
        out[:, start:start + hit] += burst
    return out[:, :n]


def build_variant(name: str, parent: TFC_TDF_net, calibration, workdir: Path, args):
    """The model callable for ``name`` and the seconds it took to build."""
    from separation.onnx_backend import OnnxSeparator, export_onnx
    from .prune import PruneConfig, prune_
    from .quantize import QuantConfig, quantize_model

    start = time.perf_counter()
    if name == "fp32":
        model = parent
    elif name == "pruned_uniform50":
        model = prune_(copy.deepcopy(parent), PruneConfig("uniform", 0.5))
    elif name == "pruned_free50":
        model = prune_(copy.deepcopy(parent), PruneConfig("free", 0.5))
    elif name.startswith("int8_"):
        flavour = name.removeprefix("int8_")
        model = quantize_model(parent, QuantConfig(flavour, compile=flavour == "static" and not args.no_compile),
                               calibration)
    elif name == "onnx":
        model = OnnxSeparator(export_onnx(parent, workdir / "parent.onnx"), threads=args.threads)
    else:
        raise SystemExit(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    return model, time.perf_counter() - start


def measure(name: str, model, mix: np.ndarray, reference, args, sample_rate: int) -> tuple[dict, np.ndarray]:
    from eval.timing.benchlib import PeakRSS, model_stats, runner_for

    runner = runner_for(model, {"chunk_size": args.chunk_size, "num_overlap": args.num_overlap,
                                "batch_size": args.batch_size})
    warm = time.perf_counter()
    with torch.inference_mode():  # warm-up: first call compiles (static int8) / allocates
        model(torch.zeros(args.batch_size, 2, args.chunk_size))
    warm = time.perf_counter() - warm
    stats = model_stats(model, args.chunk_size, args.num_overlap, sample_rate)
    audio_seconds = mix.shape[-1] / sample_rate
    with PeakRSS() as rss, torch.inference_mode():
        start = time.perf_counter()
        out = runner.separate(mix)
        seconds = time.perf_counter() - start
    if isinstance(model, torch.nn.Module) and not name.endswith("static"):
        stats["size_mb"] = size_mb(model)  # int8 storage, not numel * float size
    row = {"variant": name, **{k: stats[k] for k in ("params", "size_mb", "gflop_per_audio_second")},
           "seconds": round(seconds, 3), "seconds_per_audio_minute": round(seconds / audio_seconds * 60, 3),
           "rtf": round(seconds / audio_seconds, 4), "peak_rss_mb": round(rss.peak_mb, 1),
           "first_call_seconds": round(warm, 2), "num_overlap": args.num_overlap, "batch_size": args.batch_size,
           "chunk_size": args.chunk_size, "precision": "int8" if name.startswith("int8") else "fp32",
           "device": "cpu", "runtime": "onnxruntime" if name == "onnx" else "torch",
           "null_db_vs_fp32": None if reference is None else round(null_db(out, reference), 2),
           "sdr": None, "delta_sdr_vs_teacher": None}
    return row, out


def main(argv: list[str] | None = None) -> None:
    from eval.timing.benchlib import machine_info

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(MODELS_DIR / "drumsep_5stems.yaml"), help="MSST YAML of the parent")
    p.add_argument("--checkpoint", default=None, help="parent weights (default: random, seeded)")
    p.add_argument("--width", type=int, default=32, help="num_channels = growth of the parent (random weights)")
    p.add_argument("--chunk-size", type=int, default=65024)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--num-overlap", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--no-compile", action="store_true", help="static int8 without torch.compile (reference kernels)")
    p.add_argument("--audio", default=None, help="a drum recording to separate (default: a synthetic drum-like signal)")
    p.add_argument("--out", default=None, help="write the JSON here too")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.checkpoint:
        parent = load_model(args.checkpoint, args.config)
    else:
        spec = ModelSpec.from_yaml(args.config).replace(
            model={"num_channels": args.width, "growth": args.width},
            audio={"chunk_size": args.chunk_size, "dim_t": args.chunk_size // 512 + 1})
        parent = TFC_TDF_net(spec).eval()
    sr = parent.spec.audio.sample_rate
    mix = read_audio(args.audio)[0][:, : int(args.seconds * sr)] if args.audio else drum_like(args.seconds, sr)
    calibration = list(crops_from_audio(mix, args.chunk_size, 4, seed=1).split(1))
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            model, build = build_variant(name, parent, calibration, Path(tmp), args)
            row, out = measure(name, model, mix, reference, args, sr)
            row["build_seconds"] = round(build, 2)
            if name == "fp32":
                reference = out
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    base = next((r for r in rows if r["variant"] == "fp32"), None)
    for r in rows:
        r["speedup_vs_fp32"] = round(base["seconds"] / r["seconds"], 3) if base else None
    report = {"machine": machine_info(), "command": " ".join(["python -m compress.bench", *(argv or sys.argv[1:])]),
              "audio": {"seconds": round(mix.shape[-1] / sr, 3), "source": args.audio or "drum_like (synthetic, seed 0)"},
              "parent": {"config": args.config, "checkpoint": args.checkpoint, "width": args.width},
              "results": rows}
    text = json.dumps(report, indent=1)
    if args.out:
        atomic_write_bytes(Path(args.out), text.encode())
    print(text)


if __name__ == "__main__":
    exit_on_user_error(main)()

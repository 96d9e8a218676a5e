"""The full-size model on a GPU through the one runner: backend x precision x batch size sweep.

    python -m eval.gpu_speed --seconds 210 --out results/gpu_speed.json
    python -m eval.gpu_speed --settings torch:bf16:8,compile:bf16:8   # torch.compile fuses norms/GELUs

Timing does not depend on the weights, so random weights of ``drumsep_5stems.yaml`` serve. Each
row is one ``Runner.separate`` of the same track after a warm-up; ``null_db`` is the residual
against fp32 at batch 1 (lower is closer); ``tflops`` is the model's FLOPs (counted once with
``torch.utils.flop_counter``) over the wall time, beside a bf16 matmul peak measured in the same
run. Needs CUDA; prints and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from separation.backends import prepare_backend
from separation.config import ModelSpec
from separation.model import TFC_TDF_net
from separation.pretrained import MODELS_DIR
from separation.runner import Runner

SETTINGS = "torch:fp32:1,torch:fp32:8,torch:bf16:1,torch:bf16:4,torch:bf16:8,torch:bf16:16,torch:fp16:8,torch:fp16:16"


def _sig(x: float, digits: int) -> float:
    """``x`` to ``digits`` significant figures: a fixed number of decimals turns a tiny model's
    0.0004 TFLOP/s (or a slow CPU's 0.04x real time) into 0."""
    return float(f"{x:.{digits}g}")


def parse_settings(text: str) -> list[tuple[str, str, int]]:
    """``"torch:bf16:8,compile:fp32:1"`` -> ``[("torch", "bf16", 8), ("compile", "fp32", 1)]``."""
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        parts = item.split(":")
        if len(parts) != 3 or parts[1] not in ("fp32", "bf16", "fp16") or not parts[2].isdigit():
            raise SystemExit(f"bad setting {item!r}: want BACKEND:PRECISION:BATCH, e.g. torch:bf16:8")
        out.append((parts[0], parts[1], int(parts[2])))
    return out


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak(dtype=torch.bfloat16, n: int = 8192, reps: int = 10) -> float:
    a, b = torch.randn(n, n, device="cuda", dtype=dtype), torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e12


def chunk_flops(model: torch.nn.Module, chunk: int, device: str = "cuda") -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 2, chunk, device=device))
    return float(counter.get_total_flops())


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(MODELS_DIR / "drumsep_5stems.yaml"))
    p.add_argument("--seconds", type=float, default=210.0)
    p.add_argument("--num-overlap", type=int, default=4)
    p.add_argument("--out", default=None)
    p.add_argument("--settings", default=SETTINGS, help="BACKEND:PRECISION:BATCH,... (backends: torch, compile)")
    p.add_argument("--device", default="cuda", help="cuda; cpu only to check the sweep itself")
    args = p.parse_args(argv)
    settings = parse_settings(args.settings)
    device = args.device
    torch.manual_seed(0)
    spec = ModelSpec.from_yaml(args.config)
    model = TFC_TDF_net(spec).to(device).eval()
    chunk = spec.audio.chunk_size
    flops = chunk_flops(model, chunk, device)
    peak = matmul_peak() if device == "cuda" else None
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    mix = (np.random.default_rng(0).standard_normal((2, int(args.seconds * 44100))) * 0.1).astype(np.float32)
    rows, reference, prepared = [], None, {}
    for backend, precision, batch in settings:
        if backend not in prepared:
            prepared[backend] = prepare_backend(model, backend, device=device)
        runner = Runner(prepared[backend], chunk, args.num_overlap, batch, precision, device, progress=False)
        t = time.perf_counter()
        runner.separate(mix[:, : chunk * 2])  # warm-up: compile, cuDNN algorithm search, allocator
        _sync(device)
        first = time.perf_counter() - t
        t = time.perf_counter()
        out = runner.separate(mix)
        _sync(device)
        wall = time.perf_counter() - t
        if reference is None:
            reference = out
        null = 10 * np.log10(np.square(out - reference).sum() / np.square(reference).sum() + 1e-30)
        n_chunks = runner_chunks(runner, mix.shape[-1])
        rows.append({"variant": f"{Path(args.config).stem} (random weights)", "backend": backend,
                     "precision": precision, "batch_size": batch, "num_overlap": args.num_overlap,
                     "warmup_seconds": round(first, 3), "seconds": round(wall, 3),
                     "seconds_per_audio_minute": round(wall / args.seconds * 60, 3),
                     "x_real_time": _sig(args.seconds / wall, 3), "tflops": _sig(flops * n_chunks / wall / 1e12, 4),
                     "bf16_matmul_peak_tflops": None if peak is None else round(peak, 1),
                     "null_db_vs_first_row": round(float(null), 1),
                     "peak_gpu_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
                     "device": name, "torch": torch.__version__})
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return rows


def runner_chunks(runner: Runner, length: int) -> int:
    from separation.runner import ChunkPlan

    return ChunkPlan(length, runner.chunk_size, runner.num_overlap).num_chunks


if __name__ == "__main__":
    main()

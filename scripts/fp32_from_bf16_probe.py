"""Can an AMX CPU's bf16 tiles give fp32-grade output (a null <= -60 dB) faster than fp32 itself?

Issue 12 asks for >= 2x the reference implementation at a null <= -60 dB. On an AMX Xeon, bf16
matmuls run several times faster than fp32 ones, but a single bf16 product rounds its inputs to
8 significant bits (a null near -50 dB). The classic way back to fp32 accuracy is "bf16x3": split
each operand into a high and a low bf16 part and add three products, hi*hi + hi*lo + lo*hi, in an
fp32 accumulator. That only helps if the runtime hands back the fp32 accumulator:

* plain bf16 tensors: torch's CPU matmul and convolution return bf16, which rounds the result
  itself to 8 bits, so no split can recover it (``torch.mm(..., out_dtype=float32)`` has no CPU
  kernel in torch 2.13);
* fp32 tensors under oneDNN's bf16 "fpmath" mode (``torch.backends.mkldnn.matmul.fp32_precision =
  "bf16"``): the result stays fp32, and operands that are already bf16 values convert exactly, so
  the three products are exact. This probe measures whether that is faster than plain fp32.

Prints one JSON report (GFLOP/s counts the useful fp32 FLOPs once, so the x3 variant's rate is
what it delivers). Run on an otherwise idle machine:

    python scripts/fp32_from_bf16_probe.py --threads 2 --out results/backends/fp32_from_bf16_probe.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from eval.timing.benchlib import machine_info  # noqa: E402


def _seconds(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def _null_db(y: torch.Tensor, exact: torch.Tensor) -> float:
    return 20 * math.log10(float((y.double() - exact).norm() / exact.norm()))


def _split(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 ``t`` as hi + lo, each exactly a bf16 value (held in fp32)."""
    hi = t.bfloat16().float()
    return hi, (t - hi).bfloat16().float()


def _set_fpmath(mode: str) -> None:
    torch.backends.mkldnn.matmul.fp32_precision = mode
    torch.backends.mkldnn.conv.fp32_precision = mode


def probe(size: int, channels: int, repeats: int) -> list[dict]:
    """One row per case: a ``size``-square matmul and a 3x3 convolution (``channels`` in and out, 256 x 512),
    each in fp32, as bf16 tensors (the conversion timed too) and under oneDNN's bf16 fpmath."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    ah, al = _split(a)
    bh, bl = _split(b)
    wide_a, wide_b = torch.cat([ah, ah, al], 1), torch.cat([bh, bl, bh], 0)  # one matmul, K three times longer
    cl = torch.channels_last
    x = torch.randn(1, channels, 256, 512).contiguous(memory_format=cl)
    w = (torch.randn(channels, channels, 3, 3) / (3 * channels ** 0.5)).contiguous(memory_format=cl)
    matmul = (2 * size ** 3, a.double() @ b.double())
    conv = (2 * channels * channels * 9 * 256 * 512, F.conv2d(x.double(), w.double(), padding=1))
    cases = [  # (name, fpmath mode, call, (useful FLOPs, float64 result))
        ("matmul fp32", "ieee", lambda: a @ b, matmul),
        ("matmul bf16 tensors (bf16 result)", "ieee", lambda: a.bfloat16() @ b.bfloat16(), matmul),
        ("matmul fp32 under oneDNN bf16 fpmath", "bf16", lambda: a @ b, matmul),
        ("matmul bf16x3 under bf16 fpmath (fp32 result)", "bf16", lambda: wide_a @ wide_b, matmul),
        ("conv3x3 fp32 (channels-last)", "ieee", lambda: F.conv2d(x, w, padding=1), conv),
        ("conv3x3 bf16 tensors (bf16 result)", "ieee",
         lambda: F.conv2d(x.bfloat16().contiguous(memory_format=cl), w.bfloat16().contiguous(memory_format=cl),
                          padding=1), conv),
        ("conv3x3 fp32 under oneDNN bf16 fpmath", "bf16", lambda: F.conv2d(x, w, padding=1), conv),
    ]
    rows = []
    for name, mode, fn, (flop, exact) in cases:
        _set_fpmath(mode)
        seconds = _seconds(fn, repeats)
        rows.append({"variant": name, "fpmath": mode, "seconds": seconds, "gflops": flop / seconds / 1e9,
                     "null_db_vs_fp64": _null_db(fn(), exact)})
    _set_fpmath("ieee")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=2048, help="square matmul size")
    parser.add_argument("--channels", type=int, default=128, help="conv channels (256 x 512 bins x frames)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {"rows": probe(args.size, args.channels, args.repeats), "machine": machine_info(),
              "command": " ".join(["python", "scripts/fp32_from_bf16_probe.py", *(argv or sys.argv[1:])])}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

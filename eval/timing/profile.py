"""Where one chunk's time goes, per op class: ``python -m eval.profile --config separation/models/drumsep_5stems.yaml``.

Runs the model (random weights: timing does not depend on them) on one chunk under
``torch.profiler`` after a warm-up and groups the self CPU time of every op into the classes that
matter for TFC_TDF_net: 3x3 convolutions (and the strided/transposed ones), InstanceNorm, GELU,
the TDF matmuls, the STFT/iSTFT, and the rest. Prints JSON with the machine and the matmul peak
measured in the same run, so achieved GFLOP/s can be read against it.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import torch

from .benchlib import DEFAULT_CONFIG, build_model, command_string, count_chunk_flops, machine_info, matmul_peak_gflops

CLASSES = [("convolution", ("conv", "mkldnn_convolution")), ("instance_norm", ("instance_norm", "batch_norm", "native_batch_norm")),
           ("gelu", ("gelu",)), ("tdf_matmul", ("addmm", "mm", "matmul", "linear", "bmm")),
           ("stft_istft", ("stft", "istft", "fft", "_fft")), ("copies_and_layout", ("copy_", "contiguous", "cat", "clone", "to", "permute", "transpose"))]


def op_class(name: str) -> str:
    name = name.removeprefix("aten::")
    for cls, keys in CLASSES:
        if any(name == k or name.startswith(k) or k in name for k in keys):
            return cls
    return "other"


def profile_chunk(model, chunk_size: int) -> dict:
    x = torch.randn(1, model.spec.audio.num_channels, chunk_size) * 0.1
    with torch.no_grad():
        model(x)  # warm-up: oneDNN primitive caches
        start = time.perf_counter()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            model(x)
        wall = time.perf_counter() - start
    shares = defaultdict(float)
    for event in prof.key_averages():
        shares[op_class(event.key)] += event.self_cpu_time_total / 1e6
    total = sum(shares.values())
    return {"wall_seconds": wall, "seconds_by_class": {k: round(v, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
            "share_by_class": {k: round(v / total, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m eval.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--model", default=None, help="registry name or checkpoint (default: random weights)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args.config, args.model)
    chunk = model.spec.audio.chunk_size
    report = profile_chunk(model, chunk)
    flops = count_chunk_flops(model, chunk)
    gflop = flops / 1e9 if flops else None
    report.update({"chunk_size": chunk, "gflop_per_chunk": gflop,
                   "achieved_gflops": gflop / report["wall_seconds"] if gflop else None,
                   "matmul_peak_gflops": matmul_peak_gflops(), "machine": machine_info(),
                   "command": command_string("eval.profile", argv)})
    text = json.dumps(report, indent=1)
    if args.out:
        from separation.atomic_io import atomic_write_text
        atomic_write_text(args.out, text)
    print(text)
    return report


if __name__ == "__main__":
    main()

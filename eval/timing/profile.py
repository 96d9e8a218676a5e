"""Where one chunk's time goes, per op class: ``python -m eval.profile --config separation/models/drumsep_5stems.yaml``.

Runs the model (random weights: timing does not depend on them) on one chunk under
``torch.profiler`` after a warm-up and groups the self CPU time of every op into the classes that
matter for TFC_TDF_net: 3x3 convolutions (and the strided/transposed ones), InstanceNorm, GELU,
the TDF matmuls, the STFT/iSTFT, and the rest. Prints JSON with the machine and the matmul peak
measured in the same run, so achieved GFLOP/s can be read against it.

``--device cuda [--batch 8 --precision bf16]``: kernel time per class on a GPU, the share of the
wall time the GPU was busy, and the same forward replayed from a CUDA graph.

``--channels-last``: the weights (and so every convolution's output) in NHWC memory format, the
layout cuDNN and oneDNN convolve in; the profile says whether the transposes it saves outweigh
what NHWC costs the InstanceNorms and the TDF matmuls.
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


def _sorted(d: dict, digits: int = 3) -> dict:
    return {k: round(v, digits) for k, v in sorted(d.items(), key=lambda kv: -kv[1])}


def profile_chunk(model, chunk_size: int) -> dict:
    """CPU: wall time of one chunk and the self time of each op class (after a warm-up)."""
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
    return {"wall_seconds": wall, "seconds_by_class": _sorted(shares),
            "share_by_class": _sorted({k: v / total for k, v in shares.items()})}


# Checked in order: cuDNN convolutions are implicit GEMMs ("sm90_xmma_fprop_implicit_gemm_..."), so
# they come before cuBLAS's plain GEMMs ("sm90_xmma_gemm_..."); GELU's kernel is elementwise by name.
KERNEL_CLASSES = [("convolution", ("conv", "implicit_gemm", "fprop", "dgrad", "wgrad", "winograd")),
                  ("gemm", ("gemm", "cutlass", "matmul", "xmma")), ("instance_norm", ("norm", "welford")),
                  ("gelu", ("gelu",)), ("fft", ("fft",)), ("elementwise", ("elementwise", "vectorized", "reduce"))]


def kernel_class(name: str) -> str:
    low = name.lower()
    for cls, keys in KERNEL_CLASSES:
        if any(k in low for k in keys):
            return cls
    return "other"


def profile_chunk_cuda(model, chunk_size: int, batch: int = 8, precision: str = "bf16", repeats: int = 3) -> dict:
    """GPU version: wall time per batch of chunks against the time the GPU was busy (sum of kernel
    times; the gap is launch overhead and host work, which CUDA graphs remove), kernel time per
    class, and the same batch replayed from a captured CUDA graph."""
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    model = model.to("cuda").eval()
    x = torch.randn(batch, model.spec.audio.num_channels, chunk_size, device="cuda") * 0.1

    def forward():
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            return model(x)

    with torch.no_grad():
        for _ in range(2):
            forward()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            forward()
        torch.cuda.synchronize()
        eager = (time.perf_counter() - start) / repeats
        acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        with torch.profiler.profile(activities=acts) as prof:
            forward()
            torch.cuda.synchronize()
        kernels = defaultdict(float)
        for event in prof.key_averages():
            if event.device_type == torch.autograd.DeviceType.CUDA:
                kernels[event.key] += event.self_device_time_total / 1e6
        graph_seconds = None
        try:  # capture after a side-stream warm-up, as torch.cuda.graphs asks
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                forward()
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                forward()
            graph.replay()
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(repeats):
                graph.replay()
            torch.cuda.synchronize()
            graph_seconds = (time.perf_counter() - start) / repeats
        except RuntimeError as err:  # an op that cannot be captured: say so, keep the rest
            graph_seconds = f"capture failed: {err}".splitlines()[0]
    busy = sum(kernels.values())
    classes = defaultdict(float)
    for name, seconds in kernels.items():
        classes[kernel_class(name)] += seconds
    top = sorted(kernels.items(), key=lambda kv: -kv[1])[:15]
    return {"batch": batch, "precision": precision, "eager_seconds_per_batch": eager,
            "gpu_busy_seconds_per_batch": busy, "gpu_busy_share": busy / eager if eager else None,
            "cuda_graph_seconds_per_batch": graph_seconds, "kernel_seconds_by_class": _sorted(classes, 5),
            "top_kernels": [{"kernel": k[:120], "seconds": round(v, 5)} for k, v in top],
            "device": torch.cuda.get_device_name()}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m eval.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--model", default=None, help="registry name or checkpoint (default: random weights)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch", type=int, default=8, help="cuda: chunks per forward")
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"], help="cuda: autocast dtype")
    p.add_argument("--channels-last", action="store_true", help="NHWC weights and activations")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args.config, args.model)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    chunk = model.spec.audio.chunk_size
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA device on this machine")
        report = profile_chunk_cuda(model, chunk, args.batch, args.precision)  # moves the model there
    else:
        report = profile_chunk(model, chunk)
    flops = count_chunk_flops(model, chunk, device=args.device)
    gflop = flops / 1e9 if flops else None
    if args.device == "cuda":
        best = min(t for t in (report["eager_seconds_per_batch"], report["cuda_graph_seconds_per_batch"])
                   if isinstance(t, float))
        report["achieved_tflops"] = gflop * args.batch / best / 1e3 if gflop else None
    else:
        report["achieved_gflops"] = gflop / report["wall_seconds"] if gflop else None
        report["matmul_peak_gflops"] = matmul_peak_gflops()
    report.update({"chunk_size": chunk, "channels_last": args.channels_last, "gflop_per_chunk": gflop, "machine": machine_info(),
                   "command": command_string("eval.profile", argv)})
    text = json.dumps(report, indent=1)
    if args.out:
        from separation.atomic_io import atomic_write_text
        atomic_write_text(args.out, text)
    print(text)
    return report


if __name__ == "__main__":
    main()

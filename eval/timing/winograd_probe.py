"""``python -m eval.timing.winograd_probe``: can OpenVINO or ONNX Runtime run Winograd F(4x4, 3x3) faster than its own 3x3 conv?

Issue 12 asks whether a Winograd path lifts the full model past 2x the reference implementation.
The torch-eager :mod:`separation.winograd` module does not export (the tile gather does not size
in the exporters), so this probe writes three export-friendly formulations of the same arithmetic
and times each inside the chosen runtime (``--runtime openvino`` or ``onnx``) against that runtime's own
direct convolution, on one TFC-like block
(InstanceNorm -> GELU -> 3x3 conv, twice) at the model's widths and spectrogram sizes:

* ``grouped_conv``: input transform B^T d B as two depthwise strided convs (kernels (6,1) and (1,6),
  stride 4), the channel contraction as one batched MatMul over the 36 tile positions, the output
  transform A^T M A as two small MatMuls;
* ``slices_matmul``: tiles gathered by reshape + slice + concat, every transform a MatMul (the one kept
  for OpenVINO: :class:`separation.winograd.WinogradConv2dGraph`, ``--backend openvino-winograd``);
* ``conv_fold``: channels folded into the batch, input transform one 1 -> 36 stride-4 conv, the
  contraction a 36-group 1x1 conv, the output transform a 36 -> 1 stride-4 transposed conv.

All three live in :mod:`separation.winograd` (``GRAPH_FORMULATIONS``). In ONNX Runtime ``conv_fold``
won below 512 channels and ``grouped_conv`` from 512 up (``results/backends/winograd_onnx_probe.json``),
which is what ``--backend onnx-winograd`` exports.

For each it reports the block's time, the ratio to direct, the null against direct (fp32) and
the runtime's own per-op-type profile (OpenVINO's ``PERF_COUNT``, ONNX Runtime's session profiler),
so the JSON says where the time went.
"""
from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from separation.winograd import GRAPH_FORMULATIONS

from .benchlib import command_string, machine_info, parse_cli

FORMULATIONS = GRAPH_FORMULATIONS


class Block(nn.Module):
    """InstanceNorm -> GELU -> 3x3 conv, twice: the TFC part of a TFC_TDF block."""

    def __init__(self, channels: int):
        super().__init__()
        self.norms = nn.ModuleList(nn.InstanceNorm2d(channels, affine=True) for _ in range(2))
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(2))

    def forward(self, x):
        for norm, conv in zip(self.norms, self.convs):
            x = conv(F.gelu(norm(x)))
        return x


def with_winograd(block: Block, formulation: str) -> Block:
    out = Block(block.convs[0].in_channels).eval()
    out.load_state_dict(block.state_dict())
    out.convs = nn.ModuleList(FORMULATIONS[formulation](conv) for conv in block.convs)
    return out


def export(module: nn.Module, x: torch.Tensor, workdir: Path, name: str) -> Path:
    path = workdir / f"{name}.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    return path


def run_onnxruntime(module: nn.Module, x: torch.Tensor, workdir: Path, name: str, threads: int, repeats: int) -> dict:
    """Best of ``repeats`` timed runs in a plain session (all graph optimisations, ``threads`` intra-op
    threads), then one run in a profiling session for the per-op-type split."""
    import onnxruntime as ort

    path = export(module, x, workdir, name)

    def session(profile: bool):
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if profile:
            options.enable_profiling = True
            options.profile_file_prefix = str(workdir / f"{name}_profile")
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    feed = {"x": x.numpy()}
    timed = session(False)
    out = timed.run(None, feed)[0]
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        timed.run(None, feed)
        seconds.append(time.perf_counter() - start)
    profiled = session(True)
    profiled.run(None, feed)
    by_op = collections.Counter()
    for event in json.loads(Path(profiled.end_profiling()).read_text()):
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            by_op[event["args"].get("op_name", "?")] += event["dur"] / 1e6
    top = {k: round(v, 4) for k, v in by_op.most_common(8) if v > 0}
    return {"seconds": min(seconds), "profile_seconds_by_op": top, "output": np.array(out, copy=True)}


def run_openvino(module: nn.Module, x: torch.Tensor, workdir: Path, name: str, threads: int, repeats: int) -> dict:
    import openvino as ov

    path = export(module, x, workdir, name)
    compiled = ov.Core().compile_model(str(path), "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                                                          "INFERENCE_NUM_THREADS": threads, "PERF_COUNT": True})
    request = compiled.create_infer_request()
    xn = x.numpy()
    request.infer({0: xn})
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        request.infer({0: xn})
        seconds.append(time.perf_counter() - start)
    by_op = collections.Counter()
    for p in request.get_profiling_info():
        by_op[f"{p.node_type} ({p.exec_type})"] += p.real_time.total_seconds()
    out = np.array(request.get_output_tensor(0).data, copy=True)
    top = {k: round(v, 4) for k, v in by_op.most_common(8) if v > 0}
    return {"seconds": min(seconds), "profile_seconds_by_op": top, "output": out}


RUNTIMES = {"openvino": run_openvino, "onnx": run_onnxruntime}


def probe(channels: int, height: int, width: int, threads: int, repeats: int, runtime: str = "openvino",
          formulations=tuple(FORMULATIONS)) -> dict:
    torch.manual_seed(0)
    block = Block(channels).eval()
    x = torch.randn(1, channels, height, width)
    run = RUNTIMES[runtime]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        direct = run(block, x, Path(tmp), "direct", threads, repeats)
        reference = direct.pop("output")
        rows["direct"] = direct
        for name in formulations:
            row = run(with_winograd(block, name), x, Path(tmp), name, threads, repeats)
            out = row.pop("output")
            row["null_db_vs_direct"] = float(20 * np.log10(np.linalg.norm(out - reference) / np.linalg.norm(reference)))
            row["speed_ratio_vs_direct"] = direct["seconds"] / row["seconds"]
            rows[name] = row
    return {"runtime": runtime, "channels": channels, "height": height, "width": width,
            "gflop_direct": 2 * 2 * channels * channels * 9 * height * width / 1e9, "rows": rows}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="128x256x1024,256x128x512",
                        help="comma-separated CxHxW of the block input (default: the full model's two largest scales)")
    parser.add_argument("--runtime", choices=sorted(RUNTIMES), default="openvino")
    parser.add_argument("--formulations", default=",".join(FORMULATIONS),
                        help=f"comma-separated subset of {', '.join(FORMULATIONS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="write the JSON here as well")
    args = parse_cli(parser, argv)
    formulations = [f for f in args.formulations.split(",") if f]
    unknown = set(formulations) - set(FORMULATIONS)
    if unknown:
        parser.error(f"unknown formulation(s) {', '.join(sorted(unknown))}; choose from {', '.join(FORMULATIONS)}")
    results = []
    for shape in args.shapes.split(","):
        c, h, w = (int(v) for v in shape.lower().split("x"))
        results.append(probe(c, h, w, args.threads, args.repeats, args.runtime, formulations))
        print(json.dumps({k: results[-1][k] for k in ("channels", "height", "width")} |
                         {n: round(r["seconds"], 3) for n, r in results[-1]["rows"].items()}), flush=True)
    report = {"shapes": results, "machine": machine_info(), "command": command_string("eval.timing.winograd_probe", argv)}
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

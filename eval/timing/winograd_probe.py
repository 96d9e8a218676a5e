"""``python -m eval.timing.winograd_probe``: can OpenVINO run Winograd F(4x4, 3x3) faster than its own 3x3 conv?

Issue 12 asks whether a Winograd path lifts the full model past 2x the reference implementation.
The torch-eager :mod:`separation.winograd` module does not export (the tile gather does not size
in the exporters), so this probe writes three export-friendly formulations of the same arithmetic
and times each inside OpenVINO against OpenVINO's direct convolution, on one TFC-like block
(InstanceNorm -> GELU -> 3x3 conv, twice) at the model's widths and spectrogram sizes:

* ``grouped_conv``: input transform B^T d B as two depthwise strided convs (kernels (6,1) and (1,6),
  stride 4), the channel contraction as one batched MatMul over the 36 tile positions, the output
  transform A^T M A as two small MatMuls;
* ``slices_matmul``: tiles gathered by reshape + slice + concat, every transform a MatMul (the one kept:
  :class:`separation.winograd.WinogradConv2dGraph`, ``--backend openvino-winograd``);
* ``conv_fold``: channels folded into the batch, input transform one 1 -> 36 stride-4 conv, the
  contraction a 36-group 1x1 conv, the output transform a 36 -> 1 stride-4 transposed conv.

For each it reports the block's time, the ratio to direct, the null against direct (fp32) and
OpenVINO's own per-op-type profile (``PERF_COUNT``), so the JSON says where the time went.
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

from separation.winograd import WinogradConv2d, WinogradConv2dGraph

from .benchlib import command_string, machine_info, parse_cli

M, A = 4, 6  # F(4x4, 3x3): 4x4 output tiles from 6x6 input tiles


class _WinogradGraph(WinogradConv2d):
    """Shared: :class:`WinogradConv2d`'s transformed weights ``u`` (P, Cout, Cin) and 1-D transforms
    (``bt``, ``at``), and the output transform as two small MatMuls."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__(conv, m=M)
        self.cin, self.cout = self.in_channels, self.out_channels

    @staticmethod
    def tiles(h: int, w: int) -> tuple[int, int]:
        return -(-h // M), -(-w // M)

    def untile(self, mm: torch.Tensor, b: int, nh: int, nw: int, h: int, w: int) -> torch.Tensor:
        """``(P, Cout, B*nh*nw)`` -> ``(B, Cout, h, w)`` by A^T M A as two MatMuls."""
        y = torch.matmul(self.at, mm.reshape(A, -1)).reshape(M, A, -1)
        y = torch.matmul(self.at, y)  # (m, m, Cout*N)
        y = y.reshape(M, M, self.cout, b, nh, nw).permute(3, 2, 4, 0, 5, 1).reshape(b, self.cout, nh * M, nw * M)
        return y[:, :, :h, :w] if (nh * M, nw * M) != (h, w) else y


class GroupedConvWinograd(_WinogradGraph):
    def __init__(self, conv: nn.Conv2d):
        super().__init__(conv)
        c, bt = self.cin, self.bt
        self.register_buffer("wh", bt.reshape(1, A, A, 1).expand(c, A, A, 1).reshape(c * A, 1, A, 1).contiguous())
        self.register_buffer("ww", bt.reshape(1, A, 1, A).expand(c * A, A, 1, A).reshape(c * A * A, 1, 1, A).contiguous())

    def forward(self, x):
        b, _, h, w = x.shape
        nh, nw = self.tiles(h, w)
        xp = F.pad(x, (1, nw * M - w + 1, 1, nh * M - h + 1))
        v = F.conv2d(xp, self.wh, stride=(M, 1), groups=self.cin)           # (B, C*a, nh, Wp)
        v = F.conv2d(v, self.ww, stride=(1, M), groups=self.cin * A)         # (B, C*P, nh, nw)
        v = v.reshape(b, self.cin, A * A, nh * nw).permute(2, 1, 0, 3).reshape(A * A, self.cin, -1)
        return self.untile(torch.matmul(self.u, v), b, nh, nw, h, w)


class ConvFoldWinograd(_WinogradGraph):
    def __init__(self, conv: nn.Conv2d):
        super().__init__(conv)
        bt, at = self.bt.double(), self.at.double()
        self.register_buffer("win", torch.einsum("iu,jv->ijuv", bt, bt).reshape(A * A, 1, A, A).float())
        self.register_buffer("wout", torch.einsum("ri,sj->ijrs", at, at).reshape(A * A, 1, M, M).float())
        self.register_buffer("u1x1", self.u.reshape(A * A * self.cout, self.cin, 1, 1).clone())

    def forward(self, x):
        b, _, h, w = x.shape
        nh, nw = self.tiles(h, w)
        xp = F.pad(x, (1, nw * M - w + 1, 1, nh * M - h + 1)).reshape(b * self.cin, 1, nh * M + 2, nw * M + 2)
        v = F.conv2d(xp, self.win, stride=M)                                 # (B*C, P, nh, nw)
        v = v.reshape(b, self.cin, A * A, nh, nw).transpose(1, 2).reshape(b, A * A * self.cin, nh, nw)
        mm = F.conv2d(v, self.u1x1, groups=A * A)                            # (B, P*Cout, nh, nw)
        mm = mm.reshape(b, A * A, self.cout, nh, nw).transpose(1, 2).reshape(b * self.cout, A * A, nh, nw)
        y = F.conv_transpose2d(mm, self.wout, stride=M).reshape(b, self.cout, nh * M, nw * M)
        return y[:, :, :h, :w] if (nh * M, nw * M) != (h, w) else y


FORMULATIONS = {"grouped_conv": GroupedConvWinograd, "slices_matmul": WinogradConv2dGraph,
                "conv_fold": ConvFoldWinograd}


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


def run_openvino(module: nn.Module, x: torch.Tensor, workdir: Path, name: str, threads: int, repeats: int) -> dict:
    import openvino as ov

    path = workdir / f"{name}.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
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


def probe(channels: int, height: int, width: int, threads: int, repeats: int) -> dict:
    torch.manual_seed(0)
    block = Block(channels).eval()
    x = torch.randn(1, channels, height, width)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        direct = run_openvino(block, x, Path(tmp), "direct", threads, repeats)
        reference = direct.pop("output")
        rows["direct"] = direct
        for name in FORMULATIONS:
            row = run_openvino(with_winograd(block, name), x, Path(tmp), name, threads, repeats)
            out = row.pop("output")
            row["null_db_vs_direct"] = float(20 * np.log10(np.linalg.norm(out - reference) / np.linalg.norm(reference)))
            row["speed_ratio_vs_direct"] = direct["seconds"] / row["seconds"]
            rows[name] = row
    return {"channels": channels, "height": height, "width": width,
            "gflop_direct": 2 * 2 * channels * channels * 9 * height * width / 1e9, "rows": rows}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="128x256x1024,256x128x512",
                        help="comma-separated CxHxW of the block input (default: the full model's two largest scales)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="write the JSON here as well")
    args = parse_cli(parser, argv)
    results = []
    for shape in args.shapes.split(","):
        c, h, w = (int(v) for v in shape.lower().split("x"))
        results.append(probe(c, h, w, args.threads, args.repeats))
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

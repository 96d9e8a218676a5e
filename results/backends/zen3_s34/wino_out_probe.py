"""One Winograd F(4,3) conv in ONNX Runtime (graph level EXTENDED, as the onnx-winograd sessions run it):
session 32's Fold (transpose to channel-major + 36->1 stride-4 ConvTranspose for the output transform)
against two rewrites of the output side that keep the GEMM's position-major layout: a MatMul
[16 x 36] @ [36, Cout*tiles] (or a 1x1 Conv 36->16) and one transpose of the 16/36-size result.

python results/backends/zen3_s34/wino_out_probe.py THREADS CINxCOUTxHxW ...  -> one JSON line per shape (min of 5
runs, null vs direct); needs /tmp/prof. wino_out_1thread.jsonl: 1 thread, the four shapes of the full model."""
import json, sys, time

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, "/work/main")
from separation.winograd import WinogradConv2dFold


class FoldMatMulOut(WinogradConv2dFold):
    def __init__(self, conv, as_conv=False):
        super().__init__(conv)
        a, m = self.a, self.m
        at = self.at.double()
        self.as_conv = as_conv
        self.register_buffer("wout_mm", torch.einsum("ri,sj->rsij", at, at).reshape(m * m, a * a).to(self.u.dtype))

    def forward(self, x):
        h, w = self._size(x)
        a, m, cin, cout = self.a, self.m, self.in_channels, self.out_channels
        xp, nh, nw = self._padded(x)
        v = F.conv2d(xp.reshape(-1, 1, nh * m + 2, nw * m + 2), self.win, stride=m)
        v = v.reshape(-1, cin, a * a, nh, nw).transpose(1, 2).reshape(-1, a * a * cin, nh, nw)
        mm = F.conv2d(v, self.u1x1, groups=a * a)                      # (B, P*Cout, nh, nw), position-major
        if self.as_conv:
            y = F.conv2d(mm.reshape(-1, a * a, cout * nh, nw), self.wout_mm.reshape(m * m, a * a, 1, 1))
        else:
            y = torch.matmul(self.wout_mm, mm.reshape(-1, a * a, cout * nh * nw))   # (B, m*m, Cout*nh*nw)
        y = y.reshape(-1, m, m, cout, nh, nw).permute(0, 3, 4, 1, 5, 2).reshape(-1, cout, nh * m, nw * m)
        return self._finish(y, h, w)


threads = int(sys.argv[1])
for spec in sys.argv[2:]:
    cin, cout, h, w = map(int, spec.split("x"))
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, 3, padding=1).eval()
    x = torch.randn(1, cin, h, w)
    row = {"shape": f"{cin}->{cout} @ {h}x{w}", "threads": threads}
    ref = None
    for name, mod in [("direct", conv), ("fold", WinogradConv2dFold(conv)),
                      ("fold_matmul_out", FoldMatMulOut(conv)), ("fold_conv1x1_out", FoldMatMulOut(conv, True))]:
        p = f"/tmp/prof/s33_{name}.onnx"
        with torch.no_grad():
            torch.onnx.export(mod, (x,), p, input_names=["x"], dynamo=False)
        o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        s = ort.InferenceSession(p, o, providers=["CPUExecutionProvider"])
        xn = x.numpy(); s.run(None, {"x": xn}); ts = []
        for _ in range(5):
            t = time.perf_counter(); y = s.run(None, {"x": xn})[0]; ts.append(time.perf_counter() - t)
        if ref is None:
            ref = y
        row[name] = round(min(ts), 4)
        if name != "direct":
            row[name + "_null_db"] = round(float(10 * np.log10(((y - ref) ** 2).sum() / (ref ** 2).sum())), 1)
    print(json.dumps(row), flush=True)

"""One Winograd F(4,3) conv in ONNX Runtime (graph level EXTENDED, as the onnx-winograd sessions run it):
session 32's Fold, whose input transform B^T d B is one 1 -> 36 stride-4 6x6 conv per channel (1296 MACs
a tile), against the same with the transform separable: a (6, 1) stride-(4, 1) conv 1 -> 6, then a
6-group (1, 6) stride-(1, 4) conv 6 -> 36 (432 MACs a tile).

python results/backends/zen3_s34/wino_in_probe.py THREADS CINxCOUTxHxW ...  -> one JSON line per shape (min of 5
runs, null vs direct); needs /tmp/prof."""
import json, sys, time

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, "/work/main")
from separation.winograd import WinogradConv2dFold


class FoldSeparableIn(WinogradConv2dFold):
    def __init__(self, conv):
        super().__init__(conv)
        a, bt = self.a, self.bt
        self.register_buffer("win_h", bt.reshape(a, 1, a, 1).clone())                      # (i, 1, u, 1)
        self.register_buffer("win_w", bt.reshape(1, a, 1, a).expand(a, a, 1, a).reshape(a * a, 1, 1, a).contiguous())

    def forward(self, x):
        h, w = self._size(x)
        a, m, cin, cout = self.a, self.m, self.in_channels, self.out_channels
        xp, nh, nw = self._padded(x)
        v = F.conv2d(xp.reshape(-1, 1, nh * m + 2, nw * m + 2), self.win_h, stride=(m, 1))   # (B*Cin, a, nh, Wp)
        v = F.conv2d(v, self.win_w, stride=(1, m), groups=a)                                  # (B*Cin, P, nh, nw)
        v = v.reshape(-1, cin, a * a, nh, nw).transpose(1, 2).reshape(-1, a * a * cin, nh, nw)
        mm = F.conv2d(v, self.u1x1, groups=a * a)
        mm = mm.reshape(-1, a * a, cout, nh, nw).transpose(1, 2).reshape(-1, a * a, nh, nw)
        y = F.conv_transpose2d(mm, self.wout, stride=m).reshape(-1, cout, nh * m, nw * m)
        return self._finish(y, h, w)


threads = int(sys.argv[1])
for spec in sys.argv[2:]:
    cin, cout, h, w = map(int, spec.split("x"))
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, 3, padding=1).eval()
    x = torch.randn(1, cin, h, w)
    row = {"shape": f"{cin}->{cout} @ {h}x{w}", "threads": threads}
    ref = None
    for name, mod in [("direct", conv), ("fold", WinogradConv2dFold(conv)), ("fold_separable_in", FoldSeparableIn(conv))]:
        p = f"/tmp/prof/s34_{name}.onnx"
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

"""One Winograd F(4,3) conv in ONNX Runtime (graph level EXTENDED, as the onnx-winograd sessions run it): session 32's
Fold (``separation.winograd.WinogradConv2dFold``) against rewrites of it, none of which was kept:

- ``out``: the output side keeps the GEMM's position-major layout, a MatMul [16 x 36] @ [36, Cout*tiles] (or a 1x1
  Conv 36 -> 16) and one transpose of the 16/36-size result, instead of a transpose and a 36 -> 1 stride-4
  ConvTranspose (``wino_out_1thread.jsonl``);
- ``in``: the input transform B^T d B separable, a (6, 1) stride-(4, 1) conv 1 -> 6 then a 6-group (1, 6)
  stride-(1, 4) conv 6 -> 36 (432 multiplies a tile), instead of one 1 -> 36 6x6 conv (1296)
  (``wino_in_2thread.jsonl``; on the whole model: fold_input_ab.py).

python results/backends/zen3_s34/fold_probe.py {out,in} THREADS CINxCOUTxHxW ...  -> one JSON line per shape (min of
5 runs, null vs direct); needs /tmp/prof."""
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


def main(which: str, threads: int, specs: list[str]) -> None:
    for spec in specs:
        cin, cout, h, w = map(int, spec.split("x"))
        torch.manual_seed(0)
        conv = nn.Conv2d(cin, cout, 3, padding=1).eval()
        x = torch.randn(1, cin, h, w)
        row = {"shape": f"{cin}->{cout} @ {h}x{w}", "threads": threads}
        ref = None
        for name, mod in [("direct", conv), ("fold", WinogradConv2dFold(conv))] + [
              (n, make(conv)) for n, make in VARIANTS[which]]:
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


VARIANTS = {"out": [("fold_matmul_out", FoldMatMulOut), ("fold_conv1x1_out", lambda c: FoldMatMulOut(c, True))],
            "in": [("fold_separable_in", FoldSeparableIn)]}

if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])

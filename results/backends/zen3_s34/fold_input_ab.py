"""The full 109 M model through --backend onnx-winograd, one process per side: ``old`` monkeypatches session 32's
Fold (one 1 -> 36 6x6 conv as the input transform) back in, ``new`` runs separation.winograd as it is (the separable
input transform). Prints one JSON line: the steady seconds per 523,776-sample chunk (min and all of 3 calls after a
warm-up) and the max |diff| against torch fp32 on the last call's input, as a null in dB.

python results/backends/zen3_s34/fold_input_ab.py {old,new}   (run the two sides alternately, each in its own process)"""
import json, sys, time

import torch
import torch.nn.functional as F

sys.path.insert(0, "/work/main")
import separation.winograd as wg
from eval.timing.benchlib import build_model, machine_info
from separation.backends import prepare_backend


class OldFold(wg.WinogradConv2dFold):
    def __init__(self, conv, m=4):
        super().__init__(conv, m)
        a, bt = self.a, self.bt.double()
        del self.win_h, self.win_w
        self.register_buffer("win", torch.einsum("iu,jv->ijuv", bt, bt).reshape(a * a, 1, a, a).to(self.u.dtype))

    def forward(self, x):
        h, w = self._size(x)
        a, m, cin, cout = self.a, self.m, self.in_channels, self.out_channels
        xp, nh, nw = self._padded(x)
        v = F.conv2d(xp.reshape(-1, 1, nh * m + 2, nw * m + 2), self.win, stride=m)
        v = v.reshape(-1, cin, a * a, nh, nw).transpose(1, 2).reshape(-1, a * a * cin, nh, nw)
        mm = F.conv2d(v, self.u1x1, groups=a * a)
        mm = mm.reshape(-1, a * a, cout, nh, nw).transpose(1, 2).reshape(-1, a * a, nh, nw)
        y = F.conv_transpose2d(mm, self.wout, stride=m).reshape(-1, cout, nh * m, nw * m)
        return self._finish(y, h, w)


side = sys.argv[1]
if side == "old":
    wg.WinogradConv2dFold = OldFold
torch.set_num_threads(2)
model = build_model(None, seed=0)
sep = prepare_backend(model, "onnx-winograd", threads=2, log=lambda m: print(m, file=sys.stderr))
torch.manual_seed(1)
x = torch.randn(1, 2, model.spec.audio.chunk_size) * 0.1
with torch.inference_mode():
    sep(x)
    ts = []
    for _ in range(3):
        t = time.perf_counter(); y = sep(x); ts.append(time.perf_counter() - t)
    ref = model(x)
null = float(10 * torch.log10(((y - ref) ** 2).sum() / (ref ** 2).sum()))
print(json.dumps({"side": side, "seconds_per_chunk_min": round(min(ts), 3), "seconds": [round(t, 3) for t in ts],
                  "null_db_vs_torch_fp32": round(null, 1), "cpu_family_model": machine_info()["cpu_family_model"],
                  "loadavg_1min": machine_info()["loadavg_1min"]}), flush=True)

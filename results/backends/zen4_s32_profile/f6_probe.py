"""F(6x6, 3x3) against F(4x4, 3x3) and direct, one conv in ONNX Runtime (Fold formulation), session 32.

python f6_probe.py THREADS CINxCOUTxHxW ...  -> one JSON line per shape: min of 5 runs, null against direct.
"""
import json, sys, time
import numpy as np, onnxruntime as ort, torch
from torch import nn
sys.path.insert(0, "/work/main")
from separation.winograd import WinogradConv2dFold

threads = int(sys.argv[1])
for spec in sys.argv[2:]:
    cin, cout, h, w = map(int, spec.split("x"))
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False).eval()
    x = torch.randn(1, cin, h, w)
    row = {"shape": f"{cin}->{cout} @ {h}x{w}", "threads": threads}
    with torch.no_grad():
        ref64 = nn.functional.conv2d(x.double(), conv.weight.double(), padding=1).numpy()
    for name, mod in [("direct", conv), ("f4", WinogradConv2dFold(conv, 4)), ("f6", WinogradConv2dFold(conv, 6))]:
        path = f"/tmp/prof/f6_{name}.onnx"
        torch.onnx.export(mod, (x,), path, input_names=["x"], dynamo=False)
        o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
        s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
        xn = x.numpy(); s.run(None, {"x": xn}); ts = []
        for _ in range(5):
            t = time.perf_counter(); y = s.run(None, {"x": xn})[0]; ts.append(time.perf_counter() - t)
        err = ((y - ref64) ** 2).sum() / (ref64 ** 2).sum()
        row[name] = round(min(ts), 4); row[name + "_null_vs_fp64"] = round(float(10 * np.log10(err + 1e-30)), 1)
    print(json.dumps(row), flush=True)

"""Single 3x3 conv in ONNX Runtime at THREADS threads (argv[1]): direct vs Winograd Fold vs Grouped, min of 5 runs."""
import sys, time, json, numpy as np, torch, onnxruntime as ort
from torch import nn
sys.path.insert(0, "/work/main")
from separation.winograd import WinogradConv2dFold, WinogradConv2dGrouped
THREADS = int(sys.argv[1])
shapes = [(int(a), int(b), int(c), int(d)) for a, b, c, d in (s.split("x") for s in sys.argv[2:])]
res = []
for cin, cout, h, w in shapes:
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, 3, padding=1).eval()
    x = torch.randn(1, cin, h, w)
    row = {"shape": f"{cin}->{cout} @ {h}x{w}", "threads": THREADS}
    ref = None
    for name, mod in [("direct", conv), ("fold", WinogradConv2dFold(conv)), ("grouped", WinogradConv2dGrouped(conv))]:
        p = f"/tmp/prof/c_{name}.onnx"
        torch.onnx.export(mod, (x,), p, input_names=["x"], dynamo=False)
        o = ort.SessionOptions(); o.intra_op_num_threads = THREADS; o.inter_op_num_threads = 1
        s = ort.InferenceSession(p, o, providers=["CPUExecutionProvider"])
        xn = x.numpy(); s.run(None, {"x": xn}); ts = []
        for _ in range(5):
            t = time.perf_counter(); y = s.run(None, {"x": xn})[0]; ts.append(time.perf_counter() - t)
        if ref is None: ref = y
        null = 10 * np.log10(((y - ref) ** 2).sum() / (ref ** 2).sum() + 1e-30) if name != "direct" else None
        row[name] = round(min(ts), 4); row[name + "_null"] = None if null is None else round(float(null), 1)
    print(json.dumps(row), flush=True)

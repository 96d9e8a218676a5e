"""Full model core in ONNX Runtime: which Winograd formulation per conv. Ad hoc (session 30)."""
import sys, time, json, os, numpy as np, torch, onnxruntime as ort
sys.path.insert(0, "/work/main")
import separation.winograd as W
from separation.onnx_backend import export_onnx
from eval.timing.benchlib import build_model

def rule_current(conv):  # what onnx_winograd_conv does today
    return (W.WinogradConv2dGrouped if conv.in_channels >= 512 else W.WinogradConv2dFold)(conv)
def rule_fold(conv):
    return W.WinogradConv2dFold(conv)

VARIANTS = {
    "current": (rule_current, 256, 256),
    "fold_all": (rule_fold, 256, 256),
    "fold_all_out128": (rule_fold, 256, 128),
    "fold_all_128": (rule_fold, 128, 128),
}
names = sys.argv[1].split(",")
model = build_model("separation/models/drumsep_5stems.yaml")
x = np.random.default_rng(0).standard_normal((1, 4, 1024, 1024)).astype(np.float32)
ref = None
if os.path.exists("/tmp/prof/ref_out.npy"): ref = np.load("/tmp/prof/ref_out.npy")
for name in names:
    p = f"/tmp/prof/full_{name}.onnx"
    if name == "direct": m = model
    else:
        rule, cmin, coutmin = VARIANTS[name]
        W.onnx_winograd_conv = rule
        m = W.winograd_model(model, min_channels=cmin, min_out_channels=coutmin, graph="onnx")
    if not os.path.exists(p):
        t = time.perf_counter(); export_onnx(m, p); print(name, "export", round(time.perf_counter() - t, 1), flush=True)
    o = ort.SessionOptions(); o.intra_op_num_threads = 2; o.inter_op_num_threads = 1
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(p, o, providers=["CPUExecutionProvider"])
    ts = []
    for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 2):
        t = time.perf_counter(); y = s.run(None, {"spectrogram": x})[0]; ts.append(time.perf_counter() - t)
    if name == "direct": np.save("/tmp/prof/ref_out.npy", y); ref = y
    null = None if ref is None else float(10 * np.log10(((y - ref) ** 2).sum() / (ref ** 2).sum()))
    print(json.dumps({"variant": name, "seconds": [round(t, 3) for t in ts], "null_vs_direct_onnx": null}), flush=True)
    del s

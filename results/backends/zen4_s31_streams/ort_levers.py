"""Interleaved ORT session-option A/B on the full model's onnx-winograd export, one 11.9-s chunk input."""
import json, sys, time, numpy as np, onnxruntime as ort
path, rounds = sys.argv[1], int(sys.argv[2])
variants = sys.argv[3].split(",")
def opts(v):
    o = ort.SessionOptions(); o.intra_op_num_threads = 2; o.inter_op_num_threads = 1
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if v == "extended": o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    if v == "denormal": o.add_session_config_entry("session.set_denormal_as_zero", "1")
    if v == "nospin": o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if v == "noarena": o.enable_cpu_mem_arena = False
    return o
x = np.random.default_rng(0).standard_normal((1, 4, 1024, 1024)).astype(np.float32)
sess = {v: ort.InferenceSession(path, opts(v), providers=["CPUExecutionProvider"]) for v in variants}
out = {v: [] for v in variants}
ref = None
for v in variants:  # warm-up (first runs fault in the arena)
    for _ in range(2):
        y = sess[v].run(None, {"spectrogram": x})[0]
    if ref is None: ref = y
    else: print(v, "null dB", 10 * np.log10(((y - ref) ** 2).sum() / (ref ** 2).sum()), flush=True)
for r in range(rounds):
    for v in variants:
        t = time.perf_counter(); sess[v].run(None, {"spectrogram": x}); out[v].append(time.perf_counter() - t)
        print(r, v, round(out[v][-1], 2), flush=True)
print(json.dumps({v: {"runs_s": [round(t, 3) for t in out[v]], "median_s": round(float(np.median(out[v])), 3)} for v in variants}))

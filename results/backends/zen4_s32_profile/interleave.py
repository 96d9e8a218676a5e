"""Two ONNX exports, one chunk each, interleaved rounds in one process (session 32 probe).

python interleave.py THREADS ROUNDS A.onnx[:all|extended] B.onnx[:all|extended]  -> per-round seconds and the medians; null of B against A.
"""
import json, statistics, sys, time
import numpy as np, onnxruntime as ort

threads, rounds, paths = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:5]
sessions = []
LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}
for p in paths:
    p, _, level = p.partition(":")
    o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
    o.graph_optimization_level = LEVELS[level or "all"]
    sessions.append(ort.InferenceSession(p, o, providers=["CPUExecutionProvider"]))
shape = [d if isinstance(d, int) else 1 for d in sessions[0].get_inputs()[0].shape]
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
outs = [s.run(None, {"spectrogram": x})[0] for s in sessions]  # warm-up (page faults)
outs = [s.run(None, {"spectrogram": x})[0] for s in sessions]
null = 10 * np.log10(((outs[1] - outs[0]) ** 2).sum() / (outs[0] ** 2).sum())
times = [[], []]
for r in range(rounds):
    order = (0, 1) if r % 2 == 0 else (1, 0)
    for i in order:
        t = time.perf_counter(); sessions[i].run(None, {"spectrogram": x}); times[i].append(time.perf_counter() - t)
    print(r, [round(t[-1], 3) for t in times], flush=True)
res = {"threads": threads, "paths": paths, "seconds": times, "medians": [statistics.median(t) for t in times],
       "null_b_vs_a_db": float(null)}
res["a_over_b"] = res["medians"][0] / res["medians"][1]
print(json.dumps(res))

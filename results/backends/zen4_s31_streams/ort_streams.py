"""Two chunks: one 2-thread session run twice in turn, against one 1-thread session run by two Python threads at once."""
import json, sys, time, threading, numpy as np, onnxruntime as ort
path, rounds = sys.argv[1], int(sys.argv[2])
def opts(n):
    o = ort.SessionOptions(); o.intra_op_num_threads = n; o.inter_op_num_threads = 1
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return o
rng = np.random.default_rng(0)
xs = [rng.standard_normal((1, 4, 1024, 1024)).astype(np.float32) for _ in range(2)]
s2 = ort.InferenceSession(path, opts(2), providers=["CPUExecutionProvider"])
s1 = ort.InferenceSession(path, opts(1), providers=["CPUExecutionProvider"])
def seq():
    return [s2.run(None, {"spectrogram": x})[0] for x in xs]
def par():
    res = [None, None]
    def work(i): res[i] = s1.run(None, {"spectrogram": xs[i]})[0]
    ts = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    [t.start() for t in ts]; [t.join() for t in ts]
    return res
a = seq(); b = par()  # warm-up
for i in range(2):
    print("null dB", 10 * np.log10(((a[i] - b[i]) ** 2).sum() / (a[i] ** 2).sum()), flush=True)
out = {"seq_2threads": [], "par_2x1thread": []}
for r in range(rounds):
    for name, f in ((("seq_2threads", seq), ("par_2x1thread", par)) if r % 2 else (("par_2x1thread", par), ("seq_2threads", seq))):
        t = time.perf_counter(); f(); out[name].append(time.perf_counter() - t)
        print(r, name, round(out[name][-1], 2), flush=True)
import resource
print("maxrss_gb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
print(json.dumps({k: {"runs_s": [round(t, 3) for t in v], "median_s": round(float(np.median(v)), 3)} for k, v in out.items()}))

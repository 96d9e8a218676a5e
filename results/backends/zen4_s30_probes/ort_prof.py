import json, sys, time, collections, numpy as np, onnxruntime as ort
path = sys.argv[1]
o = ort.SessionOptions(); o.intra_op_num_threads = 2; o.inter_op_num_threads = 1
o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
if len(sys.argv) > 2: o.enable_profiling = True; o.profile_file_prefix = "/tmp/prof/p"
t = time.perf_counter(); s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"]); print("load", time.perf_counter() - t)
x = np.random.default_rng(0).standard_normal((1, 4, 1024, 1024)).astype(np.float32)
for i in range(2):
    t = time.perf_counter(); s.run(None, {"spectrogram": x}); print("run", time.perf_counter() - t, flush=True)
if len(sys.argv) > 2:
    ev = json.load(open(s.end_profiling()))
    by_op = collections.Counter(); by_node = collections.Counter(); shapes = {}
    runs = [e for e in ev if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    # keep the last run only
    n = len(runs) // 2
    for e in runs[n:]:
        op = e["args"].get("op_name"); by_op[op] += e["dur"] / 1e6
        nm = e["name"][:-12]; by_node[nm] += e["dur"] / 1e6
        shapes[nm] = (op, e["args"].get("input_type_shape"), e["args"].get("output_type_shape"))
    print("total", sum(by_op.values()))
    for k, v in by_op.most_common(): print(f"{k:28s} {v:7.3f}")
    json.dump({"by_op": by_op, "by_node": [(k, v, shapes[k]) for k, v in by_node.most_common()]}, open("/tmp/prof/nodes.json", "w"), indent=0)

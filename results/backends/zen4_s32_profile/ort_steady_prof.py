"""Steady-state ONNX Runtime per-node profile of one export (session 32, ad hoc).

python ort_steady_prof.py EXPORT.onnx THREADS RUNS OUT.json [all|extended]
Runs RUNS chunks in one session with profiling on and keeps only the last run's nodes, so first-run page faults and
allocations are out. Prints per-op totals and writes per-node times with shapes.
"""
import collections, json, sys, time
import numpy as np, onnxruntime as ort

path, threads, runs, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, "ORT_ENABLE_" + (sys.argv[5] if len(sys.argv) > 5 else "ALL").upper())
o.enable_profiling = True; o.profile_file_prefix = "/tmp/prof/p"
s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
name = s.get_inputs()[0].name; shape = [d if isinstance(d, int) else 1 for d in s.get_inputs()[0].shape]
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
walls = []
for i in range(runs):
    t = time.perf_counter(); s.run(None, {name: x}); walls.append(time.perf_counter() - t); print("run", walls[-1], flush=True)
ev = json.load(open(s.end_profiling()))
nodes = [e for e in ev if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
per_run = len(nodes) // runs
last = nodes[-per_run:]
by_op = collections.Counter(); by_node = []
for e in last:
    op = e["args"].get("op_name"); by_op[op] += e["dur"] / 1e6
    by_node.append((e["name"][:-12], op, e["dur"] / 1e6, e["args"].get("input_type_shape"), e["args"].get("output_type_shape")))
total = sum(by_op.values())
print("kernel total", round(total, 3), "wall of last run", round(walls[-1], 3))
for k, v in by_op.most_common(): print(f"{k:28s} {v:7.3f}  {100 * v / total:5.1f} %")
by_node.sort(key=lambda r: -r[2])
json.dump({"export": path, "threads": threads, "walls_s": walls, "kernel_total_s": total, "by_op_s": dict(by_op.most_common()),
           "by_node": by_node}, open(out, "w"), indent=0)

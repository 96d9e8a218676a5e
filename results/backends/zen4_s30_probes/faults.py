import sys, time, resource, numpy as np, onnxruntime as ort
p = sys.argv[1]
o = ort.SessionOptions(); o.intra_op_num_threads = 2; o.inter_op_num_threads = 1
o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
for kv in sys.argv[2:]:
    k, v = kv.split("="); o.add_session_config_entry(k, v)
s = ort.InferenceSession(p, o, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((1, 4, 1024, 1024)).astype(np.float32)
for i in range(3):
    f0 = resource.getrusage(resource.RUSAGE_SELF); t = time.perf_counter()
    s.run(None, {"spectrogram": x})
    f1 = resource.getrusage(resource.RUSAGE_SELF)
    print(f"run {i}: {time.perf_counter()-t:.2f} s, minor faults {f1.ru_minflt-f0.ru_minflt}, sys {f1.ru_stime-f0.ru_stime:.2f} s, user {f1.ru_utime-f0.ru_utime:.2f} s", flush=True)

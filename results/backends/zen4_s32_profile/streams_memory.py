"""Peak RSS of the onnx-winograd(-streams) separator on 2 chunks of the full model, alone in a process (session 32).

python streams_memory.py EXPORT.onnx STREAMS NCHWC(0|1) ARENA(0|1)
"""
import resource, sys, time
import onnxruntime as ort, torch
sys.path.insert(0, "/work/main")
from separation.machine import keep_freed_memory
from separation.onnx_backend import OnnxSeparator

keep_freed_memory()
path, streams, nchwc, arena = sys.argv[1], int(sys.argv[2]), bool(int(sys.argv[3])), bool(int(sys.argv[4]))
if not arena:  # ad hoc: the option OnnxSeparator would set
    real = ort.SessionOptions
    class Options(real):
        def __init__(self):
            super().__init__(); self.enable_cpu_mem_arena = False
    ort.SessionOptions = Options
sep = OnnxSeparator(path, threads=2, streams=streams, nchwc=nchwc)
wave = torch.randn(2, 2, sep.spec.audio.chunk_size) * 0.1
for i in range(3):
    t = time.perf_counter(); sep(wave); print("2 chunks", round(time.perf_counter() - t, 2), "s", flush=True)
print({"streams": streams, "nchwc": nchwc, "arena": arena,
       "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)})

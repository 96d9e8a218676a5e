"""Minor page faults and sys time per chunk in the real runner (steady state)."""
import sys, time, resource, ctypes, torch, numpy as np
sys.path.insert(0, "/work/main")
from separation.backends import prepare_backend
from separation.runner import Runner
from eval.timing.benchlib import build_model
backend = sys.argv[1]; chunks = int(sys.argv[2])
if len(sys.argv) > 3 and sys.argv[3] == "mallopt":
    libc = ctypes.CDLL("libc.so.6"); print("mallopt", libc.mallopt(-3, 0), libc.mallopt(-1, 2**62))  # M_MMAP_MAX=0, M_TRIM_THRESHOLD
torch.set_num_threads(2)
model = build_model("separation/models/drumsep_5stems.yaml")
fwd = prepare_backend(model, backend, threads=2, log=lambda s: None)
stamps = []
def timed(batch):
    r0 = resource.getrusage(resource.RUSAGE_SELF); t = time.perf_counter()
    out = fwd(batch)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    stamps.append((time.perf_counter() - t, r1.ru_minflt - r0.ru_minflt, r1.ru_stime - r0.ru_stime))
    return out
runner = Runner(timed, chunk_size=523776, num_overlap=1)
mix = np.random.default_rng(0).standard_normal((2, 523776 * chunks)).astype(np.float32) * 0.1
r0 = resource.getrusage(resource.RUSAGE_SELF); t = time.perf_counter()
runner.separate(mix)
r1 = resource.getrusage(resource.RUSAGE_SELF)
for s in stamps: print(f"chunk {s[0]:.2f} s, faults {s[1]}, sys {s[2]:.2f} s")
print(f"total {time.perf_counter()-t:.2f} s, faults {r1.ru_minflt-r0.ru_minflt}, sys {r1.ru_stime-r0.ru_stime:.2f}")

"""The full 109 M model through --backend onnx-winograd, one process per side: ``old`` runs separation.winograd as it
is (session 32's Fold: one 1 -> 36 6x6 conv as the input transform), ``new`` patches fold_probe.py's FoldSeparableIn
(the separable input transform) in. Prints one JSON line: the steady seconds per 523,776-sample chunk (min and all of
3 calls after a warm-up) and the null against torch fp32 on the same input. fold_input_ab.jsonl: new, old, new, old.

python results/backends/zen3_s34/fold_input_ab.py {old,new}   (run the two sides alternately, each in its own process)"""
import json, os, sys, time

import torch

sys.path.insert(0, "/work/main")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import separation.winograd as wg
from eval.timing.benchlib import build_model, machine_info
from fold_probe import FoldSeparableIn
from separation.backends import prepare_backend

side = sys.argv[1]
if side == "new":
    wg.WinogradConv2dFold = FoldSeparableIn
torch.set_num_threads(2)
model = build_model(None, seed=0)
sep = prepare_backend(model, "onnx-winograd", threads=2, log=lambda m: print(m, file=sys.stderr))
torch.manual_seed(1)
x = torch.randn(1, 2, model.spec.audio.chunk_size) * 0.1
with torch.inference_mode():
    sep(x)
    ts = []
    for _ in range(3):
        t = time.perf_counter(); y = sep(x); ts.append(time.perf_counter() - t)
    ref = model(x)
null = float(10 * torch.log10(((y - ref) ** 2).sum() / (ref ** 2).sum()))
print(json.dumps({"side": side, "seconds_per_chunk_min": round(min(ts), 3), "seconds": [round(t, 3) for t in ts],
                  "null_db_vs_torch_fp32": round(null, 1), "cpu_family_model": machine_info()["cpu_family_model"],
                  "loadavg_1min": machine_info()["loadavg_1min"]}), flush=True)

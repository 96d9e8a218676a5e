"""Export the full config's core for onnx-winograd with a given Winograd channel threshold (session 32 probe).

python export_threshold.py MIN_CHANNELS OUT.onnx   (random weights: timing does not depend on them)
"""
import sys, time
import torch
sys.path.insert(0, "/work/main")
from separation.config import ModelSpec
from separation.model import build_model
from separation.onnx_backend import export_onnx
from separation.winograd import winograd_model

threshold, out = int(sys.argv[1]), sys.argv[2]
torch.manual_seed(0)
model = build_model(ModelSpec.from_yaml("separation/models/drumsep_5stems.yaml")).eval()
wmodel = winograd_model(model, min_channels=threshold, min_out_channels=threshold, graph="onnx")
t = time.perf_counter(); export_onnx(wmodel, out); print("export s", round(time.perf_counter() - t, 1))

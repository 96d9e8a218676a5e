"""What an int8 model really runs: the ops after the runtime's own fusions (:func:`op_coverage`)
and where one spectral-core call spends its time (:func:`profile_ops`)."""
from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np


def op_coverage(path: str | os.PathLike, runtime: str, threads: int | None = None) -> dict:
    """Which ops the runtime really runs, after its own graph fusions: ONNX Runtime's optimized
    graph (QLinearConv = int8; Conv/ConvTranspose = fp32), OpenVINO's execution graph
    (layer type x runtime precision)."""
    path = Path(path)
    if runtime == "onnx":
        import onnx
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
            options.log_severity_level = 3  # the "hardware specific optimizations" warning
            if threads:
                options.intra_op_num_threads = int(threads)
            ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            graph = onnx.load(options.optimized_model_filepath, load_external_data=False).graph
        counts = Counter(n.op_type for n in graph.node)
        keys = ("QLinearConv", "QLinearMatMul", "MatMulIntegerToFloat", "ConvInteger", "Conv", "FusedConv",
                "ConvTranspose", "MatMul", "FusedMatMul", "QuantizeLinear", "DequantizeLinear", "Transpose",
                "InstanceNormalization", "Gelu", "QLinearAdd", "Add", "Mul")
        return {"optimized_graph_ops": {k: counts[k] for k in keys if counts[k]}}
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                          **({"INFERENCE_NUM_THREADS": int(threads)} if threads else {})})
    counts = Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str)
        if layer in ("Convolution", "Deconvolution", "FullyConnected", "MatMul"):
            counts[f"{layer}:{info['runtimePrecision'].astype(str)}:{info['primitiveType'].astype(str)}"] += 1
    return {"execution_graph_layers": dict(sorted(counts.items()))}


def profile_ops(path: str | os.PathLike, runtime: str, spectrum: np.ndarray, threads: int | None = None,
                top: int = 8) -> list[dict]:
    """Where one spectral-core call spends its time, by op type (and kernel, OpenVINO), slowest first."""
    from separation.onnx_backend import INPUT, OUTPUT

    path = Path(path)
    spectrum = np.ascontiguousarray(spectrum, dtype=np.float32)
    totals, kernels = Counter(), {}
    if runtime == "onnx":
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            options = ort.SessionOptions()
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(tmp) / "ort")
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if threads:
                options.intra_op_num_threads, options.inter_op_num_threads = int(threads), 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            session.run([OUTPUT], {INPUT: spectrum})
            events = json.loads(Path(session.end_profiling()).read_text())
        for e in events:
            if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
                totals[e["args"]["op_name"]] += e["dur"] / 1e3
    else:
        import openvino as ov

        compiled = ov.Core().compile_model(str(path), "CPU", {"PERF_COUNT": True, "INFERENCE_PRECISION_HINT": "f32",
                                                              **({"INFERENCE_NUM_THREADS": int(threads)} if threads else {})})
        request = compiled.create_infer_request()
        request.infer({0: spectrum})
        for item in request.get_profiling_info():
            ms = item.real_time.total_seconds() * 1e3
            if ms > 0:
                totals[item.node_type] += ms
                kernels.setdefault(item.node_type, Counter())[item.exec_type] += ms
    total = sum(totals.values()) or 1.0
    rows = []
    for op, ms in totals.most_common(top):
        row = {"op": op, "ms": round(ms, 1), "share": round(ms / total, 3)}
        if op in kernels:
            row["kernels"] = {k: round(v, 1) for k, v in kernels[op].most_common(3)}
        rows.append(row)
    return rows

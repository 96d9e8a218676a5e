"""Static int8 through the runtimes' own tools: ONNX Runtime's ``quantize_static`` (QDQ) and
OpenVINO's post-training quantization (NNCF), calibrated on drum audio.

    onnx = export_onnx(model, "work/fp32.onnx")                          # the spectral core, fp32
    spectra = calibration_spectra(model.spec, calibration_mixtures("data/rendered", chunk, 8))
    quantize_onnx_static(onnx, spectra, "work/int8_ort.onnx")          # -> OnnxSeparator
    quantize_openvino(onnx, spectra, "work/int8_openvino.xml")         # -> OpenVinoSeparator
    Runner(load_int8_separator("work/int8_openvino.xml"), chunk_size=chunk).separate(mix)

What is quantized: the inputs and weights of the convolutions and TDF matmuls (weights per output
channel, activations per tensor, ranges = min/max over the calibration spectra); InstanceNorm, GELU,
the residual adds, the ``x * first_conv_out`` product and the concatenations stay fp32. So do the
layers in ``keep_fp32`` (default :data:`DEFAULT_KEEP_FP32`: the 1x1 convolutions that read or write
the raw spectrogram and the first TFC-TDF block, which reads its 1x1 projection): the spectrogram's
dynamic range does not fit 8 bits per tensor, and on the demo teacher quantizing them costs about
10 dB of null depth. ONNX Runtime's CPU provider has no int8 ConvTranspose, so the upscales stay
fp32 there (quantizing them would only add Q/DQ work); OpenVINO runs them int8.

Calibration input = what the ONNX graph takes: ``(B, C*2, dim_f, frames)`` spectrograms of real
drum mixtures made by the model's own STFT front end (:class:`separation.model.STFT`). The mixtures
come from a folder of ``<track>/mixture.wav`` (or its ``train/`` split); test splits are refused.

Which int8 a CPU allows (:func:`cpu_int8_support`): x86 with AVX-512 VNNI / AVX-VNNI / AMX-INT8 runs
u8 x s8 dot products natively (ONNX Runtime: uint8 activations, int8 weights, full 8-bit range);
AVX2 without VNNI saturates u8 x s8 pair sums, so weights are quantized to 7 bits there
(``reduce_range``); ARM prefers int8 activations. OpenVINO says what it can run in
``OPTIMIZATION_CAPABILITIES`` (``INT8``, ``BF16``...).

Command line (exports fp32 once, builds both int8 models, times everything through the Runner on
the same audio in one process, prints JSON)::

    python -m compress.runtime_int8 --config separation/models/drumsep_5stems.yaml \\
        --runtimes onnx,openvino --calibration data/rendered --seconds 12 --threads 2 --out-json q.json
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from separation.atomic_io import atomic_write_text
from separation.config import ModelSpec
from separation.errors import UserError, exit_on_user_error
from separation.machine import cpu_model_and_flags

RUNTIMES = ("onnx", "openvino")
RUNTIME_NAMES = {"torch": "torch", "onnx": "onnxruntime", "openvino": "openvino"}
# Module-name prefixes (as in the state dict, without "net.") of the layers left in fp32 by default.
DEFAULT_KEEP_FP32 = ("first_conv", "encoder_blocks.0.tfc_tdf.blocks.0", "final_conv")
ORT_OP_TYPES = ("Conv", "MatMul")  # ConvTranspose: no int8 kernel in ONNX Runtime's CPU provider
OV_OP_TYPES = ("Convolution", "ConvolutionBackpropData", "MatMul")
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
             "amx_int8", "amx_bf16", "asimddp", "i8mm", "bf16")


# ------------------------------------------------------------------------------ what this CPU allows
def cpu_flags() -> list[str]:
    """The int8/bf16-relevant flags of this CPU (from separation.machine)."""
    flags = f" {cpu_model_and_flags()[1].split(':', 1)[-1].strip()} "
    return [f for f in CPU_FLAGS if f" {f} " in flags]


def ort_quant_types(flags: Iterable[str] | None = None) -> dict:
    """ONNX Runtime's int8 types for this CPU, following ``quantize_static``'s own CPU guidance."""
    flags = set(cpu_flags() if flags is None else flags)
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
    if not x86:
        return {"activation_type": "QInt8", "weight_type": "QInt8", "reduce_range": False,
                "why": f"{platform.machine()}: symmetric int8 activations suit ARM's int8 kernels"}
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        return {"activation_type": "QUInt8", "weight_type": "QInt8", "reduce_range": False,
                "why": "x86 with VNNI: u8 activations x s8 weights, full 8-bit range (no saturation)"}
    return {"activation_type": "QUInt8", "weight_type": "QInt8", "reduce_range": True,
            "why": "x86 without VNNI: u8 x s8 with 7-bit weights so the AVX2 pair sums cannot saturate"}


def cpu_int8_support() -> dict:
    """What this CPU allows for int8 (and bf16), per runtime."""
    from .quantize import int8_backend

    cpu, _ = cpu_model_and_flags()
    flags = cpu_flags()
    info = {"cpu": cpu, "flags": flags, "int8_dot_product": bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)),
            "amx": "amx_tile" in flags, "bf16": bool({"avx512_bf16", "amx_bf16"} & set(flags)),
            "onnxruntime": ort_quant_types(flags)}
    try:
        import openvino as ov

        info["openvino"] = {"optimization_capabilities": list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))}
    except Exception as err:  # not installed / no CPU plugin: say so rather than fail the report
        info["openvino"] = {"unavailable": str(err).splitlines()[0]}
    ok, why = int8_backend()
    info["torch_x86_inductor"] = {"usable": ok, "why": why}
    return info


# ------------------------------------------------------------------------------ calibration data
def calibration_files(root: str | os.PathLike) -> list[Path]:
    """``ROOT/<track>/mixture.wav``, or those of ``ROOT/train/`` for a dataset root; never a test split."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"calibration folder {root} does not exist.")
    parts = [p.lower() for p in root.resolve().parts]
    if parts[-1] == "test" or any(p.startswith("heldout") for p in parts):
        raise UserError(f"{root} is a held-out test split; calibrate on training or validation audio "
                        "(e.g. data/rendered or data/rendered/valid), never on the kits the scores are measured on.")
    files = sorted(root.glob("*/mixture.wav"))
    if not files and (root / "train").is_dir():
        files = sorted((root / "train").glob("*/mixture.wav"))
    if not files:
        raise UserError(f"no <track>/mixture.wav under {root} (nor under {root / 'train'}); render drum audio with "
                        "python -m drumdata.render, or point --calibration at a folder of <track>/mixture.wav.")
    return files


def calibration_mixtures(root: str | os.PathLike, chunk_size: int, crops: int = 8, seed: int = 0) -> torch.Tensor:
    """``crops`` chunks ``(crops, 2, chunk_size)`` of real drum mixtures, one per track as far as
    there are tracks (tracks shorter than a chunk are tiled)."""
    from separation.audio import read_audio

    from .common import crops_from_audio

    if crops < 1:
        raise UserError("calibration needs at least one crop.")
    files = calibration_files(root)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(files), size=crops, replace=len(files) < crops)
    out = []
    for k, i in enumerate(picks):
        audio = read_audio(files[i])[0]
        if audio.shape[0] == 1:
            audio = np.repeat(audio, 2, 0)
        out.append(crops_from_audio(audio[:2], chunk_size, 1, seed + k)[0])
    return torch.stack(out)


def calibration_spectra(spec, mixtures: torch.Tensor | Iterable) -> list[np.ndarray]:
    """The spectral-core inputs ``(1, C*2, dim_f, frames)`` of each mixture ``(2, chunk)`` (or
    batch ``(B, 2, chunk)``), made by the model's own STFT front end. ``spec``: a ModelSpec or a
    model with ``.spec``."""
    from separation.model import STFT

    spec = getattr(spec, "spec", spec)
    a = spec.audio
    stft = STFT(a.n_fft, a.hop_length, a.dim_f)
    out = []
    with torch.no_grad():
        for mix in mixtures:
            mix = torch.as_tensor(mix).float()
            mix = mix[None] if mix.ndim == 2 else mix
            out.append(np.ascontiguousarray(stft(mix).numpy(), dtype=np.float32))
    return out


def _check_spectra(spectra, input_shape: list, path: Path) -> list[np.ndarray]:
    spectra = [np.ascontiguousarray(np.asarray(s, dtype=np.float32)) for s in spectra]
    if not spectra:
        raise UserError("static int8 needs calibration spectra (calibration_spectra(spec, mixtures)); got none.")
    want = [d if isinstance(d, int) and d > 0 else None for d in input_shape]
    for s in spectra:
        if s.ndim != len(want) or any(w is not None and w != d for w, d in zip(want[1:], s.shape[1:])):
            raise UserError(f"calibration spectrum of shape {s.shape} does not fit {path.name}'s input "
                            f"{['batch', *want[1:]]}; make it with calibration_spectra(spec, mixtures of chunk_size).")
    return spectra


# ------------------------------------------------------------------------------ which layers stay fp32
def compute_nodes(onnx_path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """``(node name, op type, module)`` of every Conv/ConvTranspose/MatMul of an exported core, in
    graph order. ``module`` comes from the weight's name (``encoder_blocks.0.tfc_tdf.blocks.0.tfc1.2``);
    the TDF matmuls, whose transposed weights the exporter renames, belong to the block of the
    convolution before them (``<block>.tdf``)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    names = {i.name for i in graph.initializer}
    out, block = [], None
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "MatMul"):
            continue
        weight = next((i for i in node.input[1:2] if i in names and not i.startswith("onnx::")), None)
        if weight:
            module = weight.removeprefix("net.").removesuffix(".weight")
            for part in (".tfc1", ".tfc2", ".shortcut"):
                if part in module:
                    block = module.split(part)[0]
        else:
            module = f"{block}.tdf" if block else node.name
        out.append((node.name, node.op_type, module))
    return out


def keep_fp32_nodes(onnx_path: str | os.PathLike, keep: Iterable[str] = DEFAULT_KEEP_FP32) -> list[str]:
    """Node names of the layers whose module starts with one of ``keep`` (each must match one)."""
    nodes = compute_nodes(onnx_path)
    out = []
    for prefix in keep:
        hits = [n for n, _, m in nodes if m == prefix or m.startswith(prefix + ".")]
        if not hits:
            raise UserError(f"keep_fp32: no convolution or matmul of {Path(onnx_path).name} belongs to {prefix!r} "
                            f"(modules look like {nodes[1][2] if len(nodes) > 1 else '?'!r}).")
        out += [h for h in hits if h not in out]
    return out


# ------------------------------------------------------------------------------ atomic outputs
def _spec_beside(fp32_onnx: Path) -> ModelSpec:
    yaml_path = fp32_onnx.with_suffix(".yaml")
    if not yaml_path.is_file():
        raise UserError(f"{yaml_path} (the config export_onnx writes beside {fp32_onnx.name}) does not exist.")
    return ModelSpec.from_yaml(yaml_path)


def _publish(tmpdir: Path, out: Path, files: list[str]) -> None:
    """Move ``files`` (names in ``tmpdir``, the model last) to ``out``'s folder; the model file
    ``out`` is removed first and replaced last, so a crash in between leaves no model to trust."""
    out.unlink(missing_ok=True)
    for name in files:
        os.replace(tmpdir / name, out.parent / name)


def _quantize_into(out: Path, suffix: str, build) -> Path:
    """Run ``build(tmpdir, name)`` in a temporary folder beside ``out``; publish or leave nothing."""
    out = Path(out)
    if out.suffix != suffix:
        raise UserError(f"{out}: the int8 model's file name must end in {suffix}.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        files = build(tmpdir, out.name)
        _publish(tmpdir, out, files)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return out


def _call_by_name(name: str, args: tuple, kwargs: dict):
    return globals()[name](*args, **kwargs)


def _in_fresh_process(name: str, *args, **kwargs):
    """Run this module's ``name`` in a spawned interpreter. Why: after ONNX Runtime's and NNCF's
    calibration ran in one process, a later Lightning fit in that process crashed with a
    segmentation fault (seen in the test suite); a child that exits takes their state with it.
    A UserError raised in the child is raised here."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_call_by_name, (name, args, kwargs))


def quantize_onnx_static(fp32_onnx, calibration_spectra, out_path, **kwargs) -> Path:
    """:func:`_quantize_onnx_static` in a fresh process (see :func:`_in_fresh_process`)."""
    return _in_fresh_process("_quantize_onnx_static", fp32_onnx, list(calibration_spectra), out_path, **kwargs)


def quantize_openvino(fp32_onnx, calibration_spectra, out_path, **kwargs) -> Path:
    """:func:`_quantize_openvino` in a fresh process (see :func:`_in_fresh_process`)."""
    return _in_fresh_process("_quantize_openvino", fp32_onnx, list(calibration_spectra), out_path, **kwargs)


# ------------------------------------------------------------------------------ ONNX Runtime
def _quantize_onnx_static(fp32_onnx: str | os.PathLike, calibration_spectra, out_path: str | os.PathLike, *,
                         keep_fp32: Iterable[str] = DEFAULT_KEEP_FP32, op_types: Iterable[str] = ORT_OP_TYPES,
                         per_channel: bool = True, activation_type: str | None = None,
                         reduce_range: bool | None = None) -> Path:
    """Static int8 ``out_path`` (``.onnx``, QDQ, YAML beside it) of the exported core ``fp32_onnx``
    with ``onnxruntime.quantization.quantize_static``: MinMax ranges over ``calibration_spectra``,
    weights per output channel; int8 types and ``reduce_range`` for this CPU by default
    (:func:`ort_quant_types`). Written atomically; nothing is left on error."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    from separation.onnx_backend import INPUT

    fp32_onnx = Path(fp32_onnx)
    if not fp32_onnx.is_file():
        raise UserError(f"{fp32_onnx} does not exist; export the model with separation.onnx_backend.export_onnx.")
    spec = _spec_beside(fp32_onnx)
    graph_input = onnx.load(str(fp32_onnx), load_external_data=False).graph.input[0]
    shape = [d.dim_value or d.dim_param for d in graph_input.type.tensor_type.shape.dim]
    spectra = _check_spectra(calibration_spectra, shape, fp32_onnx)
    auto = ort_quant_types()
    act = activation_type or auto["activation_type"]
    reduce_range = auto["reduce_range"] if reduce_range is None else reduce_range
    exclude = keep_fp32_nodes(fp32_onnx, keep_fp32) if keep_fp32 else []

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._items = iter(spectra)

        def get_next(self):
            item = next(self._items, None)
            return None if item is None else {INPUT: item}

    def build(tmpdir: Path, name: str) -> list[str]:
        # No CalibMaxIntermediateOutputs: in onnxruntime 1.32 it drops the data it flushes. The
        # calibration graph reduces each tensor to its min/max in-graph, so memory stays small.
        quantize_static(str(fp32_onnx), str(tmpdir / name), Reader(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(op_types), per_channel=per_channel, reduce_range=reduce_range,
                        activation_type=getattr(QuantType, act), weight_type=QuantType.QInt8,
                        nodes_to_exclude=exclude, calibrate_method=CalibrationMethod.MinMax)
        spec.to_yaml(tmpdir / Path(name).with_suffix(".yaml").name)
        return [Path(name).with_suffix(".yaml").name, name]

    return _quantize_into(Path(out_path), ".onnx", build)


# ------------------------------------------------------------------------------ OpenVINO / NNCF
def _quantize_openvino(fp32_onnx: str | os.PathLike, calibration_spectra, out_path: str | os.PathLike, *,
                      keep_fp32: Iterable[str] = DEFAULT_KEEP_FP32, preset: str = "mixed",
                      op_types: Iterable[str] = OV_OP_TYPES) -> Path:
    """Static int8 OpenVINO IR ``out_path`` (``.xml`` + ``.bin``, YAML beside) of ``fp32_onnx``
    with NNCF: ``nncf.quantize(ov.convert_model(onnx), nncf.Dataset(spectra))``. ``preset``
    ``mixed`` (symmetric weights, asymmetric activations: GELU outputs are one-sided) or
    ``performance`` (both symmetric). Only ``op_types`` are quantized; every other op type and the
    ``keep_fp32`` layers go to NNCF's ignored scope. Written atomically (the .xml last)."""
    try:
        import nncf
        import openvino as ov
    except ImportError as err:
        raise UserError(f"OpenVINO int8 needs openvino and nncf ({err.name} is missing): pip install openvino nncf") from None

    fp32_onnx = Path(fp32_onnx)
    if not fp32_onnx.is_file():
        raise UserError(f"{fp32_onnx} does not exist; export the model with separation.onnx_backend.export_onnx.")
    presets = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
    if preset not in presets:
        raise UserError(f"NNCF preset {preset!r}: use mixed or performance.")
    spec = _spec_beside(fp32_onnx)
    model = ov.convert_model(str(fp32_onnx))  # applies OpenVINO's fusions (Gelu, ...) as the runtime will
    shape = [d.get_length() if d.is_static else None for d in model.input(0).get_partial_shape()]
    spectra = _check_spectra(calibration_spectra, shape, fp32_onnx)
    names = keep_fp32_nodes(fp32_onnx, keep_fp32) if keep_fp32 else []
    ov_names = {op.get_friendly_name() for op in model.get_ops()}
    missing = [n for n in names if n not in ov_names]
    if missing:
        raise UserError(f"OpenVINO renamed layers to keep in fp32 ({missing[:3]}); cannot exclude them.")
    other_types = sorted({op.get_type_name() for op in model.get_ops()} - set(op_types) - {"Parameter", "Result", "Constant"})
    level = nncf.nncf_logger.level
    nncf.set_log_level(40)  # ERROR: NNCF logs every ignored node at INFO
    try:
        quantized = nncf.quantize(model, nncf.Dataset(spectra), preset=presets[preset], subset_size=len(spectra),
                                  ignored_scope=nncf.IgnoredScope(names=names, types=other_types, validate=False))
    finally:
        nncf.set_log_level(level)

    def build(tmpdir: Path, name: str) -> list[str]:
        ov.save_model(quantized, str(tmpdir / name), compress_to_fp16=False)
        spec.to_yaml(tmpdir / Path(name).with_suffix(".yaml").name)
        stem = Path(name)
        return [stem.with_suffix(".bin").name, stem.with_suffix(".yaml").name, name]

    return _quantize_into(Path(out_path), ".xml", build)


# ------------------------------------------------------------------------------ running and inspecting
def load_int8_separator(path: str | os.PathLike, threads: int | None = None, spec=None):
    """The separator the Runner drives for an int8 file: ``.xml`` -> OpenVinoSeparator,
    ``.onnx`` -> OnnxSeparator (ONNX Runtime)."""
    from separation.onnx_backend import OnnxSeparator, OpenVinoSeparator

    path = Path(path)
    if path.suffix == ".xml":
        return OpenVinoSeparator(path, spec, threads=threads)
    if path.suffix == ".onnx":
        return OnnxSeparator(path, spec, threads=threads)
    raise UserError(f"{path}: an int8 model here is an ONNX Runtime .onnx or an OpenVINO .xml.")


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


# ------------------------------------------------------------------------------ eval.pareto loader
def load_runtime_int8(entry: dict):
    """A Pareto variant ``{kind: int8, quant: {runtime: onnx|openvino, ...}}``: a ready int8
    ``model: x.xml`` / ``x.onnx`` is loaded as is; otherwise ``model`` (checkpoint, registry name or
    ``random`` + ``config``) is exported, quantized with ``calibration: {root, crops, seed}`` and
    written to ``out:`` (default: a temporary folder). ``quant`` may also give ``keep_fp32``
    (list of module prefixes) and, for OpenVINO, ``preset``."""
    from separation.onnx_backend import export_onnx

    from .common import count_params

    quant = dict(entry.get("quant") or {})
    runtime = quant.pop("runtime")
    if runtime not in RUNTIMES:
        raise UserError(f"variant {entry.get('name')!r}: int8 runtime {runtime!r}; use one of {', '.join(RUNTIMES)} "
                        "(or leave runtime out for torchao).")
    keep = tuple(quant.pop("keep_fp32", DEFAULT_KEEP_FP32) or ())
    allowed = {"onnx": {"per_channel", "activation_type", "reduce_range", "op_types"},
               "openvino": {"preset", "op_types"}}[runtime]
    if set(quant) - allowed:
        raise UserError(f"variant {entry.get('name')!r}: quant keys {sorted(set(quant) - allowed)} are not "
                        f"{runtime} int8 options (runtime, keep_fp32, {', '.join(sorted(allowed))}).")
    threads = entry.get("threads")
    model = str(entry.get("model"))
    if model.endswith((".xml", ".onnx")):
        return load_int8_separator(model, threads, entry.get("config"))
    from eval.tables.pareto import load_checkpoint_or_random

    cal = entry.get("calibration") or {}
    if not cal.get("root"):
        raise UserError(f"variant {entry.get('name')!r}: static int8 needs calibration: {{root: <folder of "
                        "<track>/mixture.wav>, crops: 8}}.")
    base = load_checkpoint_or_random(entry)
    out = Path(entry.get("out") or tempfile.mkdtemp(prefix="drumsep-int8-"))
    fp32 = export_onnx(base.cpu().eval(), out / "fp32.onnx")
    spectra = calibration_spectra(base.spec, calibration_mixtures(cal["root"], base.spec.audio.chunk_size,
                                                                  int(cal.get("crops", 8)), int(cal.get("seed", 0))))
    if runtime == "onnx":
        path = quantize_onnx_static(fp32, spectra, out / "int8_ort.onnx", keep_fp32=keep, **quant)
    else:
        path = quantize_openvino(fp32, spectra, out / "int8_openvino.xml", keep_fp32=keep, **quant)
    separator = load_int8_separator(path, threads)
    separator.num_params = count_params(base)
    return separator


# ------------------------------------------------------------------------------ command line
def _db(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 2)


def _log(msg: str) -> None:
    print(f"[runtime_int8] {msg}", file=sys.stderr, flush=True)


def drum_mix(seconds: float, sample_rate: int = 44100) -> tuple[np.ndarray, str]:
    """Deterministic real-sounding drums ``(2, n)`` rendered from drumdata's procedural kit
    (not one of the held-out kits, not the calibration audio)."""
    from drumdata.mixer import mix, render_clip
    from drumdata.synth import synth_kit

    for seed in range(10):
        clip = render_clip(synth_kit("synthetic-A"), seconds, np.random.default_rng(seed))
        if clip is not None:  # None: a silent clip
            audio = np.ascontiguousarray(mix(clip[0])[:, : int(round(seconds * sample_rate))], dtype=np.float32)
            return audio, f"drumdata render_clip(synth_kit('synthetic-A'), seed {seed})"
    raise UserError("could not render a non-silent drum clip; pass --audio FILE.")


def build_parser() -> argparse.ArgumentParser:
    from eval.timing.benchlib import DEFAULT_CONFIG

    p = argparse.ArgumentParser(prog="python -m compress.runtime_int8", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="MSST YAML of the model")
    p.add_argument("--weights", help="checkpoint or registry name (default: random weights, seeded; timing does not depend on them)")
    p.add_argument("--runtimes", default="onnx,openvino", help="comma-separated: onnx (ONNX Runtime), openvino")
    p.add_argument("--calibration", required=True, help="folder of <track>/mixture.wav, or a dataset root with train/")
    p.add_argument("--crops", type=int, default=8, help="calibration chunks (one per track where possible)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-fp32", default=",".join(DEFAULT_KEEP_FP32),
                   help="comma-separated module prefixes left in fp32 ('none': quantize every conv/matmul)")
    p.add_argument("--preset", default="mixed", choices=["mixed", "performance"], help="NNCF preset (OpenVINO)")
    p.add_argument("--seconds", type=float, default=12.0, help="length of the timed drum clip")
    p.add_argument("--audio", help="time this recording instead of the rendered drum clip")
    p.add_argument("--threads", type=int, default=2, help="torch, ONNX Runtime and OpenVINO threads")
    p.add_argument("--num-overlap", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--chunk-size", type=int, help="Runner chunk (default: the config's; the ONNX graph is fixed to it)")
    p.add_argument("--repeats", type=int, default=1, help="time each row this many times, keep the best (a shared CPU is noisy)")
    p.add_argument("--workdir", help="keep the fp32/int8 models here (default: a temporary folder, removed)")
    p.add_argument("--profile", action="store_true", help="also profile one spectral-core call per runtime row by op type")
    p.add_argument("--out-json", help="write the JSON here too (atomically)")
    return p


def _time_variant(name: str, separator, mix, runner_kwargs: dict, peak: float, outputs: dict,
                  repeats: int = 1) -> dict:
    """eval.timing's own measurement (one warm-up batch, then ``Runner.separate`` of ``mix``), best
    of ``repeats``; ``seconds_all`` keeps every run, ``loadavg_1min`` how busy the machine was."""
    from eval.timing.measure import benchmark_variants

    chunk = runner_kwargs["chunk_size"]
    stats = {(name, chunk, runner_kwargs["num_overlap"]): {"params": None, "size_mb": None, "gflop_per_chunk": None,
                                                           "gflop_per_audio_second": None}}
    runs = [benchmark_variants({name: separator}, mix, runner_kwargs, reference_variant=name, matmul_peak=peak,
                               stats=stats, outputs=outputs, warmup=k == 0)[0] for k in range(max(1, repeats))]
    best = min(runs, key=lambda r: r["seconds"])
    best["seconds_all"] = [round(r["seconds"], 3) for r in runs]
    best["loadavg_1min"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    return best


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    from separation import load_any
    from separation.audio import read_audio
    from separation.onnx_backend import OnnxSeparator, OpenVinoSeparator, export_onnx
    from eval.timing.benchlib import (build_model, command_string, machine_info, matmul_peak_gflops,
                                      model_size_mb, parse_cli)
    from eval.timing.measure import null_db

    args = parse_cli(build_parser(), argv)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    bad = [r for r in runtimes if r not in RUNTIMES]
    if bad or not runtimes:
        raise UserError(f"--runtimes {args.runtimes!r}: choose from {', '.join(RUNTIMES)}.")
    if args.seconds <= 0:
        raise UserError("--seconds must be positive.")
    keep = () if args.keep_fp32.strip().lower() in ("", "none") else tuple(k.strip() for k in args.keep_fp32.split(",") if k.strip())
    calibration_files(args.calibration)  # refuse a bad folder before any export
    torch.manual_seed(args.seed)
    model = load_any(args.weights, args.config) if args.weights else build_model(args.config, seed=args.seed)
    model = model.float().eval()
    spec = model.spec
    chunk = args.chunk_size or spec.audio.chunk_size
    if chunk != spec.audio.chunk_size:
        raise UserError(f"--chunk-size {chunk}: the exported graph takes chunks of {spec.audio.chunk_size} samples.")
    sr = spec.audio.sample_rate
    if args.audio:
        audio = read_audio(args.audio)[0]
        mix, source = np.ascontiguousarray(audio[:2, : int(args.seconds * sr)], dtype=np.float32), args.audio
    else:
        mix, source = drum_mix(args.seconds, sr)
    runner_kwargs = {"chunk_size": chunk, "num_overlap": args.num_overlap, "batch_size": args.batch_size,
                     "device": "cpu"}
    support = cpu_int8_support()
    cpu = support["cpu"]
    peak = matmul_peak_gflops()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="drumsep-runtime-int8-"))
    rows, outputs, extra = [], {}, {}

    def row_for(runtime: str, precision: str, timed: dict, build: str | None, build_seconds, size_mb,
                reference=None, runtime_fp32=None, path=None) -> tuple[dict, np.ndarray]:
        out = outputs.pop(f"{runtime}:{precision}")
        row = {"runtime": RUNTIME_NAMES[runtime], "precision": precision, "seconds": round(timed["seconds"], 3),
               "seconds_all": timed["seconds_all"],
               "seconds_per_audio_minute": round(timed["seconds_per_audio_minute"], 2), "rtf": round(timed["rtf"], 4),
               "speed_ratio_vs_torch_fp32": None, "null_db_vs_torch_fp32": None,
               "null_db_vs_runtime_fp32": None, "build": build,
               "build_seconds": None if build_seconds is None else round(build_seconds, 2),
               "size_mb": round(size_mb, 2), "peak_rss_mb": round(timed["peak_rss_mb"], 1),
               "loadavg_1min": timed["loadavg_1min"], "file": str(path) if path and args.workdir else None,
               "cpu": cpu, "cpu_flags": support["flags"]}
        if reference is not None:
            row["null_db_vs_torch_fp32"] = _db(null_db(out, reference))
        if runtime_fp32 is not None:
            row["null_db_vs_runtime_fp32"] = _db(null_db(out, runtime_fp32))
        _log(json.dumps({k: row[k] for k in ("runtime", "precision", "seconds", "null_db_vs_torch_fp32")}))
        return row, out

    try:
        _log(f"torch fp32 eager on {mix.shape[-1] / sr:.1f} s of audio ({args.threads} threads)")
        timed = _time_variant("torch:fp32", model, mix, runner_kwargs, peak, outputs, args.repeats)
        row, reference = row_for("torch", "fp32", timed, None, None, model_size_mb(model))
        rows.append(row)

        start = time.perf_counter()
        fp32_onnx = export_onnx(model, workdir / "fp32.onnx")
        export_seconds = time.perf_counter() - start
        _log(f"exported the fp32 core in {export_seconds:.1f} s")
        mixtures = calibration_mixtures(args.calibration, chunk, args.crops, args.seed)
        spectra = calibration_spectra(spec, mixtures)
        extra["calibration"] = {"folder": args.calibration, "tracks": len(calibration_files(args.calibration)),
                                 "crops": len(spectra), "seed": args.seed, "chunk_size": chunk,
                                 "input_shape": list(spectra[0].shape)}
        del mixtures
        for runtime in runtimes:
            # fp32 on this runtime
            separator_class = OnnxSeparator if runtime == "onnx" else OpenVinoSeparator
            sep = separator_class(fp32_onnx, spec, threads=args.threads)
            _log(f"{runtime} fp32")
            timed = _time_variant(f"{runtime}:fp32", sep, mix, runner_kwargs, peak, outputs, args.repeats)
            row, runtime_fp32 = row_for(runtime, "fp32", timed, "export", export_seconds, sep.size_mb, reference,
                                        path=fp32_onnx)
            if args.profile:
                row["profile"] = profile_ops(fp32_onnx, runtime, spectra[0], args.threads)
            rows.append(row)
            del sep
            gc.collect()
            # int8 on this runtime
            _log(f"{runtime} int8: calibrating on {len(spectra)} crops of {args.calibration}")
            start = time.perf_counter()
            if runtime == "onnx":
                path = quantize_onnx_static(fp32_onnx, spectra, workdir / "int8_ort.onnx", keep_fp32=keep)
            else:
                path = quantize_openvino(fp32_onnx, spectra, workdir / "int8_openvino.xml", keep_fp32=keep,
                                         preset=args.preset)
            quant_seconds = time.perf_counter() - start
            sep = load_int8_separator(path, args.threads, spec)
            timed = _time_variant(f"{runtime}:int8", sep, mix, runner_kwargs, peak, outputs, args.repeats)
            row, _ = row_for(runtime, "int8", timed, "quantization", quant_seconds, sep.size_mb, reference,
                             runtime_fp32, path=path)
            row["ops"] = op_coverage(path, runtime, args.threads)
            if args.profile:
                row["profile"] = profile_ops(path, runtime, spectra[0], args.threads)
            rows.append(row)
            del sep, runtime_fp32
            gc.collect()
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    base = rows[0]["seconds"]
    for row in rows:
        row["speed_ratio_vs_torch_fp32"] = round(base / row["seconds"], 3)
    report = {"rows": rows, "int8_support": support, **extra,
              "quantized": {"onnxruntime": {"format": "QDQ", "op_types": list(ORT_OP_TYPES), "per_channel_weights": True,
                                            **{k: v for k, v in support["onnxruntime"].items() if k != "why"}},
                            "openvino": {"tool": "nncf", "preset": args.preset, "op_types": list(OV_OP_TYPES)},
                            "keep_fp32": list(keep), "calibration_method": "min/max"},
              "audio": {"seconds": round(mix.shape[-1] / sr, 3), "source": source},
              "model": {"config": args.config, "weights": args.weights or f"random (seed {args.seed})",
                        "params": sum(p.numel() for p in model.parameters()), "chunk_size": chunk},
              "runner": {k: v for k, v in runner_kwargs.items() if k != "device"}, "threads": args.threads,
              "null_note": "null_db = 10 log10(|out - ref|^2 / |ref|^2) over all stems (eval.timing.measure.null_db)",
              "machine": machine_info(), "command": command_string("compress.runtime_int8", argv)}
    text = json.dumps(report, indent=1)
    if args.out_json:
        atomic_write_text(args.out_json, text)
    print(text)
    return report


if __name__ == "__main__":
    main()

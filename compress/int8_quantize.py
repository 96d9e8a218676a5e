"""Static int8 of an exported spectral core through the runtimes' own tools: ONNX Runtime's
``quantize_static`` (QDQ) and OpenVINO's post-training quantization (NNCF); the loaders the Runner
and ``eval.pareto`` use. The calibration input comes from :mod:`compress.int8_calibration`.

What is quantized: the inputs and weights of the convolutions and TDF matmuls (weights per output
channel, activations per tensor, ranges = min/max over the calibration spectra); InstanceNorm, GELU,
the residual adds, the ``x * first_conv_out`` product and the concatenations stay fp32. So do the
layers in ``keep_fp32`` (default :data:`DEFAULT_KEEP_FP32`: the 1x1 convolutions that read or write
the raw spectrogram and the first TFC-TDF block, which reads its 1x1 projection): the spectrogram's
dynamic range does not fit 8 bits per tensor, and on the demo teacher quantizing them costs about
10 dB of null depth. ONNX Runtime's CPU provider has no int8 ConvTranspose, so the upscales stay
fp32 there (quantizing them would only add Q/DQ work); OpenVINO runs them int8.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from separation.config import ModelSpec
from separation.errors import UserError

from .int8_calibration import _check_spectra, calibration_mixtures, calibration_spectra, ort_quant_types

RUNTIMES = ("onnx", "openvino")
# Module-name prefixes (as in the state dict, without "net.") of the layers left in fp32 by default.
DEFAULT_KEEP_FP32 = ("first_conv", "encoder_blocks.0.tfc_tdf.blocks.0", "final_conv")
ORT_OP_TYPES = ("Conv", "MatMul")  # ConvTranspose: no int8 kernel in ONNX Runtime's CPU provider
OV_OP_TYPES = ("Convolution", "ConvolutionBackpropData", "MatMul")


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


# ------------------------------------------------------------------------------ ONNX Runtime
def quantize_onnx_static(fp32_onnx: str | os.PathLike, calibration_spectra, out_path: str | os.PathLike, *,
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
def quantize_openvino(fp32_onnx: str | os.PathLike, calibration_spectra, out_path: str | os.PathLike, *,
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


# ------------------------------------------------------------------------------ loading
def load_int8_separator(path: str | os.PathLike, threads: int | None = None, spec=None, rest: str = "fp32"):
    """The separator the Runner drives for an int8 file: ``.xml`` -> OpenVinoSeparator,
    ``.onnx`` -> OnnxSeparator (ONNX Runtime). ``rest``: the precision OpenVINO runs the layers int8
    leaves in float at (``bf16`` uses AMX tiles where the CPU has them)."""
    from separation.onnx_backend import OnnxSeparator, OpenVinoSeparator

    path = Path(path)
    if path.suffix == ".xml":
        return OpenVinoSeparator(path, spec, threads=threads, precision=rest)
    if rest != "fp32":
        raise UserError(f"{path}: only OpenVINO runs an int8 graph's float layers in {rest}.")
    if path.suffix == ".onnx":
        return OnnxSeparator(path, spec, threads=threads)
    raise UserError(f"{path}: an int8 model here is an ONNX Runtime .onnx or an OpenVINO .xml.")


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

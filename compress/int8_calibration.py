"""What int8 this CPU allows, and the calibration input of static int8: spectral-core inputs of real
drum mixtures (never a held-out split).

Which int8 a CPU allows (:func:`cpu_int8_support`): x86 with AVX-512 VNNI / AVX-VNNI / AMX-INT8 runs
u8 x s8 dot products natively (ONNX Runtime: uint8 activations, int8 weights, full 8-bit range);
AVX2 without VNNI saturates u8 x s8 pair sums, so weights are quantized to 7 bits there
(``reduce_range``); ARM prefers int8 activations. OpenVINO says what it can run in
``OPTIMIZATION_CAPABILITIES`` (``INT8``, ``BF16``...).

Calibration input = what the ONNX graph takes: ``(B, C*2, dim_f, frames)`` spectrograms of real
drum mixtures made by the model's own STFT front end (:class:`separation.model.STFT`). The mixtures
come from a folder of ``<track>/mixture.wav`` (or its ``train/`` split); test splits are refused.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from separation.errors import UserError
from separation.machine import cpu_model_and_flags, present_flags

CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
             "amx_int8", "amx_bf16", "asimddp", "i8mm", "bf16")


# ------------------------------------------------------------------------------ what this CPU allows
def cpu_flags() -> list[str]:
    """The int8/bf16-relevant flags of this CPU (from separation.machine)."""
    return present_flags(CPU_FLAGS)


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

"""Pieces shared by pruning, quantization, ONNX export and the benchmark: calibration batches,
cost counting, null depth, and the check that a module really is a TFC_TDF_net.

Calibration data everywhere is an iterable of mixture batches ``(B, 2, chunk)`` (tensors), or of
dicts with ``mixture`` ``(B, 2, chunk)`` and optionally ``stems`` ``(B, S, 2, chunk)`` as the
:class:`drumdata.datamodule.DrumDataModule` yields them.
"""
from __future__ import annotations

import math
from itertools import islice
from typing import Iterable

import numpy as np
import torch

from separation.errors import UserError
from separation.model import TFC_TDF_net


def require_tfc_tdf(model, what: str) -> TFC_TDF_net:
    """Refuse anything but a float TFC_TDF_net before any work starts."""
    if not isinstance(model, TFC_TDF_net):
        raise UserError(f"{what} works on a TFC_TDF_net (separation.model), not a {type(model).__name__}; "
                        "load the checkpoint with separation.checkpoint.load_model first.")
    bad = [(n, p) for n, p in model.named_parameters() if type(p.data) is not torch.Tensor or not p.is_floating_point()]
    if bad:
        raise UserError(f"{what} needs a float model, but {bad[0][0]} is already quantized "
                        f"({type(bad[0][1].data).__name__}); "
                        "start again from the fp32 checkpoint.")
    return model


def calibration_batches(calibration: Iterable | None, limit: int | None = None) -> list[dict]:
    """Normalize ``calibration`` to a list of ``{"mixture": (B, 2, L)[, "stems": (B, S, 2, L)]}``."""
    if calibration is None:
        return []
    if isinstance(calibration, torch.Tensor):
        calibration = [calibration]
    out = []
    for batch in islice(calibration, limit):
        if isinstance(batch, dict):
            if "mixture" not in batch:
                raise UserError("calibration batches must be (B, 2, L) tensors or dicts with a 'mixture' key.")
            item = {"mixture": torch.as_tensor(batch["mixture"]).float()}
            if batch.get("stems") is not None:
                item["stems"] = torch.as_tensor(batch["stems"]).float()
        else:
            item = {"mixture": torch.as_tensor(np.asarray(batch) if not isinstance(batch, torch.Tensor) else batch).float()}
        mix = item["mixture"]
        if mix.ndim == 2:
            item["mixture"] = mix = mix[None]
        if mix.ndim != 3 or mix.shape[1] != 2:
            raise UserError(f"calibration mixture must be (batch, 2, samples), got {tuple(mix.shape)}.")
        out.append(item)
    return out


def crops_from_audio(audio: np.ndarray, chunk_size: int, num_crops: int, seed: int = 0) -> torch.Tensor:
    """``num_crops`` random ``(2, chunk_size)`` crops of ``audio`` ``(2, L)`` as ``(num_crops, 2, chunk_size)``.

    Audio shorter than one chunk is tiled, so a short clip still calibrates."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.shape[-1] < chunk_size:
        audio = np.tile(audio, (1, math.ceil(chunk_size / audio.shape[-1])))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, audio.shape[-1] - chunk_size + 1, size=num_crops)
    return torch.from_numpy(np.stack([audio[:, s:s + chunk_size] for s in starts]))


def rendered_calibration(root, chunk_size: int, num_crops: int, seed: int = 0, split: str = "train") -> torch.Tensor:
    """Crops of real rendered drum mixtures (``drumdata`` layout ``ROOT/<split>/<clip>/mixture.wav``)."""
    from pathlib import Path

    from separation.audio import read_audio

    files = sorted(Path(root).glob(f"{split}/*/mixture.wav")) or sorted(Path(root).glob("**/mixture.wav"))
    if not files:
        raise UserError(f"no */mixture.wav under {root}; render drum audio with python -m drumdata.render first.")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(files), size=num_crops, replace=len(files) < num_crops)
    crops = [crops_from_audio(read_audio(files[i])[0], chunk_size, 1, seed + k)[0] for k, i in enumerate(picks)]
    return torch.stack(crops)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def chunk_gflop(model: TFC_TDF_net, chunk_size: int | None = None) -> float:
    """GFLOP of one ``(1, 2, chunk)`` forward (convolutions and matmuls; torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    chunk_size = chunk_size or model.spec.audio.chunk_size
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, model.spec.audio.num_channels, chunk_size))
    return counter.get_total_flops() / 1e9


def cost(model: TFC_TDF_net, chunk_size: int | None = None) -> dict:
    return {"params": count_params(model), "gflop_per_chunk": round(chunk_gflop(model, chunk_size), 4)}


def null_db(estimate, reference) -> float:
    """Residual energy of ``estimate - reference`` relative to ``reference``, in dB (lower is closer)."""
    est, ref = (torch.as_tensor(np.asarray(x), dtype=torch.float64) for x in (estimate, reference))
    err = ((est - ref) ** 2).sum()
    return float("-inf") if err == 0 else float(10 * torch.log10(err / (ref ** 2).sum().clamp_min(1e-30)))

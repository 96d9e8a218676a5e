"""The rounding floor under a null: the same model and runner in float64.

A null of a backend against torch fp32 mixes two errors: the backend's and torch's own fp32
rounding, amplified by the network (a deep random-weight U-Net with InstanceNorm amplifies more than
a trained one). Run once in float64, the model gives a near-exact output; each row's null against
it then says how far that row is from the exact result, and torch fp32's own null against it is the
floor no fp32 implementation that sums in another order can be expected to beat by much. When a
backend is as far from float64 as torch fp32 is, the two fp32 results differ by up to ~3 dB more
than either's floor, although neither is less accurate.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from .benchlib import runner_for, time_call


class Float64Model:
    """``model`` copied to float64 (weights, the STFT window, the STFT and iSTFT all run in float64);
    called like it on float32 chunks, answering float32 (the cast back costs ~-144 dB, far below any
    fp32 floor). ``spec`` is the model's, for the Runner. CPU only: the Runner does not move it."""

    def __init__(self, model: torch.nn.Module):
        if not isinstance(model, torch.nn.Module):
            raise TypeError("the float64 floor needs the torch module, not an exported runtime")
        self.module = copy.deepcopy(model).cpu().double().eval()
        self.spec = getattr(model, "spec", None)

    def __call__(self, chunk: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module(chunk.double()).float()


def float64_output(model: torch.nn.Module, mix: np.ndarray, runner_kwargs: dict) -> tuple[np.ndarray, float]:
    """``mix`` separated by ``model`` in float64 through the Runner with ``runner_kwargs`` (same chunk,
    overlap and window as the rows it is compared with; the precision is forced to fp32 so no
    autocast runs, and the device to the CPU); returns (stems, seconds)."""
    kwargs = {**runner_kwargs, "precision": "fp32", "batch_size": 1, "device": "cpu"}
    runner = runner_for(Float64Model(model), kwargs)
    out, seconds, _ = time_call(lambda: runner.separate(mix))
    return out, seconds

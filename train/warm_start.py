"""Warm-start a student from a checkpoint whose frequency axis is a whole multiple of the student's.

A student with a narrower STFT (for example ``n_fft`` 1024 and 512 bins kept, against the teacher's 2048 and 1024)
has the same convolutions and norms as one with the teacher's front-end: only the TDF linears, which act along
frequency, shrink. Their weights are carried over by pooling: a student bin ``j`` stands for the checkpoint's bins
``k*j … k*j+k-1``, so an input weight is the sum over that group (the group's inputs arrive as one) and an output
weight is the mean over its group. It is a starting point for distillation, not a model of its own.
"""
from __future__ import annotations

import torch


def _pool_linear(weight: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    out_k, in_k = weight.shape[0] // shape[0], weight.shape[1] // shape[1]
    if out_k * shape[0] != weight.shape[0] or in_k * shape[1] != weight.shape[1]:
        raise ValueError(f"{tuple(weight.shape)} is not a whole multiple of {tuple(shape)}")
    return weight.reshape(shape[0], out_k, shape[1], in_k).sum(3).mean(1)


def pooled_state_dict(source: dict[str, torch.Tensor], target: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``source`` reshaped to ``target``'s parameters: equal shapes are copied, 2-D weights (the TDF linears) are
    pooled along frequency. Any other mismatch, or a missing or extra key, raises ``ValueError``."""
    wanted = target.state_dict()
    if set(source) != set(wanted):
        missing, extra = sorted(set(wanted) - set(source)), sorted(set(source) - set(wanted))
        raise ValueError(f"the checkpoint's layers differ from the student's (missing {missing[:3]}, extra {extra[:3]})")
    out = {}
    for key, value in source.items():
        shape = wanted[key].shape
        if value.shape == shape:
            out[key] = value
        elif value.dim() == 2 and len(shape) == 2:
            out[key] = _pool_linear(value.float(), shape).to(value.dtype)
        else:
            raise ValueError(f"{key}: the checkpoint's {tuple(value.shape)} cannot become {tuple(shape)}")
    return out

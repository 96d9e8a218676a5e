"""A straightforward implementation of the runner's chunking semantics, kept in the tests.

Whole-track result/weight buffers, one chunk at a time, written for clarity, not speed,
to check :class:`separation.runner.Runner` (streaming, batched) against.
"""
import numpy as np
import torch
import torch.nn.functional as F


def reference_separate(model, mix: np.ndarray, chunk_size: int, num_overlap: int) -> np.ndarray:
    """``mix`` ``(C, L)`` -> ``(S, C, L)`` with MSST semantics at batch size 1."""
    x = torch.from_numpy(mix).float()
    length = x.shape[-1]
    step = chunk_size // num_overlap
    border = chunk_size - step
    fade = chunk_size // 10
    padded_input = length > 2 * border and border > 0
    if padded_input:
        x = F.pad(x[None], (border, border), mode="reflect")[0]
    total = x.shape[-1]
    starts = list(range(0, total, step))
    result = None
    counter = torch.zeros(total)
    for index, start in enumerate(starts):
        part = x[:, start:start + chunk_size]
        seg = part.shape[-1]
        if seg < chunk_size:
            mode = "reflect" if seg > chunk_size // 2 else "constant"
            part = F.pad(part[None], (0, chunk_size - seg), mode=mode)[0]
        with torch.inference_mode():
            out = model(part[None])[0].float()
        window = torch.ones(chunk_size)
        if num_overlap > 1:
            if index > 0:
                window[:fade] = torch.linspace(0, 1, fade)
            if index < len(starts) - 1:
                window[-fade:] = torch.linspace(1, 0, fade)
        if result is None:
            result = torch.zeros(out.shape[0], out.shape[1], total)
        result[..., start:start + seg] += out[..., :seg] * window[:seg]
        counter[start:start + seg] += window[:seg]
    out = result / counter
    if padded_input:
        out = out[..., border:-border]
    return out.numpy()

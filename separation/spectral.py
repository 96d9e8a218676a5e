"""STFT helpers shared by the model's front-end and the Wiener post-filter.

Two paths, same arithmetic (equal to ``torch.stft`` / ``torch.istft`` to ~1e-5 relative, tested):

* **host** (``host=True``, taken where the tensor allows: CPU float32, no gradient to keep, outside
  ``torch.compile`` / tracing / export): the FFTs run in ``scipy.fft`` with the torch thread count as
  workers, and the framing, windowing and overlap-add in the fused numba loops of
  :mod:`separation.spectral_kernels`. On a 2-core EPYC (AVX2), on 10 signals x 60 s, this was
  3-3.7x ``torch.stft`` and 2.5-3.3x the block-sum inverse below (``scripts/host_stft_bench.py``).
  The Wiener filter uses it (its STFTs of whole 30-s segments): a c = 16 student with the filter
  separated 7-8 % faster. The model's own STFT of one chunk does not: there the same path measured
  no faster (numba's threads then meet the runtime's).
* **torch**: everything else (autograd, GPU, float64, graphs). ``torch.istft`` overlap-adds frame by
  frame; it was 16 % of a separation's time in the issue-12 profile, so :func:`istft` does the same
  arithmetic as batched inverse FFTs plus ``n_fft / hop`` shifted block sums.
"""
from __future__ import annotations

import numpy as np
import torch


def _host_path(t: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether ``t`` can leave torch for the host kernels: CPU, ``dtype``, no gradient to keep, and
    not inside a graph capture (``torch.compile``, ``torch.jit`` tracing, ONNX export)."""
    return (t.device.type == "cpu" and t.dtype == dtype and not (t.requires_grad and torch.is_grad_enabled())
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing()
            and not torch.onnx.is_in_onnx_export())


def _host_window(window: torch.Tensor, n_fft: int) -> bool:
    """A CPU window of ``n_fft`` samples (torch pads a shorter one; the host kernels do not)."""
    return window.device.type == "cpu" and window.shape[-1] == n_fft


def stft_tf(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, host: bool = False) -> torch.Tensor:
    """``torch.stft`` (centred, reflect-padded) of ``(N, L)`` as ``(N, T, F)`` contiguous complex:
    that is the memory ``torch.stft`` fills; its ``(N, F, T)`` result is a transposed view of it.
    ``host`` asks for the host path where ``x`` allows it."""
    if host and _host_path(x, torch.float32) and _host_window(window, n_fft) and x.shape[-1] > n_fft // 2:
        import scipy.fft
        from .spectral_kernels import frame_and_window
        frames = 1 + x.shape[-1] // hop
        tiles = np.empty((x.shape[0], frames, n_fft), np.float32)
        frame_and_window(np.ascontiguousarray(x.detach().numpy()), window.detach().float().numpy(), hop, frames, tiles)
        spec = scipy.fft.rfft(tiles, axis=-1, workers=torch.get_num_threads())
        return torch.from_numpy(spec)
    return torch.stft(x, n_fft, hop, window=window, center=True, return_complex=True).transpose(-1, -2).contiguous()


def istft(spec_tf: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, length: int | None = None,
          host: bool = False) -> torch.Tensor:
    """``torch.istft(spec_tf.transpose(-1, -2), n_fft, hop, window=window, center=True, length=length)``
    for ``(N, T, F)`` complex ``spec_tf``; missing top bins (``F < n_fft // 2 + 1``, as the model's
    ``dim_f`` leaves) are zeros. Falls back to ``torch.istft`` when ``hop`` does not divide ``n_fft``."""
    count, frames = spec_tf.shape[0], spec_tf.shape[1]
    start = n_fft // 2
    length = hop * (frames - 1) if length is None else length
    if n_fft % hop:
        spec_tf = torch.nn.functional.pad(spec_tf, (0, n_fft // 2 + 1 - spec_tf.shape[-1]))
        return torch.istft(spec_tf.transpose(-1, -2), n_fft, hop, window=window, center=True, length=length)
    if start + length > hop * (frames - 1) + n_fft:
        raise ValueError(f"{frames} STFT frames cannot give {length} samples")
    if host and _host_path(spec_tf, torch.complex64) and _host_window(window, n_fft):
        import scipy.fft
        from .spectral_kernels import envelope, overlap_add
        win = window.detach().float().numpy()
        tiles = scipy.fft.irfft(spec_tf.detach().numpy(), n=n_fft, axis=-1, workers=torch.get_num_threads())
        out = np.empty((count, length), np.float32)
        overlap_add(tiles, win, hop, start, out)
        out /= envelope(win, hop, frames, start, length)
        return torch.from_numpy(out)
    per = n_fft // hop
    tiles = (torch.fft.irfft(spec_tf, n=n_fft, dim=-1) * window).view(count, frames, per, hop)
    weights = window.square().view(per, hop)
    out = tiles.new_zeros(count, frames + per - 1, hop)
    envelope = weights.new_zeros(frames + per - 1, hop)
    for k in range(per):  # frame t's k-th hop-long block lands on output block t + k
        out[:, k:k + frames] += tiles[:, :, k]
        envelope[k:k + frames] += weights[k]
    return out.view(count, -1)[:, start:start + length] / envelope.view(-1)[start:start + length]

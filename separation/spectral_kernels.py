"""The host (CPU, no autograd) STFT's two memory-bound passes as numba loops.

``torch.stft`` reflect-pads the signal, frames it, windows the frames and runs a batched real FFT;
``torch.istft`` runs the inverse FFT and overlap-adds the windowed frames. On a 2-core EPYC the
FFTs are the smaller part: the padding, framing and windowing copies move every sample
``n_fft / hop`` times through memory. Here each frame is gathered and windowed in one pass (reflect
padding resolved by index, so no padded copy), and the inverse windows and overlap-adds in one pass
per signal. :mod:`separation.spectral` runs the FFTs themselves with ``scipy.fft``.

Compiled code is cached on disk beside this file (numba ``cache=True``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def frame_and_window(x, window, hop, frames, out):
    """``out[i, t, j] = xr[i, t * hop + j] * window[j]``, ``xr`` being ``x`` ``(N, L)`` reflect-padded
    by ``n_fft // 2`` on both sides (``torch.stft(center=True)``'s framing); ``out`` ``(N, frames, n_fft)``."""
    count, length = x.shape
    n_fft = window.shape[0]
    pad = n_fft // 2
    for task in prange(count * frames):
        i, t = task // frames, task % frames
        first = t * hop - pad
        if first >= 0 and first + n_fft <= length:
            dst, src = out[i, t], x[i, first:first + n_fft]  # 1-D slices vectorise
            for j in range(n_fft):
                dst[j] = src[j] * window[j]
        else:  # the frames that reach into the reflected padding
            for j in range(n_fft):
                q = first + j
                if q < 0:
                    q = -q
                elif q >= length:
                    q = 2 * (length - 1) - q
                out[i, t, j] = x[i, q] * window[j]


@njit(parallel=True, cache=True)
def overlap_add(tiles, window, hop, start, out):
    """``out[i, p] = sum_t tiles[i, t, p + start - t * hop] * window[...]`` for ``out`` ``(N, length)``:
    the windowed overlap-add of the inverse FFT's frames ``tiles`` ``(N, T, n_fft)``, from padded-track
    position ``start`` on (``n_fft // 2`` for ``center=True``). The caller divides by the envelope."""
    count, frames, n_fft = tiles.shape
    length = out.shape[1]
    for i in prange(count):
        row = out[i]
        row[:] = 0.0
        for t in range(frames):
            s = t * hop - start
            lo, hi = max(0, -s), min(n_fft, length - s)
            # 1-D slices: numba vectorises this loop (7x the 2-D indexed one on contiguous tiles)
            dst, src, win = row[s + lo:s + hi], tiles[i, t, lo:hi], window[lo:hi]
            for j in range(hi - lo):
                dst[j] += src[j] * win[j]


def envelope(window: np.ndarray, hop: int, frames: int, start: int, length: int) -> np.ndarray:
    """The overlap-added squared window over ``[start, start + length)`` of the padded track."""
    n_fft = window.shape[0]
    total = np.zeros(hop * (frames - 1) + n_fft, np.float64)
    square = np.square(window, dtype=np.float64)
    for t in range(frames):
        total[t * hop:t * hop + n_fft] += square
    return total[start:start + length].astype(np.float32)


def preload() -> None:
    """Load (or compile) both loops for the types the host path calls them with, and import
    ``scipy.fft``, without running anything: :func:`separation.wiener_kernels.preload` does this in
    the Runner's background thread, since a new process otherwise paid ~0.3 s at its first filtered track."""
    from numba import types

    import scipy.fft  # noqa: F401

    f32_1, f32_2, f32_3 = types.float32[::1], types.float32[:, ::1], types.float32[:, :, ::1]
    frame_and_window.compile((f32_2, f32_1, types.int64, types.int64, f32_3))
    overlap_add.compile((f32_3, f32_1, types.int64, types.int64, f32_2))

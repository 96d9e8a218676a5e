"""The stereo Wiener filter's per-bin arithmetic as fused numba loops.

The torch version (:func:`separation.wiener._em_step`) builds a dozen ``(S, F, T)`` temporaries per
EM step, so it is bound by memory traffic: about 50 ns per stem and bin on a 2-core EPYC, which made
the filter cost more than a c = 16 student's forward pass. Here every bin is read once per pass and
nothing but the per-stem spatial covariances is stored.

All arrays use the STFT's memory layout, ``(..., T, F)`` with bins contiguous (``torch.stft`` returns
its ``(F, T)`` result as a transposed view of that memory). Compiled code is cached on disk beside this
file (numba ``cache=True``), so only the first use on a machine pays the compilation (~9 s); loading
it in a new process still takes ~0.8 s, which :func:`preload` moves off the critical path.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, types

BIN_BLOCK = 64  # bins per task in the covariance pass: their running sums stay in registers/L1


@njit(inline="always", cache=True)
def _magnitude(z):
    """``|z|`` as ``sqrt(re^2 + im^2)``: ``abs()`` of a complex calls ``hypot``, 3x slower here."""
    return np.sqrt(z.real * z.real + z.imag * z.imag)


@njit(parallel=True, cache=True)
def soft_mask_inplace(y, x, scale):
    """``y`` ``(S, C, T, F)`` complex64 holds the stems' STFTs (their magnitudes are the priors); it is
    overwritten with ``|y_j| / (eps + sum_k |y_k|) * x / scale``, norbert's soft mask, per channel."""
    eps = np.float32(np.finfo(np.float32).eps)
    stems, channels, frames, bins = y.shape
    inv = np.float32(1.0) / np.float32(scale)
    for t in prange(frames):
        for c in range(channels):
            for f in range(bins):
                total = np.float32(0.0)
                for j in range(stems):
                    total += _magnitude(y[j, c, t, f])
                gain = inv / (eps + total)
                xv = x[c, t, f]
                for j in range(stems):
                    y[j, c, t, f] = (_magnitude(y[j, c, t, f]) * gain) * xv


@njit(parallel=True, cache=True)
def soft_mask_from_priors(v, x, scale, y):
    """norbert's soft mask from ``v`` ``(S, C, T, Fv)`` float32 magnitudes (a model's own spectrogram,
    ``Fv`` <= the mixture's bins; bins above take ``v``'s top bin) into ``y`` ``(S, C, T, F)`` complex64:
    ``v_j / (eps + sum_k v_k) * x / scale``. :func:`soft_mask_inplace` with the priors read, not built."""
    eps = np.float32(np.finfo(np.float32).eps)
    stems, channels, frames, bins = y.shape
    top = v.shape[3] - 1
    inv = np.float32(1.0) / np.float32(scale)
    for t in prange(frames):
        for c in range(channels):
            for f in range(bins):
                g = min(f, top)
                total = np.float32(0.0)
                for j in range(stems):
                    total += v[j, c, t, g]
                gain = inv / (eps + total)
                xv = x[c, t, f]
                for j in range(stems):
                    y[j, c, t, f] = (v[j, c, t, g] * gain) * xv


@njit(parallel=True, cache=True)
def spatial_covariances(y):
    """Each stem's normalised 2x2 spatial covariance per bin, from ``y`` ``(S, 2, T, F)``:
    ``R_j(f) = sum_t y y^H / (eps + sum_t power_j)`` with ``power_j = (|y_0|^2 + |y_1|^2) / 2``.
    Returns ``r00, r11`` ``(S, F)`` float32 and ``r01`` ``(S, F)`` complex64."""
    eps = np.float32(np.finfo(np.float32).eps)
    stems, _, frames, bins = y.shape
    r00 = np.empty((stems, bins), np.float32)
    r11 = np.empty((stems, bins), np.float32)
    r01 = np.empty((stems, bins), np.complex64)
    blocks = (bins + BIN_BLOCK - 1) // BIN_BLOCK
    for task in prange(stems * blocks):
        j = task // blocks
        lo = (task % blocks) * BIN_BLOCK
        hi = min(bins, lo + BIN_BLOCK)
        s00 = np.zeros(hi - lo, np.float32)
        s11 = np.zeros(hi - lo, np.float32)
        s01 = np.zeros(hi - lo, np.complex64)
        for t in range(frames):
            for f in range(lo, hi):
                a = y[j, 0, t, f]
                b = y[j, 1, t, f]
                s00[f - lo] += a.real * a.real + a.imag * a.imag
                s11[f - lo] += b.real * b.real + b.imag * b.imag
                s01[f - lo] += a * np.conj(b)
        for f in range(lo, hi):
            norm = np.float32(1.0) / (eps + np.float32(0.5) * (s00[f - lo] + s11[f - lo]))
            r00[j, f] = s00[f - lo] * norm
            r11[j, f] = s11[f - lo] * norm
            r01[j, f] = s01[f - lo] * norm
    return r00, r11, r01


@njit(parallel=True, cache=True)
def em_update_inplace(y, x, r00, r11, r01, in_scale, out_scale):
    """One EM filter step, in place: ``y_j <- power_j R_j Cxx^-1 (x / in_scale) * out_scale`` with
    ``Cxx = sum_j power_j R_j + sqrt(eps) I`` inverted in closed form (norbert's ``wiener_gain``)."""
    eps = np.float32(np.finfo(np.float32).eps)
    reg = np.float32(np.sqrt(eps))
    stems, _, frames, bins = y.shape
    inv_in = np.float32(1.0) / np.float32(in_scale)
    out = np.float32(out_scale)
    for t in prange(frames):
        for f in range(bins):
            c00 = reg
            c11 = reg
            c01 = np.complex64(0.0)
            for j in range(stems):
                a = y[j, 0, t, f]
                b = y[j, 1, t, f]
                p = np.float32(0.5) * (a.real * a.real + a.imag * a.imag + b.real * b.real + b.imag * b.imag)
                c00 += p * r00[j, f]
                c11 += p * r11[j, f]
                c01 += p * r01[j, f]
            inv_det = np.float32(1.0) / (c00 * c11 - (c01.real * c01.real + c01.imag * c01.imag))
            x0 = x[0, t, f] * inv_in
            x1 = x[1, t, f] * inv_in
            z0 = (c11 * x0 - c01 * x1) * inv_det
            z1 = (c00 * x1 - np.conj(c01) * x0) * inv_det
            for j in range(stems):
                a = y[j, 0, t, f]
                b = y[j, 1, t, f]
                p = np.float32(0.5) * (a.real * a.real + a.imag * a.imag + b.real * b.real + b.imag * b.imag) * out
                y[j, 0, t, f] = p * (r00[j, f] * z0 + r01[j, f] * z1)
                y[j, 1, t, f] = p * (np.conj(r01[j, f]) * z0 + r11[j, f] * z1)


@njit(parallel=True, cache=True)
def peak_energy(x):
    """``max |x|^2`` over a ``(C, T, F)`` complex array."""
    channels, frames, bins = x.shape
    peaks = np.zeros(frames, np.float32)
    for t in prange(frames):
        for c in range(channels):
            for f in range(bins):
                z = x[c, t, f]
                peaks[t] = max(peaks[t], z.real * z.real + z.imag * z.imag)
    return peaks.max()


@njit(cache=True)
def wiener_stereo_inplace(y, x, iterations):
    """norbert's ``wiener`` for two channels on ``(S, 2, T, F)`` complex64 ``y`` (the stems' STFTs,
    used as magnitude priors, overwritten with the filtered stems) and ``(2, T, F)`` ``x``. One
    compiled entry point, so a new process loads one cached function instead of four."""
    scale = max(1.0, np.sqrt(peak_energy(x)) / 10.0) if iterations else 1.0  # norbert's numerical scaling
    soft_mask_inplace(y, x, scale)
    for it in range(iterations):
        r00, r11, r01 = spatial_covariances(y)
        em_update_inplace(y, x, r00, r11, r01, scale, scale if it == iterations - 1 else 1.0)


@njit(cache=True)
def wiener_stereo_priors(v, x, iterations):
    """:func:`wiener_stereo_inplace` with the priors given as ``(S, 2, T, Fv)`` float32 magnitudes
    ``v``: returns the filtered ``(S, 2, T, F)`` complex64 stems for the ``(2, T, F)`` mixture ``x``."""
    stems, channels, frames, _ = v.shape
    y = np.empty((stems, channels, frames, x.shape[2]), np.complex64)
    scale = max(1.0, np.sqrt(peak_energy(x)) / 10.0) if iterations else 1.0
    soft_mask_from_priors(v, x, scale, y)
    for it in range(iterations):
        r00, r11, r01 = spatial_covariances(y)
        em_update_inplace(y, x, r00, r11, r01, scale, scale if it == iterations - 1 else 1.0)
    return y


# The signatures the filter is called with: C-contiguous complex64 STFTs (or float32 priors) and
# the iteration count.
SIGNATURE = (types.complex64[:, :, :, ::1], types.complex64[:, :, ::1], types.int64)
PRIORS_SIGNATURE = (types.float32[:, :, :, ::1], types.complex64[:, :, ::1], types.int64)


def preload() -> None:
    """Load (or compile) the filter for :data:`SIGNATURE` without running it: the Runner does this in
    a thread while the model runs. Not running it keeps numba's worker threads owned by the main
    thread (they start at the first call), so later forks (museval workers) come from their owner."""
    wiener_stereo_inplace.compile(SIGNATURE)
    wiener_stereo_priors.compile(PRIORS_SIGNATURE)
    from .spectral_kernels import preload as preload_stft
    preload_stft()  # the filter's STFTs (separation.spectral's host path)

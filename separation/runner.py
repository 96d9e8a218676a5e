"""The one batched inference runner: any ``(B, C, chunk) -> (B, S, C, chunk)`` module,
any track length, MSST-compatible overlap-add, output independent of ``batch_size``.

Chunking follows MSST's ``demix`` (see FACTS.md): ``step = chunk // num_overlap``; each chunk
is weighted by a window with linear fades of ``chunk // 10`` samples; a track longer than
``2 * border`` (``border = chunk - step``) is reflect-padded by ``border`` on both sides; a short
last chunk is right-padded (reflect if longer than half a chunk, else zeros). Chunks that start
after the end of the track lie wholly in the right pad, whose output MSST crops away: they are not
computed (:attr:`ChunkPlan.num_chunks`), which saves ``num_overlap - 1`` chunks per track and
changes no output sample.

Two deliberate differences from MSST, both documented in the README:

* the "no fade-in on the first chunk / no fade-out on the last chunk" rule is applied per
  chunk, not per batch, so results do not change with ``batch_size`` (MSST's do for tracks
  shorter than ``2 * border``); this equals MSST with ``batch_size=1``;
* with ``num_overlap=1`` chunks do not overlap, so fades only create 0/0 samples at the chunk
  joins (NaN in MSST); we use a flat window there, which equals MSST everywhere else.

Memory: besides the input mixture, the runner holds one batch of chunks and an accumulator of
``chunk + batch_size * step`` samples; finished samples are handed to ``sink`` as soon as no
later chunk can touch them, so output memory does not grow with the track. With the Wiener filter on
the model's grid (``wiener_grid="model"``) the same overlap-add runs on the model's spectrogram magnitudes,
frame by frame (:meth:`Runner._prior_frames`), and the filter's inverse STFT gives the samples.
"""
from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .wiener import N_FFT as WIENER_N_FFT

PRECISIONS = ("fp32", "bf16", "fp16")


def autocast_for(precision: str, device_type: str):
    """The autocast context a ``precision`` means on ``device_type`` (none for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def fade_window(chunk_size: int, fade_size: int, fade_in: bool, fade_out: bool) -> torch.Tensor:
    """MSST's window: ones with linear 0->1 / 1->0 ramps of ``fade_size`` samples."""
    window = torch.ones(chunk_size)
    if fade_size > 0 and fade_in:
        window[:fade_size] = torch.linspace(0, 1, fade_size)
    if fade_size > 0 and fade_out:
        window[-fade_size:] = torch.linspace(1, 0, fade_size)
    return window


@dataclass(frozen=True)
class ChunkPlan:
    """Where the chunks of one track start, in the coordinates of the padded track."""

    length: int  # samples of the original track
    chunk_size: int
    num_overlap: int

    @property
    def step(self) -> int:
        return self.chunk_size // self.num_overlap

    @property
    def border(self) -> int:
        return self.chunk_size - self.step

    @property
    def pad(self) -> int:
        return self.border if (self.length > 2 * self.border and self.border > 0) else 0

    @property
    def padded_length(self) -> int:
        return self.length + 2 * self.pad

    @property
    def total_chunks(self) -> int:
        """MSST's chunk count: starts every ``step`` up to the padded end. It decides which
        chunk is the *last* one (no fade-out), so the windows stay MSST's."""
        return math.ceil(self.padded_length / self.step)

    @property
    def num_chunks(self) -> int:
        """The chunks the runner computes: those that start before the end of the track.
        MSST also runs the last ``num_overlap - 1`` or so, which lie wholly in the right
        reflect-pad and are cropped away; skipping them leaves every output sample bit-identical."""
        return min(self.total_chunks, math.ceil((self.pad + self.length) / self.step))

    def start(self, k: int) -> int:
        return k * self.step


class Runner:
    """Separate waveforms of any length with a chunk model.

    Args:
        model: maps ``(B, C, chunk_size)`` to ``(B, S, C, chunk_size)``.
        chunk_size: samples per chunk (MSST: ``audio.chunk_size``; UVR: ``hop_length * 255``).
        num_overlap: chunks covering each sample (MSST's ``inference.num_overlap``).
        batch_size: chunks per forward pass; the output does not depend on it.
        precision: ``fp32``, or ``bf16``/``fp16`` autocast (CUDA; ``bf16`` also on CPU).
        device: ``auto``, ``cuda``, ``mps`` or ``cpu``.
        compile: wrap the model in ``torch.compile``.
        window: ``msst`` (linear fades of chunk//10) or ``hann`` (a full Hann-like taper, see
            :func:`taper_window`); ``msst`` is the default for comparability with the peers.
        wiener: None (off, MSST's output) or the EM iterations of the multichannel Wiener
            post-filter (:mod:`separation.wiener`; 0 is a plain ratio mask).
        wiener_hop: the filter's STFT hop (its n_fft is :data:`separation.wiener.N_FFT`); None is
            Open-Unmix's 1024, 2048 halves the filter's cost for about -0.1 dB (README, *The Wiener
            post-filter, fused*).
        wiener_grid: ``fixed`` (the filter's own 4096-point STFT of the stems' waveforms) or
            ``model``: the filter runs on the model's STFT grid with the model's masked spectrogram
            magnitudes as priors, so the model's inverse STFT and the filter's STFT of the stems are
            skipped. It needs a model with ``stft`` and ``spectral_forward`` (TFC_TDF_net, the ONNX
            and OpenVINO separators) and chunk starts on its hop grid (``num_overlap`` 1 does).
    """

    def __init__(self, model: torch.nn.Module | Callable, chunk_size: int, num_overlap: int = 4,
                 batch_size: int = 1, precision: str = "fp32", device: str = "auto",
                 compile: bool = False, window: str = "msst", progress: bool = True,
                 wiener: int | None = None, wiener_hop: int | None = None, wiener_grid: str = "fixed"):
        if num_overlap < 1 or batch_size < 1 or chunk_size < 16:
            raise ValueError("num_overlap and batch_size must be >= 1 and chunk_size >= 16")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}")
        self.device = pick_device(device)
        if precision == "fp16" and self.device.type == "cpu":
            raise ValueError("fp16 autocast is for CUDA/MPS; use bf16 on the CPU")
        # a separator that runs chunks side by side (OnnxSeparator's streams) needs that many per batch;
        # the output does not depend on the batch size
        batch_size = max(batch_size, getattr(model, "streams", 1))
        self.chunk_size, self.num_overlap, self.batch_size = chunk_size, num_overlap, batch_size
        self.precision, self.progress, self.window_kind = precision, progress, window
        if wiener is not None and wiener < 0:
            raise ValueError("wiener must be None (off) or >= 0 EM iterations")
        if wiener_hop is not None and (wiener_hop < 1 or WIENER_N_FFT % wiener_hop):
            raise ValueError(f"wiener_hop must divide the filter's n_fft of {WIENER_N_FFT} (1024 or 2048)")
        self.wiener, self.wiener_hop = wiener, wiener_hop
        self.wiener_grid = self._check_wiener_grid(wiener_grid, wiener_hop, model, chunk_size, num_overlap, compile)
        self.wiener_preload = None  # the thread loading the compiled filter; join it to wait for the kernels
        if wiener is not None:  # load the compiled filter while the model runs (~0.8 s in a new process)
            from .wiener_kernels import preload
            self.wiener_preload = threading.Thread(target=preload, name="wiener-preload", daemon=True)
            self.wiener_preload.start()
        if isinstance(model, torch.nn.Module):
            model = model.to(self.device).eval()
        self.model = torch.compile(model) if compile else model
        if window not in ("msst", "hann"):
            raise ValueError("window must be 'msst' or 'hann'")
        # Built once: the four windows a chunk can need (the first/last chunk keeps full
        # weight at the track ends). None means a flat window (num_overlap=1).
        step = chunk_size // num_overlap
        self._windows = {}
        for fade_in in (False, True):
            for fade_out in (False, True):
                if num_overlap == 1:
                    w = None
                elif window == "msst":
                    w = fade_window(chunk_size, chunk_size // 10, fade_in, fade_out)
                else:
                    w = taper_window(chunk_size, step, fade_in, fade_out)
                self._windows[(fade_in, fade_out)] = None if w is None else w.to(self.device)

    # ------------------------------------------------------------------ public
    @property
    def inference_precision(self) -> str:
        """The precision the model actually runs at, for reports: a runtime wrapper that runs its own
        precision (OpenVINO's ``bf16``, while this Runner's autocast stays ``fp32``) says so itself;
        otherwise the autocast's."""
        own = None if isinstance(self.model, torch.nn.Module) else getattr(self.model, "precision", None)
        return own or self.precision

    def separate(self, mix, sink: Callable[[np.ndarray], None] | None = None):
        """Separate ``mix`` ``(C, L)`` (numpy or torch).

        Returns ``(S, C, L)`` float32 numpy, or, when ``sink`` is given, streams
        ``(S, C, n)`` blocks to it in order and returns None.
        """
        if sink is not None:
            for block in self.iter_blocks(mix):
                sink(block)
            return None
        # Fill one preallocated array: collecting the blocks and concatenating them would hold
        # the whole output twice (2.2 GB instead of 1.1 GB for a 10-minute mix).
        result, filled = None, 0
        for block in self.iter_blocks(mix):
            if result is None:
                result = np.empty(block.shape[:-1] + (mix.shape[-1],), dtype=np.float32)
            result[..., filled:filled + block.shape[-1]] = block
            filled += block.shape[-1]
        assert filled == mix.shape[-1], (filled, mix.shape)
        return result

    def iter_blocks(self, mix) -> Iterator[np.ndarray]:
        mix = torch.as_tensor(np.asarray(mix, dtype=np.float32) if not isinstance(mix, torch.Tensor) else mix)
        mix = mix.float()
        if mix.ndim != 2 or mix.shape[-1] == 0:
            raise ValueError("mix must be (channels, samples) with samples > 0")
        plan = ChunkPlan(mix.shape[-1], self.chunk_size, self.num_overlap)
        padded = F.pad(mix[None], (plan.pad, plan.pad), mode="reflect")[0] if plan.pad else mix
        # The track, the windows and the overlap-add buffer live on the model's device; only the
        # finished blocks come back. On a GPU the host-side sum of every chunk's (S, C, chunk)
        # output cost as much as the model itself (H200, bf16, batch 8).
        padded = padded.to(self.device)
        if self.wiener is None:
            yield from self._overlap_add(padded, plan)
            return
        from .wiener import refine_stream
        if self.wiener_grid == "model":  # the model's spectrogram frames are the filter's priors
            stft = self.model.stft
            yield from refine_stream(mix.cpu().numpy(), self._prior_frames(padded, plan), self.wiener,
                                     n_fft=stft.n_fft, hop=stft.hop_length, priors=True)
        else:
            yield from refine_stream(mix.cpu().numpy(), self._overlap_add(padded, plan), self.wiener, hop=self.wiener_hop)

    # ---------------------------------------------------------------- internals
    def _autocast(self):
        return autocast_for(self.precision, self.device.type)

    def _chunk(self, padded: torch.Tensor, start: int) -> torch.Tensor:
        part = padded[:, start:start + self.chunk_size]
        missing = self.chunk_size - part.shape[-1]
        if missing:
            mode = "reflect" if part.shape[-1] > self.chunk_size // 2 else "constant"
            part = F.pad(part[None], (0, missing), mode=mode)[0]
        return part

    def _batches(self, padded: torch.Tensor, plan: ChunkPlan, forward: Callable) -> Iterator[tuple[range, torch.Tensor]]:
        """``(chunk indices, forward(batch of those chunks))`` in order, ``batch_size`` chunks at a time."""
        n = plan.num_chunks
        batch = torch.empty(self.batch_size, padded.shape[0], self.chunk_size, device=self.device)
        bar = tqdm(total=n, unit="chunk", disable=not self.progress, leave=False, desc="separating")
        with torch.inference_mode(), self._autocast():
            for first in range(0, n, self.batch_size):
                ks = range(first, min(first + self.batch_size, n))
                for j, k in enumerate(ks):
                    batch[j].copy_(self._chunk(padded, plan.start(k)))
                out = forward(batch[: len(ks)])
                yield ks, out.float().to(self.device)  # a runtime wrapper (ONNX, OpenVINO) may answer on the host
                bar.update(len(ks))
        bar.close()

    def _overlap_add(self, padded: torch.Tensor, plan: ChunkPlan) -> Iterator[np.ndarray]:
        chunk, step, total = self.chunk_size, plan.step, plan.total_chunks
        channels = padded.shape[0]
        capacity = chunk + self.batch_size * step
        acc = None  # (S, C, capacity), allocated once the stem count is known
        weight = torch.zeros(capacity, device=self.device)
        origin = 0  # padded-track position of acc[..., 0]
        emitted = plan.pad  # next padded-track position to emit (skips the left pad)
        end = plan.pad + plan.length
        for ks, out in self._batches(padded, plan, self.model):
            if acc is None:
                acc = torch.zeros(out.shape[1], channels, capacity, device=self.device)
            for j, k in enumerate(ks):
                start = plan.start(k)
                seg = min(chunk, plan.padded_length - start)
                window = self._window(k, total)
                lo = start - origin
                if window is None:
                    acc[..., lo:lo + seg] += out[j, ..., :seg]
                    weight[lo:lo + seg] += 1.0
                else:
                    acc[..., lo:lo + seg] += out[j, ..., :seg] * window[:seg]
                    weight[lo:lo + seg] += window[:seg]
            final = plan.padded_length if ks[-1] == total - 1 else plan.start(ks[-1] + 1)
            # Everything before the next chunk's start is final: emit it and slide the buffer.
            lo, hi = max(emitted, origin), min(final, end)
            if hi > lo:
                a, b = lo - origin, hi - origin
                yield (acc[..., a:b] / weight[a:b]).cpu().numpy()
                emitted = hi
            shift = final - origin
            keep = capacity - shift
            acc[..., :keep] = acc[..., shift:].clone()
            acc[..., keep:] = 0
            weight[:keep] = weight[shift:].clone()
            weight[keep:] = 0
            origin = final

    def _prior_frames(self, padded: torch.Tensor, plan: ChunkPlan) -> Iterator[np.ndarray]:
        """The model's masked spectrogram magnitudes, overlap-added frame by frame like
        :meth:`_overlap_add` adds samples (each chunk's frame weighted by its window at the frame's
        centre), as ``(S, C, n, F)`` blocks of the track's centred STFT frames, in order."""
        stft = self.model.stft
        hop, channels = stft.hop_length, padded.shape[0]
        per_chunk = 1 + self.chunk_size // hop              # a chunk's centred STFT frames
        first_frame, frames = plan.pad // hop, 1 + plan.length // hop  # the track's, in padded frames
        total, capacity = plan.total_chunks, per_chunk + self.batch_size * plan.step // hop
        centres = torch.clamp(torch.arange(per_chunk, device=self.device) * hop, max=self.chunk_size - 1)
        acc, weight = None, torch.zeros(capacity, device=self.device)
        origin, emitted = 0, first_frame  # padded frame of acc[..., 0]; next padded frame to emit

        def forward(batch):
            out = self.model.spectral_forward(stft(batch)).float()  # (B, S, C*2, F, T): re, im per channel
            b, s, _, f, t = out.shape
            out = out.view(b, s, channels, 2, f, t)
            return torch.hypot(out[:, :, :, 0], out[:, :, :, 1]).transpose(-1, -2)  # (B, S, C, T, F) view

        for ks, mags in self._batches(padded, plan, forward):
            if acc is None:  # frames before bins, as the filter reads them
                acc = torch.zeros(*mags.shape[1:3], capacity, mags.shape[-1], device=self.device)
            for j, k in enumerate(ks):
                window = self._window(k, total)
                lo = plan.start(k) // hop - origin
                if window is None:
                    acc[:, :, lo:lo + per_chunk] += mags[j]
                    weight[lo:lo + per_chunk] += 1.0
                else:
                    w = window[centres]
                    acc[:, :, lo:lo + per_chunk] += mags[j] * w[:, None]
                    weight[lo:lo + per_chunk] += w
            # frames centred before the next chunk's start get nothing more
            final = first_frame + frames if ks[-1] == plan.num_chunks - 1 else plan.start(ks[-1] + 1) // hop
            lo, hi = max(emitted, origin), min(final, first_frame + frames)
            if hi > lo:
                a, b = lo - origin, hi - origin
                yield (acc[:, :, a:b] / weight[a:b, None]).cpu().numpy()
                emitted = hi
            if ks[-1] == plan.num_chunks - 1:
                continue  # the last batch: nothing to slide for
            shift = final - origin
            keep = capacity - shift
            acc[:, :, :keep] = acc[:, :, shift:].clone()
            acc[:, :, keep:] = 0
            weight[:keep] = weight[shift:].clone()
            weight[keep:] = 0
            origin += shift

    @staticmethod
    def _check_wiener_grid(grid: str, wiener_hop, model, chunk_size: int, num_overlap: int, compile: bool) -> str:
        if grid not in ("fixed", "model"):
            raise ValueError("wiener_grid must be 'fixed' or 'model'")
        if grid == "fixed":
            return grid
        if wiener_hop is not None:
            raise ValueError("wiener_hop sets the fixed grid's hop; wiener_grid='model' uses the model's own")
        stft = getattr(model, "stft", None)
        if compile or stft is None or not hasattr(model, "spectral_forward"):
            raise ValueError("wiener_grid='model' needs an uncompiled model with its own STFT (stft and "
                             "spectral_forward: TFC_TDF_net, the ONNX and OpenVINO separators)")
        step = chunk_size // num_overlap
        if step % stft.hop_length or (chunk_size - step) % stft.hop_length or stft.n_fft % stft.hop_length:
            raise ValueError(f"wiener_grid='model' needs chunk starts on the model's hop grid: chunk {chunk_size}"
                             f" / num_overlap {num_overlap} is not a multiple of hop {stft.hop_length}; use num_overlap 1")
        return grid

    def _window(self, k: int, n: int) -> torch.Tensor | None:
        return self._windows[(k > 0, k < n - 1)]


def taper_window(chunk_size: int, step: int, fade_in: bool, fade_out: bool) -> torch.Tensor:
    """Raised-cosine ramps of ``min(chunk - step, chunk // 2)`` samples.

    With ``num_overlap=2`` this is a Hann window whose shifted copies sum to one; with more
    overlap it down-weights every chunk's edges, where the network sees the least context,
    instead of MSST's short linear fades. Same compute as ``msst``."""
    window = torch.ones(chunk_size)
    ramp = min(chunk_size - step, chunk_size // 2)
    if ramp > 0:
        rise = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(ramp) + 0.5) / ramp)
        if fade_in:
            window[:ramp] = rise
        if fade_out:
            window[-ramp:] = rise.flip(0)
    return window

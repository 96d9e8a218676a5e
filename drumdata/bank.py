"""An in-memory bank of rendered clips and batches drawn from it, for training without files.

Rendering one 10-s clip takes ~25 ms on one core (measured on the project's EPYC), so hours of
stems can be rendered at start-up, on every machine, instead of being shipped or written. The
bank is ``(N, 5, 2, n)`` stems (STEMS order); :func:`draw_batch` crops, remixes and augments it
on whatever device it lives on, so a GPU never waits for a data loader.
"""
from __future__ import annotations

import fnmatch
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from separation.audio import SAMPLE_RATE
from separation.errors import UserError

from . import STEMS
from .kits import DEFAULT_KITS_DIR, default_split, list_kits, load_kit, usable
from .mixer import render_clip
from .synth import SYNTH_KITS, synth_kit

MAX_ATTEMPTS = 8


def kits_for_split(split: str, kits_dir: str | Path = DEFAULT_KITS_DIR, synthetic: bool = True) -> list[str]:
    """Kit names of ``split`` ("train", "valid", "test"): Hydrogen kits found in ``kits_dir``
    (none when it is missing) plus, with ``synthetic``, the synthetic kits of that split."""
    names = []
    try:
        names = [k for k in list_kits(kits_dir) if default_split(k) == split
                 and usable(load_kit(k, kits_dir, load_audio=False))]
    except UserError:  # no Hydrogen kits here: synthetic ones only
        names = []
    if synthetic:
        names += [k for k in SYNTH_KITS if default_split(k) == split]
    return names


def _render_kit(args: tuple) -> np.ndarray:
    """Worker: ``count`` clips of one kit as float16 ``(count, 5, 2, n)`` (silent draws re-drawn)."""
    kit_name, kits_dir, seconds, seed, first, count, grooves = args
    kit = synth_kit(kit_name) if kit_name in SYNTH_KITS else load_kit(kit_name, kits_dir)
    n = int(round(seconds * SAMPLE_RATE))
    out = np.zeros((count, len(STEMS), 2, n), np.float16)
    for j in range(count):
        rng = np.random.default_rng([seed, first + j])
        for _ in range(MAX_ATTEMPTS):
            clip = render_clip(kit, seconds, rng, grooves)
            if clip is not None:
                out[j] = clip[0]
                break
    return out


def parse_kit_weights(specs: list[str] | tuple[str, ...]) -> list[tuple[str, float]]:
    """``["sf2-*=0.5", ...]`` -> ``[("sf2-*", 0.5), ...]`` (shell patterns on kit names, weights >= 0)."""
    out = []
    for spec in specs:
        pattern, sep, value = spec.rpartition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not sep or not pattern or not weight >= 0:  # NaN fails the comparison too
            raise UserError(f"kit weight {spec!r} is not PATTERN=WEIGHT with a weight >= 0 (e.g. 'sf2-*=0.5')")
        out.append((pattern, weight))
    return out


def clips_per_kit(kits: list[str], n_clips: int,
                  weights: list[tuple[str, float]] | None = None) -> list[int]:
    """How many of ``n_clips`` each kit renders: even shares, or shares proportional to the weight
    of the first matching ``(pattern, weight)`` (1 for a kit no pattern matches)."""
    w = [next((wt for pat, wt in (weights or []) if fnmatch.fnmatch(k, pat)), 1.0) for k in kits]
    if sum(w) <= 0:
        raise UserError("every kit has weight 0: nothing to render")
    exact = [n_clips * x / sum(w) for x in w]
    counts = [math.floor(e) for e in exact]
    # hand the rounding remainder to the largest fractions, first kit first on ties
    for i in sorted(range(len(kits)), key=lambda i: counts[i] - exact[i])[: n_clips - sum(counts)]:
        counts[i] += 1
    return counts


def parse_kit_stems(specs: list[str] | tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """``["sf2-*=hh,cymbals", ...]`` -> ``[("sf2-*", ("hh", "cymbals")), ...]``: kits matching the
    shell pattern lend only those stems to training batches (names from :data:`drumdata.STEMS`)."""
    out = []
    for spec in specs:
        pattern, sep, value = spec.rpartition("=")
        stems = tuple(s.strip() for s in value.split(",") if s.strip())
        if not sep or not pattern or not stems or any(s not in STEMS for s in stems):
            raise UserError(f"kit stems {spec!r} is not PATTERN=STEM[,STEM...] with stems from "
                            f"{', '.join(STEMS)} (e.g. 'sf2-*=hh,cymbals')")
        out.append((pattern, stems))
    return out


def stem_eligibility(clip_kits: list[str], kit_stems: list[tuple[str, tuple[str, ...]]]) -> torch.Tensor:
    """``(N, 5)`` bool: may clip ``i`` (of kit ``clip_kits[i]``) lend stem ``k`` to a batch?

    A kit matching a pattern of ``kit_stems`` (first match wins) lends those stems only; any other
    kit lends all five. A stem no clip may lend is an error, raised before anything trains.
    """
    unmatched = [pat for pat, _ in kit_stems if not any(fnmatch.fnmatch(k, pat) for k in clip_kits)]
    if clip_kits and unmatched:  # a typo would otherwise train the plain recipe under the rule's name
        raise UserError(f"kit-stem pattern(s) {', '.join(map(repr, unmatched))} match no training kit")
    allowed = [next((set(st) for pat, st in kit_stems if fnmatch.fnmatch(k, pat)), set(STEMS)) for k in clip_kits]
    mask = torch.tensor([[s in a for s in STEMS] for a in allowed], dtype=torch.bool).reshape(-1, len(STEMS))
    if len(clip_kits) and not mask.any(0).all():
        missing = [s for s, ok in zip(STEMS, mask.any(0).tolist()) if not ok]
        raise UserError(f"no training kit lends {', '.join(missing)} under the kit-stem rules {kit_stems}")
    return mask


def bank_clips_per_kit(kits: list[str], hours: float, clip_seconds: float,
                       kit_weights: list[tuple[str, float]] | None = None) -> list[int]:
    """How many clips each kit renders into a bank of ``hours`` (at least one clip per kit in all)."""
    return clips_per_kit(kits, max(len(kits), math.ceil(hours * 3600 / clip_seconds)), kit_weights)


def bank_clip_kits(kits: list[str], hours: float, clip_seconds: float = 6.0,
                   kit_weights: list[tuple[str, float]] | None = None) -> list[str]:
    """The kit of each clip of :func:`render_bank` with the same arguments, in bank order."""
    return [k for k, c in zip(kits, bank_clips_per_kit(kits, hours, clip_seconds, kit_weights)) for _ in range(c)]


def render_bank(kits: list[str], hours: float, clip_seconds: float = 6.0, seed: int = 0,
                kits_dir: str | Path = DEFAULT_KITS_DIR, workers: int | None = None,
                grooves: str = "procedural", kit_weights: list[tuple[str, float]] | None = None) -> torch.Tensor:
    """``hours`` of clips spread over ``kits``: float16 tensor ``(N, 5, 2, n)``.

    Evenly, or in proportion to ``kit_weights`` (:func:`clips_per_kit`; e.g. ``[("sf2-*", 0.5)]``
    gives each SoundFont kit half a Hydrogen kit's share).
    ``grooves``: "procedural", "songs" or "mixed", as in :func:`drumdata.mixer.render_clip`.

    Clip ``i`` of kit ``k`` depends on ``(seed, k's position, i)`` only, whatever ``workers`` is.
    """
    if not kits:
        raise ValueError("no kits to render from")
    per_kit = bank_clips_per_kit(kits, hours, clip_seconds, kit_weights)
    jobs = [(k, str(kits_dir), clip_seconds, seed, i << 20, c, grooves)
            for i, (k, c) in enumerate(zip(kits, per_kit)) if c]
    workers = workers or max(1, (os.cpu_count() or 2) - 1)
    if workers == 1:
        parts = [_render_kit(j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_render_kit, jobs))
    return torch.from_numpy(np.concatenate(parts))


def activity(bank: torch.Tensor, crop: int, threshold_db: float = -60.0) -> list[float]:
    """Share of non-overlapping ``crop``-sample windows in which each stem is active."""
    n = bank.shape[-1] // crop * crop
    windows = bank[..., :n].float().reshape(*bank.shape[:3], -1, crop)
    rms = windows.pow(2).mean(-1).amax(2).sqrt()  # (N, 5, windows)
    return (20 * torch.log10(rms + 1e-12) > threshold_db).float().mean((0, 2)).tolist()


def tilt_eq(stems: torch.Tensor, tilt: torch.Tensor, width: int = 5) -> torch.Tensor:
    """Per-stem spectral tilt: ``x + tilt * (x - boxcar(x))``, ``tilt`` of shape ``stems.shape[:2]``.

    The boxcar of ``width`` samples is a low-pass (first null at 44100/width Hz), so ``x - box(x)``
    is the highs: ``tilt > 0`` brightens a stem, ``tilt = -1`` leaves only its lows, 0 is identity.
    Kits differ most in such tilts (a darker hi-hat, a brighter crash), which a model trained on a
    dozen kits otherwise learns as identity cues.
    """
    lead = stems.shape[:-1]
    flat = stems.reshape(-1, 1, stems.shape[-1])
    low = torch.nn.functional.avg_pool1d(flat, width, stride=1, padding=width // 2, count_include_pad=False)
    highs = (flat - low).reshape(*lead, -1)
    return stems + tilt.reshape(*tilt.shape, *([1] * (stems.dim() - tilt.dim()))) * highs


def draw_batch(bank: torch.Tensor, batch_size: int, crop: int, generator: torch.Generator,
               remix_p: float = 0.5, gain: tuple[float, float] = (0.5, 1.5),
               eq: float = 0.0, stem_ok: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops: mixture ``(B, 2, crop)`` and stems ``(B, 5, 2, crop)`` (float32).

    Each stem comes from the batch item's own clip, or (``remix_p``) from another random clip
    and offset, then gets a random gain, channel swap and polarity, and with ``eq > 0`` a
    random spectral tilt (:func:`tilt_eq`) drawn uniformly from ``[-eq, eq]``; the mixture is
    their sum. With ``stem_ok`` (:func:`stem_eligibility`, ``(N, 5)`` bool on the bank's device),
    a stem drawn from a clip that may not lend it is redrawn from a random clip that may, at a
    random offset (so such a kit's other stems never reach a batch).
    """
    dev, (n_clips, n_stems, _, n) = bank.device, bank.shape
    rand = lambda *shape: torch.rand(*shape, generator=generator, device=dev)  # noqa: E731
    clip = (rand(batch_size, 1) * n_clips).long().expand(batch_size, n_stems).clone()
    start = (rand(batch_size, 1) * (n - crop + 1)).long().expand(batch_size, n_stems).clone()
    remix = rand(batch_size, n_stems) < remix_p
    clip[remix] = (rand(int(remix.sum())) * n_clips).long()
    start[remix] = (rand(int(remix.sum())) * (n - crop + 1)).long()
    if stem_ok is not None:  # drawn only then, so stem_ok=None draws the same batches as before
        for k in range(n_stems):
            bad = ~stem_ok[clip[:, k], k]
            n_bad = int(bad.sum())
            if n_bad:
                pool = stem_ok[:, k].nonzero().squeeze(1)
                clip[bad, k] = pool[(rand(n_bad) * len(pool)).long().clamp_max(len(pool) - 1)]
                start[bad, k] = (rand(n_bad) * (n - crop + 1)).long()
    stem_idx = torch.arange(n_stems, device=dev)[None, :, None, None]
    chan = torch.arange(2, device=dev)[None, None, :, None]
    swap = (rand(batch_size, n_stems) < 0.5).long()[:, :, None, None]
    time = start[:, :, None, None] + torch.arange(crop, device=dev)
    stems = bank[clip[:, :, None, None], stem_idx, chan ^ swap, time].float()
    scale = rand(batch_size, n_stems) * (gain[1] - gain[0]) + gain[0]
    scale = scale * torch.where(rand(batch_size, n_stems) < 0.5, -1.0, 1.0)
    stems = stems * scale[:, :, None, None]
    if eq > 0:  # drawn last, so eq=0 draws the same batches as before it existed
        stems = tilt_eq(stems, (rand(batch_size, n_stems) * 2 - 1) * eq)
    return stems.sum(1), stems

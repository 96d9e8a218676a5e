"""Tiny generated datasets and random-weight variants, for tests, demos and smoke runs.

The audio is not music: each stem is a distinct synthetic drum voice (a pitched thump for the
kick, noise bursts for snare/hats/cymbals, a gliding tone for toms) on its own rhythm, so the
layout and silence handling of the evaluation are exercised for real. ``silent`` lets a test
leave a stem at zero in every track."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from separation import STEMS, ModelSpec, TFC_TDF_net
from separation.audio import write_audio
from separation.checkpoint import save_model

SAMPLE_RATE = 44100


def tiny_spec() -> ModelSpec:
    """The smallest useful TFC_TDF_net config (~10 k parameters, 3584-sample chunks)."""
    return ModelSpec().replace(model={"num_channels": 4, "growth": 4, "num_scales": 2},
                               audio={"chunk_size": 512 * 7, "dim_t": 8})


def _voice(stem: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(2, n)`` float32: one stem's hits on a stem-specific grid."""
    t = np.arange(n) / SAMPLE_RATE
    period = {"kick": 0.5, "snare": 0.5, "toms": 0.75, "hh": 0.125, "cymbals": 1.0}.get(stem, 0.25)
    offset = {"snare": 0.25}.get(stem, 0.0)
    phase = ((t - offset) % period)
    decay = {"kick": 12, "snare": 25, "toms": 10, "hh": 60, "cymbals": 4}.get(stem, 20)
    env = np.exp(-phase * decay) * (t >= offset)
    if stem in ("kick", "toms"):
        f0 = 55 if stem == "kick" else 140
        src = np.sin(2 * np.pi * f0 * phase * (1 + 2 * np.exp(-phase * 30)))
        src = np.stack([src, src])
    else:
        src = rng.standard_normal((2, n))
        if stem in ("hh", "cymbals"):  # bright: first difference as a cheap high-pass
            src = np.diff(src, prepend=0, axis=-1)
    return (0.3 * env * src).astype(np.float32)


def make_dataset(root: str | os.PathLike, tracks: int = 2, seconds: float = 2.0, stems=STEMS,
                 silent: tuple[str, ...] = (), split: str | None = None, seed: int = 0,
                 write_stems: bool = True) -> Path:
    """Write ``root[/split]/<track>/{mixture, <stem>...}.wav`` (only mixtures, like a user folder,
    with ``write_stems=False``); returns the folder of tracks."""
    base = Path(root) / split if split else Path(root)
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    for k in range(tracks):
        stem_audio = {s: (np.zeros((2, n), np.float32) if s in silent else _voice(s, n, rng)) for s in stems}
        folder = base / f"track_{k:02d}"
        for s, audio in stem_audio.items() if write_stems else ():
            write_audio(folder / f"{s}.wav", audio)
        write_audio(folder / "mixture.wav", sum(stem_audio.values()))
    return base


def make_variants(directory: str | os.PathLike, widths=(4, 2), seed: int = 0) -> dict[str, Path]:
    """Random-weight tiny models saved with :func:`save_model`: ``{"teacher": ckpt, "student_c2": ckpt}``."""
    directory = Path(directory)
    paths = {}
    for i, width in enumerate(widths):
        torch.manual_seed(seed + i)
        model = TFC_TDF_net(tiny_spec().replace(model={"num_channels": width, "growth": width}))
        name = "teacher" if i == 0 else f"student_c{width}"
        paths[name] = save_model(model, directory / f"{name}.ckpt")[0]
    return paths

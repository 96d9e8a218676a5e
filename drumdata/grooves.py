"""Procedural, humanised drum grooves.

A groove is a list of :class:`Event` ``(time_seconds, class, instrument, velocity)`` where
``class`` is one of :data:`drumdata.STEMS`, ``instrument`` is a kit-independent *role*
(``hh_open``, ``tom_low``, ... see :data:`drumdata.kits.ROLE_CLASS`) that the renderer resolves
to a concrete instrument of the kit, and ``velocity`` in (0, 1] picks the sample layer.

Everything is drawn from the numpy Generator passed in, so a groove is a pure function of
the generator state (the renderer seeds one Generator per clip).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .kits import ROLE_CLASS

STYLES: tuple[str, ...] = ("rock", "funk", "shuffle", "halftime", "fill")
STYLE_WEIGHTS = np.array([0.35, 0.2, 0.15, 0.15, 0.15])
# Style-typical tempi; together they cover the 60-200 BPM range we train on.
TEMPO_RANGE = {"rock": (70, 180), "funk": (75, 125), "shuffle": (60, 150),
               "halftime": (120, 200), "fill": (60, 200)}

# Kick patterns on a 16-step bar (straight styles) or 12-step bar (shuffle triplets).
KICKS = {
    "rock": ["x.......x.......", "x.......x.x.....", "x......xx.......", "x.x.....x.x.....",
             "x.......x.....x."],
    "funk": ["x..x..x...x..x..", "x.x...x..x......", "x..x.......x.x..", "x.....x.x..x...."],
    "halftime": ["x.....x...x.....", "x..........x..x.", "x.x.......x....."],
    "shuffle": ["x.....x.....", "x.....x.x...", "x....xx....."],
}
TOMS_DOWN = ("tom_hi", "tom_hi", "tom_mid", "tom_mid", "tom_low", "tom_low")


class Event(NamedTuple):
    time: float
    cls: str
    instrument: str
    velocity: float


@dataclass
class Groove:
    style: str
    tempo: float
    seconds: float
    events: list[Event]


def _fill(rng: np.random.Generator, n_steps: int, step_stride: int) -> list[tuple[int, str, float]]:
    """(step, role, velocity) of a fill over ``n_steps`` grid steps: snare then toms moving down,
    crescendo, sometimes doubled by the kick; step_stride 2 gives 8th-note fills."""
    hits = []
    start_role = int(rng.integers(0, 3))  # start on snare, high or mid tom
    positions = list(range(0, n_steps, step_stride))
    for i, step in enumerate(positions):
        frac = i / max(1, len(positions) - 1)
        idx = min(len(TOMS_DOWN) - 1, start_role + int(frac * (len(TOMS_DOWN) - start_role)))
        role = "snare" if (i < 2 and start_role == 0) or rng.random() < 0.12 else TOMS_DOWN[idx]
        hits.append((step, role, 0.55 + 0.4 * frac))
        if rng.random() < 0.2:
            hits.append((step, "kick", 0.7))
    return hits


def _bar(rng: np.random.Generator, style: str, spb: int, timekeeper: str, dense_hats: bool,
         kick: str) -> list[tuple[int, str, float]]:
    """(step, role, velocity) of one plain bar; spb = grid steps per beat (4 straight, 3 shuffle)."""
    n = 4 * spb
    hits = [(s, "kick", 0.85 if s % spb == 0 else 0.7) for s, c in enumerate(kick) if c == "x"]
    backbeats = [2 * spb] if style == "halftime" else [spb, 3 * spb]
    hits += [(s, "snare", 0.9) for s in backbeats]
    if style in ("funk", "shuffle") or rng.random() < 0.3:  # ghost notes between the backbeats
        p = 0.3 if style == "funk" else 0.15
        hits += [(s, "snare", float(rng.uniform(0.1, 0.28))) for s in range(n)
                 if s not in backbeats and s % spb != 0 and rng.random() < p]
    if rng.random() < 0.05:
        hits = [(s, "sidestick" if r == "snare" and v > 0.5 else r, v) for s, r, v in hits]
    # Timekeeping: hats (closed with occasional open on off-beats) or ride with pedal hat.
    if style == "shuffle":
        steps = [s for s in range(n) if s % 3 in (0, 2)]  # swung 8ths on the triplet grid
    else:
        steps = list(range(0, n, 1 if dense_hats else 2))
    for s in steps:
        accent = 0.8 if s % spb == 0 else 0.55
        if timekeeper == "ride":
            hits.append((s, "ride_bell" if rng.random() < 0.05 else "ride", accent))
        else:
            open_hat = s % spb != 0 and rng.random() < (0.35 if timekeeper == "open" else 0.08)
            hits.append((s, "hh_open" if open_hat else "hh_closed", accent))
    if timekeeper == "ride":
        hits += [(s, "hh_pedal", 0.6) for s in backbeats]
    return hits


def make_groove(rng: np.random.Generator, seconds: float, style: str | None = None,
                tempo: float | None = None) -> Groove:
    """Draw a groove of ``seconds`` (events at or after ``seconds`` are dropped)."""
    style = style or str(rng.choice(STYLES, p=STYLE_WEIGHTS))
    if tempo is None:
        lo, hi = TEMPO_RANGE[style]
        tempo = float(rng.uniform(lo, hi))
    spb = 3 if style == "shuffle" else 4
    step_s = 60.0 / tempo / spb
    bar_s = 4 * spb * step_s
    n_bars = int(np.ceil(seconds / bar_s))
    phrase = 1 if style == "fill" else int(rng.choice([2, 4]))
    base_kick = "funk" if style == "fill" and rng.random() < 0.3 else style
    base_kick = "rock" if base_kick == "fill" else base_kick
    tightness = float(rng.uniform(0.002, 0.012))  # per-drummer timing spread in seconds
    dynamics = float(rng.uniform(0.75, 1.0))  # per-clip playing strength
    swing = float(rng.uniform(0.0, 0.15)) if style == "funk" else 0.0
    raw: list[tuple[float, str, float]] = []
    for bar in range(n_bars):
        t0 = bar * bar_s
        if bar % phrase == 0:  # new section: pick timekeeper, hat density, kick pattern
            timekeeper = str(rng.choice(["hh", "open", "ride"], p=[0.65, 0.12, 0.23]))
            dense = style == "funk" or rng.random() < 0.3
            kick = str(rng.choice(KICKS[base_kick]))
        steps_here = min(4 * spb, int(np.ceil((seconds - t0) / step_s)))
        last_in_phrase = bar % phrase == phrase - 1 or bar == n_bars - 1
        fill_p = 1.0 if style == "fill" else 0.45
        fill_from = 4 * spb
        if last_in_phrase and rng.random() < fill_p:
            beats = int(rng.choice([1, 2, 4], p=[0.3, 0.5, 0.2]))
            # end the fill where the bar (or the clip, for the last partial bar) ends
            fill_from = max(0, steps_here - beats * spb)
        hits = [h for h in _bar(rng, style, spb, timekeeper, dense, kick) if h[0] < fill_from]
        if fill_from < 4 * spb:
            hits += [(fill_from + s, r, v) for s, r, v in
                     _fill(rng, steps_here - fill_from, 2 if rng.random() < 0.3 else 1)]
        if bar % phrase == 0 and (bar > 0 or rng.random() < 0.7):
            # crash (sometimes china/splash) on the section start, doubled by the kick, no hat there
            hits = [h for h in hits if not (h[0] == 0 and h[1].startswith(("hh", "ride", "kick")))]
            cym = str(rng.choice(["crash", "china", "splash"], p=[0.85, 0.08, 0.07]))
            hits += [(0, cym, 0.95), (0, "kick", 0.9)]
        for step, role, vel in hits:
            offset = swing * step_s if (spb == 4 and step % 2 == 1) else 0.0
            raw.append((t0 + step * step_s + offset, role, vel))
    events = []
    for t, role, vel in sorted(raw, key=lambda e: (e[0], e[1])):
        t = max(0.0, t + float(rng.normal(0.0, tightness)))
        v = float(np.clip(vel * dynamics * (1.0 + rng.normal(0.0, 0.08)), 0.05, 1.0))
        if t < seconds:
            events.append(Event(round(t, 6), ROLE_CLASS[role], role, round(v, 4)))
    events.sort(key=lambda e: (e.time, e.instrument))
    return Groove(style=style, tempo=round(tempo, 2), seconds=seconds, events=events)

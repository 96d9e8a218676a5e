"""Render one groove with one kit into 5 stems (the audio half of :mod:`drumdata.render`).

Shapes: ``stems`` float32 (5, 2, n) in :data:`drumdata.STEMS` order, ``mixture`` float32 (2, n).
The mixture is always computed by :func:`mix` -- the float32 sum of the stems in STEMS order --
so the mixture file equals the sum of the stem files exactly once both are written as float WAV.
"""
from __future__ import annotations

import numpy as np

from separation.audio import SAMPLE_RATE

from . import STEMS
from .grooves import Groove, make_groove
from .kits import Instrument, Kit
from .songs import song_groove

# Where grooves come from: the procedural generator, the Hydrogen demo songs, or each clip
# tossing a fair coin between the two.
GROOVE_SOURCES = ("procedural", "songs", "mixed")

# When a kit lacks a role, play the nearest role of the same class (never another class).
ROLE_FALLBACK = {
    "rimshot": ["snare"], "sidestick": ["snare"],
    "tom_hi": ["tom_mid", "tom_low"], "tom_mid": ["tom_hi", "tom_low"], "tom_low": ["tom_mid", "tom_hi"],
    "hh_open": ["hh_closed"], "hh_pedal": ["hh_closed"], "hh_closed": ["hh_pedal", "hh_open"],
    "crash": ["splash", "china", "ride"], "china": ["crash", "splash"], "splash": ["crash", "china"],
    "ride": ["crash", "ride_bell"], "ride_bell": ["ride", "crash"],
}
# Drummer's-perspective placement used when a kit leaves an instrument centred (most kits do),
# so that the model sees the stereo cues real overhead/spot-mic mixes have.
TYPICAL_PAN = {"hh_closed": -0.35, "hh_open": -0.35, "hh_pedal": -0.35, "tom_hi": -0.2,
               "tom_mid": 0.1, "tom_low": 0.4, "crash": -0.45, "splash": -0.3, "china": 0.5,
               "ride": 0.45, "ride_bell": 0.45}
CHOKE_FADE = int(0.005 * SAMPLE_RATE)  # 5 ms fade when a closed hat chokes a ringing open hat
ACTIVITY_HOP = 1024
ACTIVITY_DB = -60.0  # frame RMS (dBFS) above which a stem counts as active
SILENT_PEAK = 1e-5  # a mixture below this is an empty clip and is rejected


def mix(stems: np.ndarray) -> np.ndarray:
    """(5, 2, n) -> (2, n): float32 sum in STEMS order (the only way mixtures are made)."""
    out = stems[0].copy()
    for stem in stems[1:]:
        out += stem
    return out


def activity_seconds(audio: np.ndarray) -> float:
    """Seconds of ``(2, n)`` audio whose 1024-sample frame RMS exceeds -60 dBFS."""
    n = audio.shape[-1] // ACTIVITY_HOP * ACTIVITY_HOP
    if n == 0:
        return 0.0
    frames = audio[:, :n].reshape(audio.shape[0], -1, ACTIVITY_HOP).astype(np.float64)
    rms = np.sqrt((frames ** 2).mean(-1)).max(0)
    return float((rms > 10 ** (ACTIVITY_DB / 20)).sum() * ACTIVITY_HOP / SAMPLE_RATE)


def _pick_instruments(kit: Kit, rng: np.random.Generator) -> dict[str, Instrument]:
    """One concrete instrument per role for this clip (a drummer plays one snare per song)."""
    by_role = kit.by_role()
    chosen = {role: insts[int(rng.integers(len(insts)))] for role, insts in by_role.items()}
    for role, alternatives in ROLE_FALLBACK.items():
        if role not in chosen:
            for alt in alternatives:
                if alt in chosen:
                    chosen[role] = chosen[alt]
                    break
    return chosen


def _gains(inst: Instrument, role: str, width: float, rng: np.random.Generator) -> np.ndarray:
    """(2,) constant-power pan gains (1, 1 at centre)."""
    pan = inst.pan if inst.pan != 0.0 else width * (TYPICAL_PAN.get(role, 0.0) + rng.normal(0, 0.08))
    angle = (np.clip(pan, -1.0, 1.0) + 1.0) * np.pi / 4
    return np.sqrt(2.0) * np.array([np.cos(angle), np.sin(angle)], np.float32)


def render_clip(kit: Kit, seconds: float, rng: np.random.Generator,
                grooves: str = "procedural") -> tuple[np.ndarray, Groove] | None:
    """Render one clip: returns (stems float32 (5, 2, n), groove) or None if the clip is silent.

    ``grooves`` is one of :data:`GROOVE_SOURCES`; "procedural" draws nothing extra from ``rng``,
    so its clips are the same as before the song source existed.

    Level: each stem gets a random +-3 dB balance and the whole clip is scaled so its mixture
    peaks at a random -12..-1 dBFS; tails ringing past the clip end are cut with the clip.
    """
    if grooves not in GROOVE_SOURCES:
        raise ValueError(f"grooves must be one of {GROOVE_SOURCES}, not {grooves!r}")
    n = int(round(seconds * SAMPLE_RATE))
    use_songs = grooves == "songs" or (grooves == "mixed" and rng.random() < 0.5)
    groove = song_groove(rng, seconds) if use_songs else make_groove(rng, seconds)
    chosen = _pick_instruments(kit, rng)
    width = float(rng.uniform(0.3, 1.0))
    pan_gain = {role: _gains(inst, role, width, rng) for role, inst in chosen.items()}
    stem_db = rng.uniform(-3.0, 3.0, len(STEMS))
    stems = np.zeros((len(STEMS), 2, n), np.float32)
    hh_times = [e.time for e in groove.events if e.cls == "hh"]
    for event in groove.events:
        inst = chosen.get(event.instrument)
        if inst is None:  # the kit has no instrument of this class at all (e.g. toms in an 808-less kit)
            continue
        layer = inst.layer_for(event.velocity, rng)
        start = int(round(event.time * SAMPLE_RATE))
        audio = layer.audio[:, : n - start]
        if event.instrument == "hh_open":  # hi-hat mute group: the next hat hit chokes it
            later = [t for t in hh_times if t > event.time + 1e-4]
            if later:
                stop = int(round(later[0] * SAMPLE_RATE)) - start
                if stop < audio.shape[1]:
                    audio = audio[:, : stop + CHOKE_FADE].copy()
                    fade = np.linspace(1.0, 0.0, audio.shape[1] - stop, dtype=np.float32)
                    audio[:, stop:] *= fade
        amp = event.velocity * layer.gain * inst.gain
        c = STEMS.index(event.cls)
        stems[c, :, start:start + audio.shape[1]] += (amp * pan_gain[event.instrument])[:, None] * audio
    stems *= (10 ** (stem_db / 20)).astype(np.float32)[:, None, None]
    peak = float(np.abs(mix(stems)).max())
    if peak < SILENT_PEAK:
        return None
    target = 10 ** (rng.uniform(-12.0, -1.0) / 20)
    stems *= np.float32(target / peak)
    return stems, groove

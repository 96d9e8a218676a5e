"""Pure-numpy drum synthesiser: a fallback for machines without hydrogen-drumkits.

Produces :class:`drumdata.kits.Kit` objects (``kind="synthetic"``, ``source="synthetic"``) in the
same in-memory format as real kits: roles, 3 velocity layers per instrument, float32 (2, n)
audio at 44.1 kHz. Harder layers are brighter and have more attack, as real samples do, so
velocity still changes timbre and not only level.

The sounds are crude (sine sweeps, filtered noise, inharmonic partials). They let the pipeline
and tests run anywhere; a model trained on them will not separate real drums well, which is
why the renderer labels such data "synthetic" everywhere and prints how to install real kits.
"""
from __future__ import annotations

import numpy as np

from separation.audio import SAMPLE_RATE

from .kits import Instrument, Kit, Layer

SYNTH_KITS: tuple[str, ...] = tuple(f"synthetic-{c}" for c in "ABCDEF")
LAYERS = ((0.0, 0.4, 0.45), (0.4, 0.75, 0.7), (0.75, 1.0, 1.0))  # (vmin, vmax, brightness)


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE


def _band_noise(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """White noise band-limited to [lo, hi] Hz with an FFT mask (soft edges avoid ringing)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    mask = 1.0 / (1.0 + (lo / np.maximum(f, 1.0)) ** 4) / (1.0 + (f / hi) ** 4)
    out = np.fft.irfft(spec * mask, n)
    return out / (np.abs(out).max() + 1e-9)


def _env(t: np.ndarray, decay: float, attack: float = 0.001) -> np.ndarray:
    return np.minimum(1.0, t / attack) * np.exp(-t / decay)


def _kick(rng, p, b):
    t = _t(0.8)
    f = p["kick_f"] * (1 + 2.5 * b * np.exp(-t / 0.03))  # pitch sweep gives the "thump"
    body = np.sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE) * _env(t, p["kick_decay"])
    click = _band_noise(rng, t.size, 1500, 6000) * _env(t, 0.004) * 0.4 * b
    return body + click


def _snare(rng, p, b):
    t = _t(0.6)
    tone = np.sin(2 * np.pi * p["snare_f"] * t) * _env(t, 0.06)
    wires = _band_noise(rng, t.size, 900, 4000 + 6000 * b) * _env(t, p["snare_decay"])
    return 0.6 * tone + wires


def _sidestick(rng, p, b):
    t = _t(0.15)
    return (_band_noise(rng, t.size, 800, 3000 + 2000 * b) * _env(t, 0.01)
            + 0.5 * np.sin(2 * np.pi * 450 * t) * _env(t, 0.03))


def _tom(rng, p, b, ratio):
    t = _t(1.0)
    f0 = p["tom_f"] * ratio
    f = f0 * (1 + 0.3 * np.exp(-t / 0.05))
    body = np.sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE) * _env(t, p["tom_decay"] / ratio ** 0.5)
    return body + 0.15 * b * _band_noise(rng, t.size, 500, 5000) * _env(t, 0.01)


def _hat(rng, p, b, decay, seconds):
    t = _t(seconds)
    return _band_noise(rng, t.size, p["hat_lo"], 14000 + 4000 * b) * _env(t, decay)


def _cymbal(rng, p, b, decay, seconds, partial_gain, lo):
    t = _t(seconds)
    noise = _band_noise(rng, t.size, lo, 16000) * _env(t, decay, 0.002)
    freqs = p["cym_f"] * np.array([1.0, 1.47, 2.09, 2.56, 3.14, 4.11])  # inharmonic = metallic
    ping = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) for f in freqs) / len(freqs)
    return noise * (0.6 + 0.4 * b) + partial_gain * ping * _env(t, decay * 1.3)


def _stereo(rng: np.random.Generator, make, width: float) -> np.ndarray:
    """(2, n) float32: two renders blended by ``width`` (0 = mono drum, ~0.5 = wide cymbal)."""
    left = make()
    right = make() if width > 0 else left
    mid = (left + right) / 2
    out = np.stack([mid + width * (left - mid), mid + width * (right - mid)])
    return (0.9 * out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def synth_kit(name: str, seed: int = 0) -> Kit:
    """One synthetic kit; parameters depend on ``name`` and ``seed`` so kits differ audibly."""
    index = SYNTH_KITS.index(name) if name in SYNTH_KITS else len(SYNTH_KITS)
    rng = np.random.default_rng([seed, index, 7919])
    p = {"kick_f": rng.uniform(42, 65), "kick_decay": rng.uniform(0.15, 0.35),
         "snare_f": rng.uniform(170, 260), "snare_decay": rng.uniform(0.08, 0.2),
         "tom_f": rng.uniform(80, 110), "tom_decay": rng.uniform(0.2, 0.45),
         "hat_lo": rng.uniform(5000, 8000), "cym_f": rng.uniform(350, 700)}
    recipes = {
        "kick": (lambda b: _kick(rng, p, b), 0.0, 0.0),
        "snare": (lambda b: _snare(rng, p, b), 0.0, 0.05),
        "sidestick": (lambda b: _sidestick(rng, p, b), 0.0, 0.05),
        "tom_hi": (lambda b: _tom(rng, p, b, 2.0), 0.0, -0.3),
        "tom_mid": (lambda b: _tom(rng, p, b, 1.5), 0.0, 0.0),
        "tom_low": (lambda b: _tom(rng, p, b, 1.0), 0.0, 0.35),
        "hh_closed": (lambda b: _hat(rng, p, b, 0.03, 0.25), 0.1, -0.4),
        "hh_pedal": (lambda b: 0.6 * _hat(rng, p, b, 0.02, 0.15), 0.1, -0.4),
        "hh_open": (lambda b: _hat(rng, p, b, 0.35, 1.2), 0.2, -0.4),
        "crash": (lambda b: _cymbal(rng, p, b, 0.8, 2.5, 0.2, 3000), 0.5, -0.5),
        "china": (lambda b: np.tanh(2 * _cymbal(rng, p, b, 0.6, 2.0, 0.4, 2000)), 0.5, 0.5),
        "splash": (lambda b: _cymbal(rng, p, b, 0.3, 1.2, 0.2, 4000), 0.5, -0.2),
        "ride": (lambda b: _cymbal(rng, p, b, 1.2, 2.5, 0.6, 5000) * 0.6, 0.3, 0.5),
        "ride_bell": (lambda b: _cymbal(rng, p, b, 1.0, 2.0, 1.5, 6000) * 0.6, 0.3, 0.5),
    }
    instruments = []
    for role, (make, width, pan) in recipes.items():
        layers = [Layer(vmin, vmax, 1.0, _stereo(rng, lambda b=b: make(b), width))
                  for vmin, vmax, b in LAYERS]
        instruments.append(Instrument(f"{name} {role}", role, 1.0, pan, layers))
    return Kit(name=name, kind="synthetic", instruments=instruments, source="synthetic")

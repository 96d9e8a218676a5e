"""Confidence intervals over tracks, so that a table can tell 0.1 dB from noise.

Per-track SDRs (``evaluate_folders(...)["per_track"]``: ``{track: {stem: {"SDR": v} | None}}``)
are summarised as a mean with a Student-t 95 % interval over tracks. Differences between two
variants are **paired**: the difference is taken per track (same audio, same stem) and the
interval is the one of those differences, which removes the track-to-track spread that both
variants share. Stems missing in a track (silent reference, excluded) drop out of that stem's
statistic. The "mean" entry is the tables' headline number, the mean over stems of the per-stem
means; its interval is a percentile bootstrap over tracks of that same statistic (paired: both
variants resampled on the same tracks), seeded so that a table is reproducible.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

LEVEL = 0.95


def mean_ci(values, level: float = LEVEL) -> dict:
    """``{"mean", "ci", "n"}``: mean of finite ``values`` and the half-width of its Student-t
    interval (None below two values)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return {"mean": None, "ci": None, "n": 0}
    if x.size == 1:
        return {"mean": float(x[0]), "ci": None, "n": 1}
    from scipy import stats

    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return {"mean": float(x.mean()), "ci": float(half), "n": int(x.size)}


def _sdr(per_track: dict, track: str, stem: str) -> float | None:
    entry = (per_track.get(track) or {}).get(stem)
    value = entry.get("SDR") if isinstance(entry, dict) else entry
    return None if value is None or not math.isfinite(value) else float(value)


def _matrix(per_track: dict, tracks, stems) -> np.ndarray:
    """(tracks, stems) SDRs, NaN where a stem was not scored."""
    return np.array([[np.nan if (v := _sdr(per_track, t, s)) is None else v for s in stems] for t in tracks])


def _headline(m: np.ndarray) -> np.ndarray:
    """Mean over stems of the per-stem means over tracks, for a stack (..., tracks, stems)."""
    with warnings.catch_warnings():  # an all-NaN stem (never scored) is NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.nanmean(m, axis=-2), axis=-1)


def _bootstrap(stat, mats: list[np.ndarray], level: float, resamples: int, seed: int) -> dict:
    """Percentile interval of ``stat(*mats)`` with the tracks (rows) resampled jointly."""
    n = mats[0].shape[0]
    point = float(stat(*mats))
    if n < 2 or not math.isfinite(point):
        return {"mean": point if math.isfinite(point) else None, "ci": None, "n": n}
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    draws = stat(*(m[idx] for m in mats))
    draws = draws[np.isfinite(draws)]
    lo, hi = np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2])
    return {"mean": point, "ci": float(hi - lo) / 2, "lo": float(lo), "hi": float(hi), "n": n}


def sdr_with_ci(per_track: dict, stems, level: float = LEVEL, resamples: int = 4000, seed: int = 0) -> dict:
    """``{stem: mean_ci over tracks, "mean": bootstrap interval of the headline mean}``."""
    out = {s: mean_ci([_sdr(per_track, t, s) for t in per_track], level) for s in stems}
    out["mean"] = _bootstrap(_headline, [_matrix(per_track, list(per_track), stems)], level, resamples, seed)
    return out


def paired_delta(per_track: dict, baseline: dict, stems, level: float = LEVEL, resamples: int = 4000,
                 seed: int = 0) -> dict:
    """ΔSDR of ``per_track`` minus ``baseline``, paired over the tracks both scored: per stem a
    t-interval of the per-track differences, for "mean" a paired bootstrap of the headline mean
    computed on the stems/tracks where both have a value."""
    tracks = [t for t in per_track if t in baseline]
    out = {}
    for s in stems:
        pairs = [(_sdr(per_track, t, s), _sdr(baseline, t, s)) for t in tracks]
        out[s] = mean_ci([a - b for a, b in pairs if a is not None and b is not None], level)
    a, b = _matrix(per_track, tracks, stems), _matrix(baseline, tracks, stems)
    both = np.isfinite(a) & np.isfinite(b)
    a, b = np.where(both, a, np.nan), np.where(both, b, np.nan)
    out["mean"] = _bootstrap(lambda x, y: _headline(x) - _headline(y), [a, b], level, resamples, seed)
    return out


def fmt_ci(stat: dict | None, digits: int = 2, signed: bool = False) -> str:
    """``"9.64 ± 0.81"`` (or ``"+0.12 ± 0.05"``); "–" when there is no value."""
    if not stat or stat.get("mean") is None:
        return "–"
    value = f"{stat['mean']:{'+' if signed else ''}.{digits}f}"
    return value if stat.get("ci") is None else f"{value} ± {stat['ci']:.{digits}f}"

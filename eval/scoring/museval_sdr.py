"""BSSEval v4 (museval) SDR/SIR/ISR/SAR per stem, folder against folder, cached and parallel.

Aggregation follows SiSEC/MUSDB: each metric is computed on 1-second frames
(``win = hop = 44100``), reduced to one number per track with the **median over frames**,
then reduced over tracks with both the **mean** (the number the results tables quote, as
MVSEP and the GUIDE do) and the median.

Silence, which drums have a lot of (a track without toms, a bar without cymbals):

* museval marks a frame NaN when any reference (or estimate) in it is exactly silent, so the
  per-track reduction is ``nanmedian`` over frames;
* a track whose reference stem is silent as a whole (RMS below ``threshold_db``, default
  -60 dBFS, :func:`eval.scoring.metrics.active_mask`) has no defined SDR for that stem: it is
  *excluded* from that stem's aggregate, and so is a stem whose every frame is NaN. The number
  of excluded tracks per stem is reported as ``excluded``;
* an estimate that is exactly silent for a whole track where the reference plays (museval
  refuses such input) is not excluded but scored: SDR 0 dB, the value of a silent estimate
  (``10 log10(|s|^2 / |s - 0|^2)``), with SIR/ISR/SAR undefined (None). Excluding it would
  reward a model for giving up on a stem. Frames where only the estimate is silent stay NaN,
  as in museval.

``mode="per_stem"`` (default) evaluates each stem as a two-source problem, the stem against
the sum of the other stems. Why: in ``mode="joint"`` (all five stems in one museval call)
one silent stem in a frame (toms, usually) blanks that frame for *every* stem, which throws
away most of a drum track. In BSSEval v4 the SDR and ISR depend only on a stem's own
reference, so they equal the joint values wherever those exist; SIR/SAR count interference
from "the rest of the kit" instead of from each other stem separately.

Files: ``DIR/<track>/<stem>.wav`` in both folders (the estimate folder of
:mod:`eval.tables.pareto`, a user folder or a dataset split). Audio is read at 44.1 kHz stereo and
cut to the shorter of reference and estimate, so references need not be cropped when a
benchmark only separated the first ``max_seconds``.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from separation.audio import read_audio
from separation.errors import UserError

from .metrics import active_mask, utterance_sdr

METRICS = ("SDR", "SIR", "ISR", "SAR")  # museval.evaluate returns SDR, ISR, SIR, SAR
# Part of every cache key: bump when evaluate_track's semantics change, so old caches are not reused.
EVAL_VERSION = 2
SILENT_ESTIMATE = {"SDR": 0.0, "SIR": None, "ISR": None, "SAR": None}  # see the module docstring
WIN = HOP = 44100


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def list_tracks(directory: str | os.PathLike, stems) -> list[str]:
    """Sub-folders of ``directory`` holding at least one ``<stem>.wav``, sorted."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory} is not a folder of tracks (expected {directory}/<track>/<stem>.wav).")
    return sorted(d.name for d in directory.iterdir()
                  if d.is_dir() and any((d / f"{s}.wav").is_file() for s in stems))


def check_references(reference_dir: Path, tracks, stems) -> None:
    """Every track needs a reference folder with at least one stem file: a missing stem is
    silence, but a wrong folder would otherwise score as "every stem silent" without a word."""
    for track in tracks:
        folder = reference_dir / track
        if not folder.is_dir():
            raise UserError(f"reference folder {folder} is missing for estimated track {track!r}.")
        if not any((folder / f"{s}.wav").is_file() for s in stems):
            raise UserError(f"reference folder {folder} has none of {', '.join(f'{s}.wav' for s in stems)}.")


def load_stem_pair(ref_dir: Path, est_dir: Path, stems) -> tuple[np.ndarray, np.ndarray]:
    """``(S, C, L)`` references and estimates, cut to a common length."""
    refs, ests = [], []
    for stem in stems:
        ref_path, est_path = ref_dir / f"{stem}.wav", est_dir / f"{stem}.wav"
        if not est_path.is_file():
            raise UserError(f"estimate {est_path} is missing; separate that track again or remove its folder.")
        ests.append(read_audio(est_path)[0])
        # A missing reference stem is silence (user folders often omit stems a kit lacks).
        refs.append(read_audio(ref_path)[0] if ref_path.is_file() else np.zeros_like(ests[-1]))
    n = min(min(a.shape[-1] for a in refs), min(a.shape[-1] for a in ests))
    return np.stack([a[:, :n] for a in refs]), np.stack([a[:, :n] for a in ests])


def _museval(refs: np.ndarray, ests: np.ndarray, win: int, hop: int) -> np.ndarray:
    """``(N, C, L)`` each -> ``(4, N, frames)`` in :data:`METRICS` order."""
    import museval  # slow import (pulls musdb/stempeg): only in the workers that need it

    sdr, isr, sir, sar = museval.evaluate(refs.transpose(0, 2, 1), ests.transpose(0, 2, 1),
                                          win=win, hop=hop, mode="v4", padding=True)
    return np.stack([sdr, sir, isr, sar])


def _frame_median(frames: np.ndarray) -> dict | None:
    """``(4, frames)`` -> ``{metric: nanmedian}``; None when no frame has a value."""
    if np.all(np.isnan(frames[0])):
        return None
    with np.errstate(all="ignore"):
        return {m: _finite(np.nanmedian(frames[i])) for i, m in enumerate(METRICS)}


def _finite(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def evaluate_track(refs: np.ndarray, ests: np.ndarray, stems, win: int = WIN, hop: int = HOP,
                   mode: str = "per_stem", threshold_db: float = -60.0) -> dict:
    """museval one track: ``refs``/``ests`` ``(S, C, L)`` -> ``{stem: {metric: value} | None}``.

    None marks an excluded stem (silent reference, or no frame with a value)."""
    if mode not in ("per_stem", "joint"):
        raise UserError(f"museval mode must be 'per_stem' or 'joint', not {mode!r}.")
    active = [bool(a) for a in active_mask(refs, threshold_db)]
    out = {stem: None for stem in stems}
    idx = [i for i, a in enumerate(active) if a]
    if not idx:
        return out
    silent = [i for i in idx if not np.any(ests[i])]
    for i in silent:
        out[stems[i]] = dict(SILENT_ESTIMATE)
    idx = [i for i in idx if i not in silent]
    if mode == "joint":
        if idx:
            frames = _museval(refs[idx], ests[idx], win, hop)
            for k, i in enumerate(idx):
                out[stems[i]] = _frame_median(frames[:, k])
        return out
    for i in idx:
        rest_ref = refs.sum(0) - refs[i]
        rest_est = ests.sum(0) - ests[i]
        # Only this stem plays, or every other estimate is silent: evaluate it as one source
        # (museval refuses a silent source; SDR and ISR depend on the stem's own reference only).
        if not np.any(rest_ref) or not np.any(rest_est):
            frames = _museval(refs[i:i + 1], ests[i:i + 1], win, hop)[:, 0]
        else:
            frames = _museval(np.stack([refs[i], rest_ref]), np.stack([ests[i], rest_est]), win, hop)[:, 0]
        out[stems[i]] = _frame_median(frames)
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _track_key(ref_dir: Path, est_dir: Path, stems, settings: dict, cache_key: str) -> str:
    # Content hashes, not mtimes: the Pareto step rewrites identical estimates on re-runs.
    files = {f"{side}/{s}": (_sha256(p) if p.is_file() else None)
             for side, d in (("ref", ref_dir), ("est", est_dir)) for s in stems for p in [d / f"{s}.wav"]}
    blob = json.dumps({"cache_key": cache_key, "track": ref_dir.name, "settings": settings, "files": files,
                       "eval_version": EVAL_VERSION, "museval": importlib.metadata.version("museval")},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _worker(ref_dir: str, est_dir: str, stems: list, settings: dict) -> dict:
    refs, ests = load_stem_pair(Path(ref_dir), Path(est_dir), stems)
    return evaluate_track(refs, ests, stems, settings["win"], settings["hop"], settings["mode"],
                          settings["threshold_db"])


def aggregate(per_track: dict[str, dict], stems) -> dict:
    """Per-track ``{track: {stem: {metric: v} | None}}`` -> mean/median over tracks per stem.

    Returns ``{"sdr": {stem: mean, "mean": ...}, "sdr_median": {...}, "metrics": {stem: {metric:
    {"mean", "median"}}}, "num_tracks": {stem: n}, "excluded": {stem: n}}``; the ``"mean"`` entry
    of ``sdr`` is the mean over stems that have a value.
    """
    result = {"sdr": {}, "sdr_median": {}, "metrics": {}, "num_tracks": {}, "excluded": {}}
    for stem in stems:
        rows = [t[stem] for t in per_track.values() if t.get(stem)]
        result["num_tracks"][stem] = len(rows)
        result["excluded"][stem] = len(per_track) - len(rows)
        stats = {}
        for m in METRICS:
            vals = [r[m] for r in rows if r.get(m) is not None]
            stats[m] = {"mean": float(np.mean(vals)) if vals else None,
                        "median": float(np.median(vals)) if vals else None}
        result["metrics"][stem] = stats
        result["sdr"][stem] = stats["SDR"]["mean"]
        result["sdr_median"][stem] = stats["SDR"]["median"]
    for key in ("sdr", "sdr_median"):
        vals = [v for v in result[key].values() if v is not None]
        result[key]["mean"] = float(np.mean(vals)) if vals else None
    return result


def evaluate_folders(reference_dir, estimate_dir, stems, jobs: int | None = None,
                     cache_dir: str | os.PathLike | None = None, cache_key: str = "",
                     mode: str = "per_stem", win: int = WIN, hop: int = HOP,
                     threshold_db: float = -60.0, tracks: list[str] | None = None) -> dict:
    """museval every track of ``estimate_dir`` against ``reference_dir`` (both ``<track>/<stem>.wav``).

    Tracks run in parallel over ``jobs`` processes (default: the cores available). With
    ``cache_dir``, each track's result is stored as JSON under a key made of ``cache_key``
    (e.g. the model id), the track, the settings and the SHA-256 of every file, so a re-run
    only computes tracks whose audio or settings changed.

    Returns :func:`aggregate`'s dict plus ``per_track``, ``settings`` and ``cache``
    (``{"hits": n, "computed": n}``).
    """
    reference_dir, estimate_dir, stems = Path(reference_dir), Path(estimate_dir), list(stems)
    tracks = tracks if tracks is not None else list_tracks(estimate_dir, stems)
    if not tracks:
        raise UserError(f"{estimate_dir} holds no track folders with {stems[0]}.wav etc. to evaluate.")
    check_references(reference_dir, tracks, stems)
    settings = {"win": win, "hop": hop, "mode": mode, "threshold_db": threshold_db, "stems": stems}
    per_track, todo, keys = {}, [], {}
    cache = Path(cache_dir) if cache_dir else None
    for track in tracks:
        if cache is not None:
            keys[track] = key = _track_key(reference_dir / track, estimate_dir / track, stems, settings, cache_key)
            hit = cache / f"{track}.{key}.json"
            if hit.is_file():
                per_track[track] = json.loads(hit.read_text())
                continue
        todo.append(track)
    jobs = max(1, min(jobs or available_cores(), len(todo) or 1))
    args = [(str(reference_dir / t), str(estimate_dir / t), stems, settings) for t in todo]

    def finished(track: str, res: dict) -> None:  # cached at once: a later failure loses nothing
        per_track[track] = res
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            tmp = cache / f".{track}.{keys[track]}.json.part"
            tmp.write_text(json.dumps(res))
            os.replace(tmp, cache / f"{track}.{keys[track]}.json")

    if jobs == 1:  # no pool: cheaper for one track and easier to debug
        for track, a in zip(todo, args):
            finished(track, _worker(*a))
    else:
        with ProcessPoolExecutor(jobs) as pool:
            futures = {pool.submit(_worker, *a): track for track, a in zip(todo, args)}
            for future in as_completed(futures):
                finished(futures[future], future.result())
    out = aggregate({t: per_track[t] for t in tracks}, stems)
    out.update(per_track={t: per_track[t] for t in tracks}, settings=settings,
               cache={"hits": len(tracks) - len(todo), "computed": len(todo)})
    return out


def utterance_sdr_folders(reference_dir, estimate_dir, stems, threshold_db: float = -60.0,
                          tracks: list[str] | None = None) -> dict:
    """The fast whole-track SDR (:func:`eval.scoring.metrics.utterance_sdr`) folder against folder.

    Same silence rule and return layout as :func:`evaluate_folders` (metric ``SDR`` only)."""
    reference_dir, estimate_dir, stems = Path(reference_dir), Path(estimate_dir), list(stems)
    tracks = tracks if tracks is not None else list_tracks(estimate_dir, stems)
    check_references(reference_dir, tracks, stems)
    per_track = {}
    for track in tracks:
        refs, ests = load_stem_pair(reference_dir / track, estimate_dir / track, stems)
        values, active = utterance_sdr(refs, ests), active_mask(refs, threshold_db)
        per_track[track] = {s: ({"SDR": float(v)} if a else None) for s, v, a in zip(stems, values, active)}
    out = aggregate(per_track, stems)
    out["per_track"] = per_track
    return out

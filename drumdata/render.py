"""StemGMD-style dataset renderer (CLI: ``python -m drumdata.render --hours H --out DIR``).

Layout written under ``OUT``::

    OUT/{train,valid,test}/<clip_id>/{mixture,kick,snare,toms,hh,cymbals}.wav   float32 stereo 44.1 kHz
    OUT/hf/                      datasets.DatasetDict (train/valid/test) of file PATHS (relative to OUT)
    OUT/metadata.json            settings, per-clip info, summary; written last = "render complete"

Splits are BY KIT (:data:`drumdata.kit_tables.DEFAULT_SPLITS`), so test kits are never heard in
training. Grooves come from the procedural generator, the Hydrogen demo songs
(:mod:`drumdata.songs`) or both (``--grooves``). Clip ``i`` is rendered from
``np.random.default_rng([seed, i])`` alone, so the same settings give bit-identical audio whatever
the number of worker processes.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from separation.audio import SAMPLE_RATE, write_audio
from separation.errors import UserError, exit_on_user_error

from . import STEMS
from .kits import DEFAULT_KITS_DIR, INSTALL_HINT, default_split, list_kits, load_kit, usable
from .mixer import GROOVE_SOURCES, activity_seconds, mix, render_clip
from .songs import load_songs
from .synth import SYNTH_KITS, synth_kit

RENDER_VERSION = 1
SPLITS = ("train", "valid", "test")
SPLIT_SHARE = {"train": 0.8, "valid": 0.1, "test": 0.1}
MAX_ATTEMPTS = 8  # re-draws of a silent clip before giving up on it
_KIT_CACHE: dict[str, object] = {}  # one kit per process: kits are up to ~150 MB decoded


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def _get_kit(source: str, name: str, kits_dir: str):
    if name not in _KIT_CACHE:
        _KIT_CACHE.clear()
        _KIT_CACHE[name] = synth_kit(name) if source == "synthetic" else load_kit(name, kits_dir)
    return _KIT_CACHE[name]


def choose_kits(source: str, kits_dir: str | Path, kits: list[str] | None, log=print) -> tuple[str, dict]:
    """Resolve the source ("auto" | "hydrogen" | "synthetic") and return (source, {split: [kit]})."""
    if source not in ("auto", "hydrogen", "synthetic"):
        raise UserError(f"unknown source {source!r}; use auto, hydrogen or synthetic.")
    if source in ("auto", "hydrogen"):
        try:
            names = list_kits(kits_dir)
            source = "hydrogen"
        except UserError:
            if source == "hydrogen":
                raise
            log(f"NOTE: no Hydrogen kits in {kits_dir}: rendering SYNTHETIC drums; {INSTALL_HINT}.")
            source, names = "synthetic", list(SYNTH_KITS)
    else:
        names = list(SYNTH_KITS)
    if kits:
        missing = [k for k in kits if k not in names]
        if missing:
            raise UserError(f"kit(s) {', '.join(missing)} not found; available: {', '.join(names)}.")
        names = [k for k in names if k in kits]
    if source == "hydrogen":  # parse XML only (cheap) to drop percussion-only kits
        names = [k for k in names if usable(load_kit(k, kits_dir, load_audio=False))]
    if not names:
        raise UserError(f"none of the selected kits has kick, snare and hi-hat; {INSTALL_HINT}.")
    by_split = {s: [k for k in names if default_split(k) == s] for s in SPLITS}
    return source, by_split


def plan_clips(n_clips: int, by_split: dict[str, list[str]], seed: int) -> list[dict]:
    """Deterministic clip plan: split counts ~80/10/10 (at least one clip per split that has kits
    when n_clips allows), kits cycled through a seeded permutation inside each split."""
    live = [s for s in SPLITS if by_split[s]]
    counts = {s: (1 if n_clips >= len(live) else 0) for s in live}
    rest = n_clips - sum(counts.values())
    total = sum(SPLIT_SHARE[s] for s in live)
    for s in live:
        counts[s] += int(rest * SPLIT_SHARE[s] / total)
    counts[live[0]] += n_clips - sum(counts.values())
    rng = np.random.default_rng([seed, 1 << 20])
    plan, index = [], 0
    for s in live:
        order = [by_split[s][i] for i in rng.permutation(len(by_split[s]))]
        for j in range(counts[s]):
            kit = order[j % len(order)]
            plan.append({"index": index, "split": s, "kit": kit, "clip_id": f"{index:05d}-{_slug(kit)}"})
            index += 1
    return plan


def _render_batch(args: tuple) -> list[dict]:
    """Worker: render + write the clips of one kit batch; returns per-clip metadata."""
    batch, out_dir, seed, seconds, source, kits_dir, grooves = args
    kit = _get_kit(source, batch[0]["kit"], kits_dir)
    results = []
    for clip in batch:
        rng = np.random.default_rng([seed, clip["index"]])
        rendered, attempts = None, 0
        while rendered is None and attempts < MAX_ATTEMPTS:
            rendered, attempts = render_clip(kit, seconds, rng, grooves), attempts + 1
        if rendered is None:
            results.append({**clip, "rejected": attempts, "ok": False})
            continue
        stems, groove = rendered
        rel = Path(clip["split"]) / clip["clip_id"]
        for name, audio in zip(STEMS, stems):
            write_audio(Path(out_dir) / rel / f"{name}.wav", audio)
        write_audio(Path(out_dir) / rel / "mixture.wav", mix(stems))
        results.append({
            **clip, "ok": True, "rejected": attempts - 1, "kind": kit.kind, "source": kit.source,
            "style": groove.style, "tempo": groove.tempo, "seconds": seconds, "events": len(groove.events),
            "dir": rel.as_posix(), "activity": {n: round(activity_seconds(a), 3) for n, a in zip(STEMS, stems)},
            "skipped_samples": kit.skipped_samples, "unmapped": kit.unmapped,
        })
    return results


def _save_hf(out_dir: Path, clips: list[dict]) -> None:
    """DatasetDict of paths (relative to OUT) so loading never holds audio in memory."""
    import datasets

    features = datasets.Features({
        "track": datasets.Value("string"), "split": datasets.Value("string"),
        "kit": datasets.Value("string"), "kind": datasets.Value("string"),
        "style": datasets.Value("string"), "tempo": datasets.Value("float64"),
        "seconds": datasets.Value("float64"), "mixture": datasets.Value("string"),
        **{s: datasets.Value("string") for s in STEMS},
        **{f"activity_{s}": datasets.Value("float32") for s in STEMS},
    })
    splits = {}
    for split in SPLITS:
        rows = [c for c in clips if c["split"] == split]
        if not rows:  # an empty split cannot be reloaded by datasets.load_from_disk
            continue
        cols = {"track": [c["clip_id"] for c in rows], "split": [split] * len(rows),
                "kit": [c["kit"] for c in rows], "kind": [c["kind"] for c in rows],
                "style": [c["style"] for c in rows], "tempo": [c["tempo"] for c in rows],
                "seconds": [c["seconds"] for c in rows],
                "mixture": [f"{c['dir']}/mixture.wav" for c in rows]}
        cols.update({s: [f"{c['dir']}/{s}.wav" for c in rows] for s in STEMS})
        cols.update({f"activity_{s}": [c["activity"][s] for c in rows] for s in STEMS})
        splits[split] = datasets.Dataset.from_dict(cols, features=features)
    datasets.disable_progress_bars()  # our own tqdm bar is the progress report
    try:
        datasets.DatasetDict(splits).save_to_disk(str(out_dir / "hf"))
    finally:
        datasets.enable_progress_bars()


def _prepare_out(out_dir: Path) -> None:
    """Empty or earlier-render directory only: we never delete files we did not write."""
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = [p for p in out_dir.iterdir() if not p.name.startswith(".")]
    ours = {"metadata.json", "hf", *SPLITS}
    if entries and not (out_dir / "metadata.json").exists() and not {p.name for p in entries} <= ours:
        raise UserError(f"{out_dir} is not empty and holds no earlier render; choose an empty directory.")
    (out_dir / "metadata.json").unlink(missing_ok=True)  # first: an interrupted render is never "done"
    for name in ("hf", *SPLITS):
        shutil.rmtree(out_dir / name, ignore_errors=True)


def summarize(meta: dict) -> str:
    """Human-readable summary of a metadata dict."""
    s = meta["summary"]
    label = "SYNTHETIC fallback drums (not real kits)" if s["source"] == "synthetic" else "real Hydrogen kits"
    lines = [f"source: {label}", f"clips: {s['clips_total']}  audio: {s['hours']:.3f} h  "
             f"wall: {s['wall_seconds']:.1f} s  ({s['hours'] / max(s['wall_seconds'] / 60, 1e-9):.3f} audio-h per wall-min)"]
    for split in SPLITS:
        d = s["splits"][split]
        act = ", ".join(f"{k} {v:.0f}s" for k, v in d["activity"].items())
        lines.append(f"  {split:5s}: {d['clips']} clips, {d['seconds']:.0f} s; active: {act}")
        lines.append(f"         kits: {', '.join(d['kits']) or '-'}")
    lines.append(f"skipped unreadable samples: {s['skipped_samples']}; rejected silent clips: {s['rejected_clips']}")
    n_unmapped = sum(len(v) for v in s["unmapped"].values())
    if n_unmapped:
        lines.append(f"unmapped instruments left out (cowbell, claps, ...): {n_unmapped}; "
                     "listed per kit in metadata.json summary.unmapped")
    if s["source"] == "synthetic":
        lines.append(f"for real drums, {INSTALL_HINT}, then re-render.")
    return "\n".join(lines)


def render(out_dir: str | os.PathLike, hours: float, seed: int = 0, clip_seconds: float = 10.0,
           kits_dir: str | os.PathLike = DEFAULT_KITS_DIR, source: str = "auto", workers: int = 1,
           kits: list[str] | None = None, grooves: str = "procedural", progress: bool = True,
           log=print) -> dict:
    """Render ``hours`` of clips into ``out_dir``; returns the metadata dict (also in metadata.json).

    ``grooves``: "procedural", "songs" (Hydrogen demo songs) or "mixed" (a coin toss per clip).
    """
    if not hours > 0 or not clip_seconds >= 0.5:
        raise UserError("--hours must be > 0 and --clip-seconds at least 0.5.")
    if grooves not in GROOVE_SOURCES:
        raise UserError(f"unknown groove source {grooves!r}; use {', '.join(GROOVE_SOURCES)}.")
    if grooves != "procedural":
        load_songs()  # a missing hydrogen-data fails here, before anything is written
    t0 = time.time()
    out_dir = Path(out_dir)
    settings = {"version": RENDER_VERSION, "hours": hours, "seed": seed, "clip_seconds": clip_seconds,
                "kits_dir": str(kits_dir), "source": source, "kits": sorted(kits) if kits else None,
                "grooves": grooves}
    source, by_split = choose_kits(source, kits_dir, kits, log)
    _prepare_out(out_dir)
    plan = plan_clips(max(1, math.ceil(hours * 3600 / clip_seconds - 1e-9)), by_split, seed)
    batches, by_kit = [], {}
    for clip in plan:
        by_kit.setdefault(clip["kit"], []).append(clip)
    for kit_clips in by_kit.values():  # small batches keep the progress bar moving
        batches += [kit_clips[i:i + 8] for i in range(0, len(kit_clips), 8)]
    jobs = [(b, str(out_dir), seed, clip_seconds, source, str(kits_dir), grooves) for b in batches]
    from tqdm import tqdm

    bar = tqdm(total=len(plan), unit="clip", desc="render", disable=not progress, file=sys.stderr)
    results: list[dict] = []
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            for res in pool.imap_unordered(_render_batch, jobs):
                results += res
                bar.update(len(res))
    else:
        for job in jobs:
            res = _render_batch(job)
            results += res
            bar.update(len(res))
    bar.close()
    results.sort(key=lambda c: c["index"])
    clips = [c for c in results if c["ok"]]
    if not clips:
        raise UserError("every clip rendered silent; the selected kits have no usable samples.")
    _save_hf(out_dir, clips)
    skipped = {c["kit"]: c["skipped_samples"] for c in clips}
    summary = {"source": source, "clips_total": len(clips), "hours": len(clips) * clip_seconds / 3600,
               "wall_seconds": time.time() - t0, "skipped_samples": sum(skipped.values()),
               "rejected_clips": sum(c["rejected"] for c in results), "splits": {},
               "unmapped": {c["kit"]: c["unmapped"] for c in clips}}
    for split in SPLITS:
        rows = [c for c in clips if c["split"] == split]
        summary["splits"][split] = {
            "clips": len(rows), "seconds": len(rows) * clip_seconds, "kits": sorted({c["kit"] for c in rows}),
            "activity": {s: round(sum(c["activity"][s] for c in rows), 2) for s in STEMS}}
    keep = ("clip_id", "split", "kit", "kind", "source", "style", "tempo", "seconds", "events", "dir", "activity")
    meta = {"settings": settings, "sample_rate": SAMPLE_RATE, "stems": list(STEMS),
            "paths_relative_to": "this directory", "summary": summary,
            "clips": [{k: c[k] for k in keep} for c in clips]}
    tmp = out_dir / ".metadata.json.part"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out_dir / "metadata.json")
    return meta


def ensure_rendered(out_dir: str | os.PathLike, hours: float, seed: int = 0, **kwargs) -> Path:
    """Render unless ``out_dir/metadata.json`` already records the same settings (a cache)."""
    out_dir = Path(out_dir)
    kits = kwargs.get("kits")
    wanted = {"version": RENDER_VERSION, "hours": hours, "seed": seed,
              "clip_seconds": kwargs.get("clip_seconds", 10.0),
              "kits_dir": str(kwargs.get("kits_dir", DEFAULT_KITS_DIR)),
              "source": kwargs.get("source", "auto"), "kits": sorted(kits) if kits else None,
              "grooves": kwargs.get("grooves", "procedural")}
    try:
        recorded = json.loads((out_dir / "metadata.json").read_text())["settings"]
        # renders made before the song source existed record no "grooves": they are procedural
        done = {"grooves": "procedural", **recorded} == wanted
    except (OSError, ValueError, KeyError, TypeError):
        done = False
    if not done or not (out_dir / "hf").is_dir():
        render(out_dir, hours, seed, **kwargs)
    return out_dir


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m drumdata.render", description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, required=True, help="total audio to render")
    ap.add_argument("--out", required=True, help="output directory (empty, or an earlier render)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clip-seconds", type=float, default=10.0)
    ap.add_argument("--kits-dir", default=str(DEFAULT_KITS_DIR))
    ap.add_argument("--source", choices=["auto", "hydrogen", "synthetic"], default="auto",
                    help="auto = Hydrogen kits if installed, else the synthetic fallback")
    ap.add_argument("--kits", default=None, help="comma-separated kit names to restrict to")
    ap.add_argument("--grooves", choices=list(GROOVE_SOURCES), default="procedural",
                    help="procedural generator, Hydrogen demo songs (hydrogen-data), or mixed 50/50 per clip")
    ap.add_argument("--workers", type=int, default=1, help="processes (2 at most on a 2-core machine)")
    args = ap.parse_args(argv)
    kits = [k.strip() for k in args.kits.split(",")] if args.kits else None
    meta = render(args.out, args.hours, args.seed, args.clip_seconds, args.kits_dir, args.source,
                  max(1, args.workers), kits, args.grooves)
    print(summarize(meta))
    print(f"wrote {args.out}/metadata.json and {args.out}/hf")


if __name__ == "__main__":
    main()

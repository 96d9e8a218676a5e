"""The speed/quality table: every variant separated, timed and scored on the same audio.

    python -m eval.pareto configs/eval/pareto_demo.yaml [--out-dir DIR] [--max-tracks N]

A config (YAML, or the dict :func:`run_pareto` takes) names a dataset and the variants::

    dataset: {root: /data/drums, split: test}     # or {folder: my_tracks}; max_tracks, max_seconds
    out_dir: results/pareto
    imports: [compress.eval_hooks]               # modules that call register_loader()
    threads: 2                                   # torch.set_num_threads (default: torch's choice)
    timing_rounds: 3                             # time every variant 3 times, interleaved (default 1)
    variants:
      - {name: teacher, model: drumsep-5stem-jarredou, kind: teacher, runner: {num_overlap: 4}}
      - {name: c32, model: ckpt/student.ckpt, config: null, kind: student, runner: {batch_size: 2}}
      - {name: c32_ov, model: ckpt/student.ckpt, kind: student, backend: openvino, precision: bf16}

Per variant it writes ``OUT/estimates/<variant>/<track>/<stem>.wav``, times the separation
(seconds, peak RSS) in this process, then, with the CPU free again, scores it with museval
against the ground truth (if the tracks have stems) and against the teacher's estimates
("fidelity", which needs no ground truth). Outputs: ``results.json`` / ``.csv`` / ``.md`` and
``pareto.png`` in ``OUT``. Separation resumes: a track whose stems and timing are on disk for
the same settings is not separated again, and museval results are cached by file hash.

``timing_rounds: N`` times every variant N times in this process, interleaved (teacher, A, B,
teacher, A, B, ...; rounds after the first on the mixtures held in memory, writing nothing). A
machine whose speed drifts slows a whole round rather than one variant, so each round's ratio to
the teacher compares like with like: the table gives the median seconds and the median of the
per-round ratios, ``results.json`` every round. A round whose tracks were resumed from disk (timed
by another process) is left out.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import importlib
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Callable

import torch
import yaml

from separation import STEMS
from separation.audio import read_audio, write_audio
from separation.errors import CheckpointError, UserError, exit_on_user_error
from separation.pretrained import REGISTRY, resolve
from separation.runner import Runner

from ..timing.benchlib import (build_model, command_string, machine_info, model_stats,
                       runner_for, time_call, warm_up)
from ..scoring.museval_sdr import evaluate_folders, utterance_sdr_folders
from ..scoring.stats import paired_delta, sdr_with_ci
from separation.atomic_io import atomic_write_text

from .report import write_tables
from .tracks import find_tracks, has_ground_truth

KINDS = ("teacher", "student", "pruned", "int8", "onnx", "other")
LOADERS: dict[str, Callable[[dict], object]] = {}


def register_loader(kind: str, fn: Callable[[dict], object]) -> None:
    """Make ``kind`` loadable: ``fn(entry) -> model`` where ``entry`` is the variant's config dict
    and ``model`` maps ``(B, 2, chunk) -> (B, S, 2, chunk)`` (ideally with ``.spec``/``.stems``;
    without ``.spec`` the entry's ``runner.chunk_size`` is required). Replaces an earlier loader."""
    LOADERS[kind] = fn


def load_checkpoint_or_random(entry: dict):
    """Default loader: registry name or checkpoint path; ``model: random`` builds ``config`` with
    random weights (seeded by ``seed``), for timing and tests."""
    model, config = entry.get("model"), entry.get("config")
    if model in (None, "random"):
        if not config:
            raise UserError(f"variant {entry.get('name')!r} has no model and no config; give one of them.")
        return build_model(config, width=entry.get("width"), seed=int(entry.get("seed", 0)))
    return build_model(config, str(model), weights=entry.get("weights"))


for _kind in ("teacher", "student", "pruned", "other"):
    register_loader(_kind, load_checkpoint_or_random)


def stored_file_mb(entry: dict) -> float | None:
    """MiB on disk of the file a variant is loaded from as stored (checkpoint, registry file,
    .onnx, also one exported at load time to ``onnx:``); None when the variant is made at load
    time (``prune:``/``quant:``, int8 recipes, random weights), whose base file would say
    nothing about it."""
    from separation.pretrained import REGISTRY, resolve

    model = entry.get("model")
    kind = entry.get("kind", "other")
    if not model or model == "random" or entry.get("prune") or entry.get("quant") or kind == "int8":
        return None
    if kind == "onnx" and not str(model).endswith(".onnx"):
        model = entry.get("onnx")  # exported at load time to this file (None: a temp file)
        if not model:
            return None
    path = Path(str(model))
    if not path.is_file() and model in REGISTRY:
        try:
            path = resolve(model, entry.get("weights"), allow_download=False)[0]
        except Exception:  # not cached here: no size rather than a download
            return None
    return path.stat().st_size / 2**20 if path.is_file() else None


def _require_loader(entry: dict) -> None:
    kind = entry.get("kind", "other")
    if kind not in LOADERS:
        raise UserError(f"variant {entry.get('name')!r} has kind {kind!r} but no loader is registered for it; "
                        f"list the module that registers it under 'imports:' (known: {sorted(LOADERS)}).")


def load_variant(entry: dict):
    """The variant's model, run on ``entry["backend"]`` (torch, compile, onnx, openvino; with
    ``precision: bf16`` for OpenVINO) through the same cached export as ``separate --backend``.
    A separator on another runtime keeps its torch model as ``base_model``, so parameters and
    FLOPs are still counted."""
    _require_loader(entry)
    model = LOADERS[entry.get("kind", "other")](entry)
    backend = entry.get("backend", "torch")
    if backend == "torch":
        return model
    if not isinstance(model, torch.nn.Module) or getattr(model, "spec", None) is None:
        raise UserError(f"variant {entry['name']!r}: backend {backend!r} needs a torch model with a config, "
                        f"and kind {kind!r} does not give one.")
    from separation.backends import prepare_backend

    separator = prepare_backend(model, backend, threads=torch.get_num_threads(),
                                precision=entry.get("precision", "fp32"),
                                chunk_size=(entry.get("runner") or {}).get("chunk_size"),
                                log=lambda msg: print(f"[pareto] {msg}", file=sys.stderr))
    if separator is not model:
        separator.base_model = model
    return separator


# ------------------------------------------------------------------------------ dataset
# ------------------------------------------------------------------------------ separation
def _file_stamp(path) -> list | None:
    """(size, mtime) of a file named in a config, or of the checkpoint a registry name such as
    ``drumsep-demo-teacher`` stands for (so a re-trained bundled teacher is separated again
    rather than served from stale estimates); None for anything else."""
    if path and not Path(str(path)).is_file() and str(path) in REGISTRY:
        try:
            path = resolve(str(path), allow_download=False)[0]
        except CheckpointError:
            return None
    if not path or not Path(str(path)).is_file():
        return None
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def _settings_key(entry: dict, max_seconds) -> str:
    """What a stored estimate and its timing depend on: the variant's entry, the files it names
    (checkpoint, config, weights) and the thread count the timing was taken with."""
    stamps = {k: _file_stamp(entry.get(k)) for k in ("model", "config", "weights")}
    blob = json.dumps({"entry": entry, "max_seconds": max_seconds, "stamps": stamps,
                       "threads": torch.get_num_threads()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def separate_variant(entry: dict, model, runner: Runner, tracks, out: Path, stems, max_seconds=None, resume=True):
    """Separate all ``tracks`` with ``model`` through ``runner``; returns (:func:`model_stats`, timing totals).

    Timing covers ``Runner.separate`` only (not file IO); per track it is stored in
    ``timing.json`` beside the stems so an interrupted run resumes where it stopped."""
    stats = model_stats(getattr(model, "base_model", model), runner.chunk_size, runner.num_overlap,
                        device=runner.device)
    warm_up(runner)
    key = _settings_key(entry, max_seconds)
    seconds = audio_seconds = peak = peak_total = 0.0
    resumed = 0
    for track, folder in tracks:
        dest = out / track
        timing_path = dest / "timing.json"
        mixture = _file_stamp(folder / "mixture.wav")
        if resume and timing_path.is_file() and all((dest / f"{s}.wav").is_file() for s in stems):
            timing = json.loads(timing_path.read_text())
            if timing.get("key") == key and timing.get("mixture") == mixture:
                seconds, audio_seconds = seconds + timing["seconds"], audio_seconds + timing["audio_seconds"]
                peak, resumed = max(peak, timing["peak_rss_mb"]), resumed + 1
                peak_total = max(peak_total, timing.get("peak_rss_total_mb", 0.0))
                continue
        mix, sr = _read_mixture(folder, max_seconds)
        est, took, rss = time_call(lambda: runner.separate(mix))
        if est.shape[0] != len(stems):
            raise UserError(f"variant {entry['name']!r} returns {est.shape[0]} stems, the teacher {len(stems)}.")
        timing_path.unlink(missing_ok=True)  # stems being rewritten are not a finished track
        for stem, audio in zip(stems, est):
            write_audio(dest / f"{stem}.wav", audio, sr)
        timing = {"key": key, "mixture": mixture, "seconds": took, "audio_seconds": mix.shape[-1] / sr,
                  "peak_rss_mb": rss.peak_mb, "peak_rss_total_mb": rss.total_mb}
        atomic_write_text(timing_path, json.dumps(timing))
        seconds, audio_seconds, peak = seconds + took, audio_seconds + timing["audio_seconds"], max(peak, rss.peak_mb)
        peak_total = max(peak_total, rss.total_mb)
    return stats, {"seconds": seconds, "audio_seconds": audio_seconds, "peak_rss_mb": peak,
            "peak_rss_total_mb": peak_total, "tracks_resumed": resumed,
            "num_overlap": runner.num_overlap, "batch_size": runner.batch_size, "chunk_size": runner.chunk_size,
            "precision": runner.inference_precision, "window": runner.window_kind, "wiener": runner.wiener, "wiener_hop": runner.wiener_hop,
            "wiener_grid": runner.wiener_grid,
            "device": str(runner.device)}


def _read_mixture(folder: Path, max_seconds=None):
    """A track's ``mixture.wav`` and its rate, cut to ``max_seconds`` when given."""
    mix, sr = read_audio(folder / "mixture.wav")
    return (mix[:, : int(max_seconds * sr)] if max_seconds else mix), sr


def retime_rounds(runners: dict[str, Runner], mixes: list, rounds: int) -> dict[str, list[float]]:
    """``rounds`` more timings of every runner on ``mixes``, interleaved (A B C A B C ...); the
    outputs are discarded. Returns each runner's seconds per round (summed over the mixtures)."""
    seconds = {name: [] for name in runners}
    for r in range(rounds):
        for name, runner in runners.items():
            print(f"[pareto] timing round {r + 2} of {rounds + 1}: {name}", file=sys.stderr)
            seconds[name].append(sum(time_call(lambda: runner.separate(mix))[1] for mix in mixes))
    return seconds


def round_ratios(rounds: dict[str, list[float]], teacher: str) -> dict[str, list[float]]:
    """Per round, the teacher's seconds over each variant's: ratios paired within a round."""
    return {name: [t / s if s else None for t, s in zip(rounds[teacher], own)] for name, own in rounds.items()}


# ------------------------------------------------------------------------------ main
def _check_variants(variants: list[dict], teacher: str | None) -> str:
    if not variants:
        raise UserError("the config lists no variants.")
    names = [v.get("name") for v in variants]
    if None in names or len(set(names)) != len(names):
        raise UserError(f"every variant needs a unique 'name' (got {names}).")
    for v in variants:
        if v.get("kind", "other") not in KINDS and v.get("kind") not in LOADERS:
            raise UserError(f"variant {v['name']!r}: unknown kind {v.get('kind')!r}; use one of {KINDS}.")
        _require_loader(v)  # before any separation: a plug-in missing from `imports:` fails now, not an hour in
    teacher = teacher or next((v["name"] for v in variants if v.get("kind") == "teacher"), None)
    if teacher not in names:
        raise UserError("no teacher: mark one variant 'kind: teacher' or set 'teacher: <variant name>'.")
    return teacher


def _delta(a: dict, b: dict) -> dict:
    return {k: (a[k] - b[k] if a.get(k) is not None and b.get(k) is not None else None) for k in a}


def run_pareto(cfg: dict) -> list[dict]:
    """Run the whole table for ``cfg`` (the YAML's dict); returns one row per variant and writes
    ``results.json/.csv/.md`` and ``pareto.png`` to ``cfg['out_dir']``."""
    if hasattr(cfg, "_metadata"):  # an OmegaConf DictConfig (Hydra): plain containers from here on
        from omegaconf import OmegaConf
        cfg = OmegaConf.to_container(cfg, resolve=True)
    cfg = copy.deepcopy(dict(cfg))
    for module in cfg.get("imports") or []:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise UserError(f"cannot import loader plugin {module!r} listed under 'imports' ({err}).") from None
    threads = torch.get_num_threads()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    try:
        return _run(cfg)
    finally:  # callers (tests, notebooks) keep their own thread setting
        torch.set_num_threads(threads)


def _run(cfg: dict) -> list[dict]:
    variants = cfg.get("variants") or []
    teacher = _check_variants(variants, cfg.get("teacher"))
    dataset = cfg.get("dataset") or {}
    out = Path(cfg.get("out_dir") or "results/pareto")
    tracks, base = find_tracks(dataset)
    ev = {"jobs": None, "mode": "per_stem", "fidelity": True, **(cfg.get("museval") or {})}
    resume = cfg.get("resume", True)
    rounds = int(cfg["timing_rounds"]) if cfg.get("timing_rounds") is not None else 1
    if rounds < 1:
        raise UserError(f"timing_rounds must be >= 1 (got {rounds}).")
    stems, timings, stats, runners = None, {}, {}, {}
    variants = sorted(variants, key=lambda v: v["name"] != teacher)  # teacher first: its stems name the rest
    for entry in variants:  # phase 1: separation and timing only, nothing else competes for the CPU
        model = load_variant(entry)
        own = getattr(model, "stems", None)
        stems = stems or list(own or STEMS)
        if own and list(own) != stems:  # same count, other order: every file would be mislabelled
            raise UserError(f"variant {entry['name']!r} has stems {list(own)}, the teacher {stems}; "
                            "export it with the teacher's stem order.")
        print(f"[pareto] separating {len(tracks)} tracks with {entry['name']}", file=sys.stderr)
        runner = runner_for(model, entry.get("runner") or {})
        stats[entry["name"]], timings[entry["name"]] = separate_variant(
            entry, model, runner, tracks, out / "estimates" / entry["name"], stems, dataset.get("max_seconds"), resume)
        if rounds > 1:  # kept loaded for the interleaved rounds below
            runners[entry["name"]] = runner
        del model, runner
    if rounds > 1:
        extra = retime_rounds(runners, [_read_mixture(folder, dataset.get("max_seconds"))[0] for _, folder in tracks],
                              rounds - 1)
        runners.clear()
        fresh = all(t["tracks_resumed"] == 0 for t in timings.values())  # round 1 timed here too
        per_round = {name: ([timings[name]["seconds"]] if fresh else []) + extra[name] for name in timings}
        for name, ratios in round_ratios(per_round, teacher).items():
            timings[name].update(seconds_rounds=per_round[name], speed_ratio_rounds=ratios,
                                 seconds=statistics.median(per_round[name]))
    truth = has_ground_truth(tracks, stems)
    machine = machine_info()
    command = cfg.get("command") or " ".join([Path(sys.executable).name, *sys.argv])
    rows, teacher_tracks = [], None
    for entry in variants:  # phase 2: scoring (parallel museval, cached)
        name, t = entry["name"], timings[entry["name"]]
        est = out / "estimates" / name
        common = {"stems": stems, "jobs": ev["jobs"], "mode": ev["mode"], "cache_dir": out / "cache",
                  "tracks": [tr for tr, _ in tracks]}
        row = {"variant": name, "kind": entry.get("kind", "other"), "model": entry.get("model"), **stats[name],
               "file_mb": stored_file_mb(entry),
               "seconds": t["seconds"], "audio_seconds": t["audio_seconds"],
               "seconds_per_audio_minute": t["seconds"] / t["audio_seconds"] * 60,
               "rtf": t["seconds"] / t["audio_seconds"],
               **{k: v for k, v in t.items() if k not in ("seconds", "audio_seconds")}}
        detail = {}
        if truth:
            print(f"[pareto] museval {name}", file=sys.stderr)
            detail["sdr"] = evaluate_folders(base, est, cache_key=f"gt:{name}", **common)
            detail["usdr"] = utterance_sdr_folders(base, est, stems, tracks=common["tracks"])
            per_track = detail["sdr"]["per_track"]
            row.update(sdr=detail["sdr"]["sdr"], sdr_median=detail["sdr"]["sdr_median"],
                       excluded=detail["sdr"]["excluded"], usdr=detail["usdr"]["sdr"],
                       sdr_ci=sdr_with_ci(per_track, stems), num_tracks=len(per_track))
            teacher_tracks = teacher_tracks if name != teacher else per_track
            row["delta_sdr_ci"] = paired_delta(per_track, teacher_tracks, stems)
        if name != teacher and ev["fidelity"]:
            detail["fidelity"] = evaluate_folders(out / "estimates" / teacher, est, cache_key=f"fid:{name}", **common)
            row["fidelity_sdr"] = detail["fidelity"]["sdr"]
        atomic_write_text(out / "eval" / f"{name}.json", json.dumps(detail, indent=1))
        rows.append(row)
    base_row = rows[0]
    for row in rows:
        row["speed_ratio_vs_teacher"] = base_row["seconds"] / row["seconds"] if row["seconds"] else None
        if row.get("speed_ratio_rounds") and None not in row["speed_ratio_rounds"]:
            row["speed_ratio_vs_teacher"] = statistics.median(row["speed_ratio_rounds"])  # paired within each round
        if truth:
            row["delta_sdr_vs_teacher"] = _delta(row["sdr"], base_row["sdr"])
        row.update(machine=machine, command=command)
    meta = {"teacher": teacher, "stems": stems, "ground_truth": truth, "dataset": dataset,
            "tracks": [tr for tr, _ in tracks], "machine": machine, "command": command, "config": cfg}
    write_tables(rows, meta, out)
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.pareto", description="Speed/quality table of model variants.")
    p.add_argument("config", help="YAML with dataset, out_dir and variants (see configs/eval/pareto_demo.yaml)")
    p.add_argument("--out-dir", help="override out_dir")
    p.add_argument("--data", help="override the dataset: a dataset root (its --split folder) or a folder of tracks")
    p.add_argument("--split", default="test", help="split of --data (default test)")
    p.add_argument("--max-tracks", type=int, help="override dataset.max_tracks")
    p.add_argument("--max-seconds", type=float, help="override dataset.max_seconds")
    p.add_argument("--jobs", type=int, help="museval processes (default: all cores)")
    p.add_argument("--only", help="comma-separated variant names to run (the teacher is always kept)")
    p.add_argument("--no-resume", action="store_true", help="separate everything again")
    return p


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from separation.machine import keep_freed_memory

    keep_freed_memory()  # as the separate CLI does, so its timings hold for it
    path = Path(args.config)
    if not path.is_file():
        raise UserError(f"config {path} does not exist.")
    cfg = yaml.safe_load(path.read_text()) or {}
    cfg.setdefault("dataset", {})
    if args.out_dir:
        cfg["out_dir"] = args.out_dir
    if args.data:  # same variants, other audio (e.g. the second held-out set)
        keep = {k: v for k, v in cfg["dataset"].items() if k in ("max_tracks", "max_seconds")}
        data = Path(args.data)
        cfg["dataset"] = {**keep, **({"root": str(data), "split": args.split} if (data / args.split).is_dir()
                                     else {"folder": str(data)})}
    for key in ("max_tracks", "max_seconds"):
        if getattr(args, key) is not None:
            cfg["dataset"][key] = getattr(args, key)
    if args.jobs:
        cfg.setdefault("museval", {})["jobs"] = args.jobs
    if args.only:
        keep = {name.strip() for name in args.only.split(",")}
        names = {v.get("name") for v in cfg.get("variants") or []}
        if keep - names:
            raise UserError(f"--only names unknown variants {sorted(keep - names)}; the config has {sorted(names)}.")
        teacher = _check_variants(cfg.get("variants") or [], cfg.get("teacher"))
        cfg["variants"] = [v for v in cfg["variants"] if v["name"] in keep or v["name"] == teacher]
    if args.no_resume:
        cfg["resume"] = False
    cfg["command"] = command_string("eval.pareto", argv)
    rows = run_pareto(cfg)
    print((Path(cfg.get("out_dir") or "results/pareto") / "results.md").read_text())
    del rows


if __name__ == "__main__":
    # Run through the importable module, not __main__: plug-ins listed under `imports:` register
    # their loaders with `eval.tables.pareto`, which would otherwise be a second copy of this module.
    from eval.tables.pareto import main as _main
    _main()

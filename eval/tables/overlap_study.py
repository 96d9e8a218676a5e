"""How much overlap does a model need? SDR and time for every runner setting of one model.

    python -m eval.overlap_study --model drumsep-demo-teacher --data /data/drums --max-tracks 3
    python -m eval.overlap_study --config my.yaml --data my_tracks/ --overlaps 1 2 4

Grid: ``num_overlap`` in {1, 2, 4, 8} x chunk size in {the training chunk
(``audio.chunk_size``, MSST's default), jarredou's inference chunk 523,776 (11.9 s), UVR's
``hop_length * 255`` (256 STFT frames, ~3 s)} (a size already listed under another name is run
once) x window in {``msst`` linear fades, ``hann`` taper}. The baseline is what MSST does by
default (training chunk, ``msst``, ``num_overlap=4``). ΔSDR against it is paired per track with a
95 % interval (:mod:`eval.scoring.stats`); the study names the cheapest setting whose mean ΔSDR is
within each tolerance (0.1 dB: "identical quality", 1 dB). All settings are timed in one process
on the same audio before any scoring starts, so the times compare.

Writes ``OUT/overlap_study.json``, ``.md`` and ``.png``; estimates go to
``OUT/estimates/<setting>/<track>/<stem>.wav`` and museval results are cached.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from separation import STEMS
from separation.audio import read_audio, write_audio
from separation.errors import UserError, exit_on_user_error

from ..timing.benchlib import (build_model, command_string, machine_info, model_stats,
                       parse_cli, runner_for, time_call, warm_up)
from ..scoring.museval_sdr import evaluate_folders, utterance_sdr_folders
from ..scoring.stats import fmt_ci, paired_delta, sdr_with_ci
from .tracks import find_tracks, has_ground_truth
from separation.atomic_io import atomic_write_text

OVERLAPS = (1, 2, 4, 8)
WINDOWS = ("msst", "hann")
CHUNKS = ("training", "jarredou", "uvr")
JARREDOU_CHUNK = 523_776  # inference.chunk_size of jarredou's published config
TOLERANCES = (0.1, 1.0)


def chunk_sizes(model, which=CHUNKS) -> dict[str, int]:
    """``{label: samples}`` in ``which`` order, each size once (the first label names it)."""
    spec = model.spec
    sizes = {"training": spec.audio.chunk_size, "jarredou": JARREDOU_CHUNK, "uvr": spec.audio.hop_length * 255}
    out = {}
    for label in which:
        if sizes[label] not in out.values():
            out[label] = sizes[label]
    return out


def run_overlap_study(model, dataset: dict, out, overlaps=OVERLAPS, chunks=CHUNKS, windows=WINDOWS,
                      metric: str = "museval", jobs: int | None = None, tolerances=TOLERANCES,
                      batch_size: int = 1) -> dict:
    """Separate, time and score every setting; returns ``{"rows", "baseline", "best", ...}``
    (``best``: ``{tolerance: cheapest setting within it}``).

    Each row: ``num_overlap``, ``chunk_label``, ``chunk_size``, ``window``, ``seconds``,
    ``seconds_per_audio_minute``, ``rtf``, ``speed_ratio`` (baseline seconds / seconds),
    ``peak_rss_mb``, ``gflop_per_audio_second``, ``sdr`` ({stem: mean over tracks, "mean"}),
    ``sdr_mean``, ``sdr_ci`` and ``delta`` (paired ΔSDR vs the baseline, each ``{"mean", "ci", "n"}``)."""
    out = Path(out)
    tracks, base = find_tracks(dataset)
    stems = list(getattr(model, "stems", None) or STEMS)
    if not has_ground_truth(tracks, stems):
        raise UserError(f"{base} has no stem files; the overlap study needs ground truth <track>/<stem>.wav.")
    mixes = {}
    for track, folder in tracks:
        mix, sr = read_audio(folder / "mixture.wav")
        mixes[track] = mix[:, : int(dataset["max_seconds"] * sr)] if dataset.get("max_seconds") else mix
    audio_seconds = sum(m.shape[-1] for m in mixes.values()) / 44100
    settings = [(o, c, size, w) for c, size in chunk_sizes(model, chunks).items() for w in windows for o in overlaps]
    rows, flops = [], {}
    for num_overlap, label, size, window in settings:  # phase 1: timing only
        runner = runner_for(model, {"chunk_size": size, "num_overlap": num_overlap, "window": window,
                                    "batch_size": batch_size})
        name = f"{label}_{window}_o{num_overlap}"
        if size not in flops:  # one counted forward and one warm-up batch per chunk size
            flops[size] = model_stats(model, size, 1)
            warm_up(runner)
        stats = {**flops[size], "gflop_per_audio_second": (flops[size]["gflop_per_audio_second"] or 0) * num_overlap
                 or None}
        seconds, peak = 0.0, 0.0
        for track, mix in mixes.items():
            est, took, rss = time_call(lambda: runner.separate(mix))
            seconds, peak = seconds + took, max(peak, rss.peak_mb)
            for stem, audio in zip(stems, est):
                write_audio(out / "estimates" / name / track / f"{stem}.wav", audio)
        print(f"[overlap] {name}: {seconds:.1f} s", file=sys.stderr)
        rows.append({"setting": name, "num_overlap": num_overlap, "chunk_label": label, "chunk_size": size,
                     "window": window, "batch_size": batch_size, "seconds": seconds,
                     "seconds_per_audio_minute": seconds / audio_seconds * 60, "rtf": seconds / audio_seconds,
                     "peak_rss_mb": peak, **stats})
    per_track = {}
    for row in rows:  # phase 2: scoring
        est = out / "estimates" / row["setting"]
        if metric == "museval":
            res = evaluate_folders(base, est, stems, jobs=jobs, cache_dir=out / "cache", cache_key=row["setting"],
                                   tracks=list(mixes))
        else:
            res = utterance_sdr_folders(base, est, stems, tracks=list(mixes))
        per_track[row["setting"]] = res["per_track"]
        row.update(sdr=res["sdr"], sdr_mean=res["sdr"]["mean"], excluded=res["excluded"],
                   sdr_ci=sdr_with_ci(res["per_track"], stems))
    first = next(iter(chunk_sizes(model, chunks)))  # "training" unless left out
    baseline = next((r for r in rows if (r["chunk_label"], r["window"], r["num_overlap"]) == (first, "msst", 4)),
                    None)
    best = {}
    if baseline is not None:
        for row in rows:
            row["speed_ratio"] = baseline["seconds"] / row["seconds"] if row["seconds"] else None
            row["delta"] = paired_delta(per_track[row["setting"]], per_track[baseline["setting"]], stems)
        for tol in tolerances:
            ok = [r for r in rows if r["delta"]["mean"]["mean"] is not None and r["delta"]["mean"]["mean"] >= -tol]
            best[str(tol)] = min(ok, key=lambda r: r["seconds"])["setting"] if ok else None
    return {"rows": rows, "baseline": baseline["setting"] if baseline else None, "best": best,
            "tolerances_db": list(tolerances), "metric": metric, "stems": stems, "tracks": list(mixes),
            "audio_seconds": audio_seconds, "machine": machine_info()}


def _num(value, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def markdown(study: dict) -> str:
    stems = study["stems"]
    lines = ["| setting | chunk | window | num_overlap | s / audio min | speed × baseline | mean SDR | "
             "Δ mean vs baseline | " + " | ".join(f"Δ {s}" for s in stems) + " |",
             "|" + "---|" * (8 + len(stems))]
    marks = {}
    for tol, name in (study.get("best") or {}).items():
        marks.setdefault(name, []).append(f"cheapest within {tol} dB")
    for r in sorted(study["rows"], key=lambda r: r["seconds"]):
        mark = f" **({', '.join(marks[r['setting']])})**" if r["setting"] in marks else ""
        delta = r.get("delta") or {}
        lines.append(f"| {r['setting']}{mark} | {r['chunk_size']} | {r['window']} | {r['num_overlap']} | "
                     f"{r['seconds_per_audio_minute']:.1f} | {_num(r.get('speed_ratio'), '.2f')} | "
                     f"{fmt_ci((r.get('sdr_ci') or {}).get('mean')) if r.get('sdr_ci') else _num(r['sdr_mean'], '.2f')} | "
                     f"{fmt_ci(delta.get('mean'), signed=True)} | "
                     + " | ".join(fmt_ci(delta.get(s), signed=True) for s in stems) + " |")
    return "\n".join(lines) + f"\n\nBaseline: {study['baseline']}; metric: {study['metric']}; " \
        f"tracks: {len(study['tracks'])} ({study['audio_seconds']:.0f} s; ± = 95 % interval over tracks, Δ paired " \
        f"per track); machine: {study['machine'].get('cpu')}; command: `{study.get('command')}`\n"


def write_study(study: dict, out) -> None:
    import matplotlib.pyplot as plt

    from .plots import plot_overlap

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "overlap_study.json", json.dumps(study, indent=2))
    atomic_write_text(out / "overlap_study.md", markdown(study))
    fig = plot_overlap(study["rows"])
    fig.savefig(out / "overlap_study.png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.overlap_study", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="registry name or checkpoint (default: random weights from --config)")
    p.add_argument("--config", help="MSST YAML (needed with random weights)")
    p.add_argument("--data", required=True, help="dataset root (with --split) or a folder of <track>/ folders")
    p.add_argument("--split", default="test")
    p.add_argument("--max-tracks", type=int)
    p.add_argument("--max-seconds", type=float)
    p.add_argument("--overlaps", type=int, nargs="+", default=list(OVERLAPS))
    p.add_argument("--chunks", nargs="+", default=list(CHUNKS), choices=CHUNKS)
    p.add_argument("--windows", nargs="+", default=list(WINDOWS), choices=WINDOWS)
    p.add_argument("--metric", default="museval", choices=["museval", "usdr"])
    p.add_argument("--tolerances", type=float, nargs="+", default=list(TOLERANCES),
                   help="dB below the baseline still accepted (the cheapest setting within each is named)")
    p.add_argument("--jobs", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--out-dir", default="results/overlap_study")
    return p


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = parse_cli(build_parser(), argv)
    model = build_model(args.config, args.model)
    data = Path(args.data)
    dataset = {"root": str(data), "split": args.split} if (data / args.split).is_dir() else {"folder": str(data)}
    dataset.update(max_tracks=args.max_tracks, max_seconds=args.max_seconds)
    study = run_overlap_study(model, dataset, args.out_dir, args.overlaps, args.chunks, args.windows,
                              args.metric, args.jobs, args.tolerances)
    study["command"] = command_string("eval.overlap_study", argv)
    write_study(study, args.out_dir)
    print(markdown(study))


if __name__ == "__main__":
    main()

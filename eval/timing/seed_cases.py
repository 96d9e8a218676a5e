"""The "seed cases" speed preset: what users actually feed the separator.

A 30-s clip, a 3.5-min track and a 10.5-min mix, each at 22.05/44.1/48 kHz, mono and stereo:
18 cases. Each case is timed end to end: resampling to 44.1 kHz and duplicating mono to
stereo (:func:`separation.audio.resample` / :func:`~separation.audio.to_stereo`), then the
runner. The default model is a random-init c=32 network (``python -m eval.speed --preset
seed_cases``); with c=32 on a 2-core CPU the whole preset takes well over half an hour, so
``--durations`` can shorten it for a smoke run.
"""
from __future__ import annotations

import time

from .benchlib import command_string, machine_info, matmul_peak_gflops

DURATIONS = {"clip_30s": 30.0, "track_3.5min": 210.0, "mix_10.5min": 630.0}
SAMPLE_RATES = (22050, 44100, 48000)
CHANNELS = (1, 2)


def run_seed_cases(model, name: str, runner_kwargs: dict, durations: list[float] | None = None) -> dict:
    """Time every case; returns ``{"cases": [row...], "machine", "command", ...}``.

    Rows have the GUIDE speed fields plus ``case``, ``audio`` and ``preprocess_seconds``."""
    import sys

    from .measure import time_generated_input

    cases = ({f"{d:g}s": d for d in durations} if durations else DURATIONS)
    rows, stats, peak = [], {}, matmul_peak_gflops()
    started = time.perf_counter()
    for case, seconds in cases.items():
        for sr in SAMPLE_RATES:
            for channels in CHANNELS:
                row = time_generated_input(model, name, seconds, sr, channels, runner_kwargs,
                                           warmup=not rows, matmul_peak=peak, stats=stats)
                row["case"] = f"{case} {sr / 1000:g}kHz {'mono' if channels == 1 else 'stereo'}"
                rows.append(row)
                print(f"{row['case']}: {row['seconds']:.1f} s ({row['seconds_per_audio_minute']:.1f} s/min)",
                      file=sys.stderr)
    return {"preset": "seed_cases", "variant": name, "cases": rows, "total_seconds": time.perf_counter() - started,
            "matmul_peak_gflops": peak, "machine": machine_info(),
            "command": command_string("eval.speed")}


COLUMNS = ("case", "audio s", "preprocess s", "total s", "s / audio min", "RTF", "RSS growth MB", "peak RSS MB")


def _cells(r: dict) -> list[str]:
    total = r.get("peak_rss_total_mb")  # absent in reports written before it was recorded
    return [r["case"], f"{r['audio_seconds']:.1f}", f"{r['preprocess_seconds']:.2f}", f"{r['seconds']:.1f}",
            f"{r['seconds_per_audio_minute']:.1f}", f"{r['rtf']:.3f}", f"{r['peak_rss_mb']:.0f}",
            f"{total:.0f}" if total is not None else "–"]


def markdown_table(rows: list[dict]) -> str:
    """The same table as :func:`print_table`, as Markdown for results/ and the README."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def print_table(rows: list[dict]) -> None:
    """A rich table on stderr (stdout stays pure JSON)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="seed cases (end to end: resample + stereo + runner)")
    for col in COLUMNS:
        table.add_column(col, justify="right" if col != "case" else "left")
    for r in rows:
        table.add_row(*_cells(r))
    Console(stderr=True).print(table)

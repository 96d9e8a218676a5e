"""Timing primitives shared by the speed reports: one model or many on the same audio in this
process, the straightforward reference implementation beside them, preprocessing folded in."""
from __future__ import annotations

import numpy as np

from separation.audio import resample, to_stereo
from separation.runner import ChunkPlan

from .benchlib import (matmul_peak_gflops, model_stats, runner_for, synthetic_mix, time_call,
                       warm_up)
from .reference_runner import reference_separate


def benchmark_variants(variants: dict, mix: np.ndarray, runner_kwargs: dict | None = None,
                       reference_variant: str = "teacher", sample_rate: int = 44100,
                       per_variant_kwargs: dict[str, dict] | None = None, warmup: bool = True,
                       with_reference_impl: bool = False, progress: bool = False,
                       matmul_peak: float | None = None, stats: dict[str, dict] | None = None,
                       outputs: dict | None = None) -> list[dict]:
    """Time every model of ``variants`` (name -> module ``(B, 2, chunk) -> (B, S, 2, chunk)``) on
    the same ``mix`` ``(C, L)`` in this process, one after the other.

    ``runner_kwargs`` go to every :class:`Runner` (``chunk_size`` defaults to the model's
    ``spec.audio.chunk_size``), ``per_variant_kwargs[name]`` override them. Each row carries
    the GUIDE results fields plus ``speed_ratio_vs_teacher`` = teacher seconds / variant
    seconds (> 1: faster than the teacher; None when ``reference_variant`` is not timed).
    ``with_reference_impl`` also times ``eval/timing/reference_runner.py`` on each variant.
    ``matmul_peak`` / ``stats`` (name -> :func:`model_stats`) skip re-measuring them when the
    same variants are timed on many clips; ``stats`` is filled in for the caller.
    ``outputs``, when given, receives each variant's separated stems (for nulls between them).
    """
    audio_seconds = mix.shape[-1] / sample_rate
    peak = matmul_peak or matmul_peak_gflops()
    stats_cache = stats if stats is not None else {}
    rows = []
    for name, model in variants.items():
        kwargs = {**(runner_kwargs or {}), **(per_variant_kwargs or {}).get(name, {})}
        runner = runner_for(model, kwargs, progress=progress)
        key = (name, runner.chunk_size, runner.num_overlap)
        fresh = key not in stats_cache
        if fresh:
            stats_cache[key] = model_stats(model, runner.chunk_size, runner.num_overlap, sample_rate,
                                           device=runner.device)
        stats = stats_cache[key]
        if warmup:
            warm_up(runner, mix.shape[0])
        out, seconds, rss = time_call(lambda: runner.separate(mix))
        if outputs is not None:
            outputs[name] = out
        row = {"variant": name, **stats,
               "seconds": seconds, "audio_seconds": audio_seconds,
               "seconds_per_audio_minute": seconds / audio_seconds * 60, "rtf": seconds / audio_seconds,
               "peak_rss_mb": rss.peak_mb, "peak_rss_total_mb": rss.total_mb, "num_overlap": runner.num_overlap, "batch_size": runner.batch_size,
               "chunk_size": runner.chunk_size, "window": runner.window_kind, "precision": runner.inference_precision,
               "device": str(runner.device), "matmul_peak_gflops": peak}
        gf = stats["gflop_per_chunk"]
        plan = ChunkPlan(mix.shape[-1], runner.chunk_size, runner.num_overlap)
        chunks = plan.num_chunks
        row["num_chunks"] = chunks  # computed; MSST's demix (and the reference impl) run msst_chunks
        row["msst_chunks"] = plan.total_chunks
        row["achieved_gflops"] = gf * chunks / seconds if gf else None
        row["fraction_of_matmul_peak"] = row["achieved_gflops"] / peak if gf else None
        if with_reference_impl:
            row["reference_impl"] = time_reference(model, mix, runner, out, audio_seconds)
        rows.append(row)
    base = next((r["seconds"] for r in rows if r["variant"] == reference_variant), None)
    for row in rows:
        row["speed_ratio_vs_teacher"] = base / row["seconds"] if base else None
    return rows


def time_reference(model, mix, runner, runner_out, audio_seconds, keep: dict | None = None) -> dict:
    """Time ``eval/timing/reference_runner.py`` (whole-track buffers, batch 1, msst window) on ``mix``;
    with ``keep``, its output goes into ``keep["out"]`` (torch fp32: a null base for the other rows)."""
    if runner.window_kind != "msst" or runner.device.type != "cpu":
        return {"skipped": "the reference implementation only knows the msst window on the CPU"}
    out, seconds, rss = time_call(lambda: reference_separate(model, mix, runner.chunk_size, runner.num_overlap))
    if keep is not None:
        keep["out"] = out
    return {"seconds": seconds, "seconds_per_audio_minute": seconds / audio_seconds * 60,
            "peak_rss_mb": rss.peak_mb, "peak_rss_total_mb": rss.total_mb, "max_abs_diff_vs_runner": float(np.abs(out - runner_out).max())}


def add_preprocess(row: dict, pre_seconds: float, audio: dict) -> dict:
    """Fold the resampling/stereo time into the row's totals (the user waits for both)."""
    row["audio"] = audio
    row["preprocess_seconds"] = pre_seconds
    row["runner_seconds"] = row["seconds"]
    row["seconds"] += pre_seconds
    row["seconds_per_audio_minute"] = row["seconds"] / row["audio_seconds"] * 60
    row["rtf"] = row["seconds"] / row["audio_seconds"]
    return row


def time_generated_input(model, name: str, seconds: float, sample_rate: int, channels: int,
                         runner_kwargs: dict | None, **bench_kwargs) -> dict:
    """One model, end to end, on generated audio of ``seconds`` at ``sample_rate`` with
    ``channels``: conversion to 44.1 kHz stereo is timed (``preprocess_seconds``) and included
    in ``seconds``/``seconds_per_audio_minute``. ``bench_kwargs`` go to :func:`benchmark_variants`."""
    raw = synthetic_mix(seconds, sample_rate, channels)
    mix, pre_seconds, _ = time_call(lambda: to_stereo(resample(raw, sample_rate, 44100)))
    row = benchmark_variants({name: model}, mix, runner_kwargs, reference_variant=name, progress=True,
                             **bench_kwargs)[0]
    row.pop("speed_ratio_vs_teacher")
    return add_preprocess(row, pre_seconds, {"seconds": seconds, "sample_rate": sample_rate, "channels": channels})


def null_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Residual energy of ``estimate`` against ``reference`` in dB (-inf: identical)."""
    err = float(np.square(estimate.astype(np.float64) - reference).sum())
    return float("-inf") if err == 0 else 10 * np.log10(err / float(np.square(reference.astype(np.float64)).sum()))



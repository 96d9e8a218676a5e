"""Plots for the results: the Pareto plot, per-stem SDR bars, the overlap study, spectrograms.

Functions return matplotlib figures and never call ``show``: notebooks display them, the
CLIs save them (headless matplotlib falls back to ``Agg`` by itself)."""
from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter


def quality(row: dict) -> tuple[float | None, str]:
    """Mean museval SDR against the ground truth, else mean fidelity SDR (teacher = reference)."""
    sdr = (row.get("sdr") or {}).get("mean")
    if sdr is not None:
        return sdr, "mean SDR (dB)"
    return (row.get("fidelity_sdr") or {}).get("mean"), "mean fidelity SDR vs teacher (dB)"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and quality (higher),
    sorted by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot_pareto(rows: list[dict], x: str = "seconds_per_audio_minute", ax=None):
    """Quality vs cost (``x``: ``seconds_per_audio_minute``, log axis, or ``speed_ratio_vs_teacher``),
    each point labelled with its 95 % interval over tracks where known, the Pareto front as a line. The teacher has no fidelity, so without
    ground truth it is drawn at the top edge."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.5, 4.5))
    pts, labels, errs, ylabel = [], [], [], "quality"
    for r in rows:
        q, ylabel_r = quality(r)
        if r.get(x) is None:
            continue
        ylabel = ylabel_r if q is not None else ylabel
        pts.append((r[x], q))
        labels.append(r["variant"])
        errs.append(((r.get("sdr_ci") or {}).get("mean") or {}).get("ci") if q is not None and r.get("sdr") else None)
    finite = [p[1] for p in pts if p[1] is not None]
    top = (max(finite) + 1.0) if finite else 0.0
    pts = [(a, b if b is not None else top) for a, b in pts]
    cost = [(a if x != "speed_ratio_vs_teacher" else -a, b) for a, b in pts]  # a higher ratio is cheaper
    for (a, b), err in zip(pts, errs):
        ax.errorbar(a, b, yerr=err, fmt="o", capsize=3, zorder=3)  # 95 % interval over tracks
    if pts:
        front = pareto_front(cost)
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", color="grey", zorder=2,
                label="Pareto front")
        ax.legend(loc="lower right")
    if x == "seconds_per_audio_minute":
        ax.set_xscale("log")
        # Plain numbers at 1-2-3-5 steps: the default log labels (3x10^0, 4x10^0, ...) run into each other.
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("seconds per minute of audio (log, lower is faster)")
    else:
        ax.set_xlabel("speed × teacher (higher is faster)")
    _annotate_apart(ax, pts, labels)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig


def _annotate_apart(ax, pts: list[tuple[float, float]], labels: list[str], fontsize: int = 9) -> None:
    """Label each point 5 pt up and right of it, moving a label down a line while it would overlap
    one already placed (variants of equal speed and quality, e.g. fp32 and bf16 of one model, would
    overprint). Clashes are found in pixels at the current limits; each label is placed in points
    from its own point, so it stays beside it under any later layout, zoom or dpi."""
    ax.figure.draw_without_rendering()  # brings the autoscaled limits up to date
    renderer = ax.figure.canvas.get_renderer()
    pt = ax.figure.dpi / 72  # pixels per point
    line_pt = 1.3 * fontsize  # one line of labels, in points
    line, placed = line_pt * pt, []  # placed: (x0, x1, y) pixel extents of the labels so far
    for (a, b), label in zip(pts, labels):
        text = ax.annotate(label, (a, b), textcoords="offset points", xytext=(5, 5), fontsize=fontsize)
        px, py = ax.transData.transform((a, b)) + 5 * pt
        width = text.get_window_extent(renderer).width
        drop = 0
        while any(px < x1 and qx < px + width and abs(py - drop * line - qy) < line for qx, x1, qy in placed):
            drop += 1
        placed.append((px, px + width, py - drop * line))
        text.xyann = (5, 5 - drop * line_pt)


def plot_stem_sdr(rows: list[dict], stems: list[str], key: str = "sdr", ax=None):
    """Grouped bars: one group per stem, one bar per variant (``key``: ``sdr`` or ``fidelity_sdr``)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 4))
    rows = [r for r in rows if r.get(key)]
    width = 0.8 / max(len(rows), 1)
    for i, r in enumerate(rows):
        vals = [r[key].get(s) if r[key].get(s) is not None else np.nan for s in stems]
        ax.bar(np.arange(len(stems)) + i * width, vals, width, label=r["variant"])
    ax.set_xticks(np.arange(len(stems)) + 0.4 - width / 2, stems)
    ax.set_ylabel(f"{key} (dB)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_overlap(rows: list[dict], ax=None):
    """Overlap study: SDR vs seconds per audio minute, one line per (chunk, window)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.5, 4.5))
    groups = {}
    for r in rows:
        groups.setdefault((r["chunk_label"], r["window"]), []).append(r)
    for (chunk, window), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["num_overlap"])
        ax.plot([r["seconds_per_audio_minute"] for r in rs], [r["sdr_mean"] for r in rs], "o-",
                label=f"{chunk}, {window}")
        for r in rs:
            ax.annotate(str(r["num_overlap"]), (r["seconds_per_audio_minute"], r["sdr_mean"]),
                        textcoords="offset points", xytext=(3, 3), fontsize=8)
    ax.set_xlabel("seconds per minute of audio (labels: num_overlap)")
    ax.set_ylabel("mean SDR (dB)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def spectrogram(audio: np.ndarray, sample_rate: int = 44100, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    """``(C, L)`` or ``(L,)`` -> dB magnitude ``(bins, frames)`` of the channel mean."""
    import torch

    x = torch.as_tensor(np.asarray(audio, np.float32))
    x = x.mean(0) if x.ndim == 2 else x
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True).abs()
    return (20 * torch.log10(spec + 1e-6)).numpy()


def plot_spectrograms(signals: dict[str, np.ndarray], sample_rate: int = 44100, title: str = ""):
    """One row per named ``(C, L)`` signal (mixture, reference, teacher, student ...)."""
    fig, axes = plt.subplots(len(signals), 1, figsize=(8, 1.8 * len(signals)), sharex=True, squeeze=False)
    for ax, (name, audio) in zip(axes[:, 0], signals.items()):
        s = spectrogram(audio, sample_rate)
        dur = np.asarray(audio).shape[-1] / sample_rate
        ax.imshow(s, origin="lower", aspect="auto", vmin=-80, vmax=max(s.max(), -60),
                  extent=(0, dur, 0, sample_rate / 2000), cmap="magma")
        ax.set_ylabel(f"{name}\nkHz", fontsize=8)
    axes[-1, 0].set_xlabel("seconds")
    fig.suptitle(title)
    fig.tight_layout()
    return fig

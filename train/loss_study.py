"""Compare training losses on the same CPU budget: one learning curve per loss, one table, one plot.

    python -m train.loss_study --minutes 6 --losses l1,mse,mse_stft,masked_mse,mrstft,snr_floor

Each loss trains the same small TFC_TDF_net from the same seed on the same in-memory bank with
:mod:`train.onthefly_teacher`, one after the other (so each has the machine to itself), and is
validated on the held-out validation kits. Writes ``OUT/loss_study.json`` (every curve),
``OUT/loss_study.md`` (the last point per loss) and ``OUT/loss_study.png`` (validation SDR per
stem against wall clock). A rerun resumes: finished losses are not trained again.

``--curves NAME=curve.json ...`` trains nothing: it draws the same table and plot from curves that
runs elsewhere wrote (e.g. on a lent GPU, ``scripts/gpu_teacher_session.sh``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from drumdata import STEMS
from eval.timing.benchlib import machine_info
from separation.atomic_io import atomic_write_text

from .onthefly_teacher import main as train_one

METRIC_LABELS = {"sdr": "validation SDR (dB)", "fsdr": "val. frame-median SDR (dB)"}


def plot(curves: dict[str, list[dict]], path: Path, metric: str = "sdr") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [metric] + [f"{metric}_{s}" for s in STEMS]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.2), sharex=True)
    for name, rows in curves.items():
        for ax, key in zip(axes, keys):
            ax.plot([r["seconds"] / 60 for r in rows], [r.get(key, float("nan")) for r in rows], label=name)
    for ax, key in zip(axes, keys):
        ax.set_title(key.replace(f"{metric}_", "") if key != metric else "mean"), ax.set_xlabel("minutes"), ax.grid(alpha=.3)
    axes[0].set_ylabel(METRIC_LABELS[metric])
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(curves: dict[str, list[dict]], metric: str = "sdr") -> str:
    head = "| run | steps | minutes | mean | " + " | ".join(STEMS) + " |\n|---|---|---|---|" + "---|" * len(STEMS)
    lines = [head]
    for name, rows in curves.items():
        r = rows[-1]
        stems = " | ".join(f"{r.get(f'{metric}_{s}', float('nan')):.2f}" for s in STEMS)
        lines.append(f"| {name} | {r['step']} | {r['seconds'] / 60:.1f} | {r.get(metric, float('nan')):.2f} | {stems} |")
    return "\n".join(lines) + "\n"


def report_curves(named_paths: list[str], out: Path, metric: str = "sdr") -> dict:
    """Table and plot (``OUT/learning_curve[_fsdr].md``/``.png``) of curves written by other runs."""
    curves = {}
    for item in named_paths:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"--curves takes NAME=path/to/curve.json; {item!r} is not that (or the file is missing).")
        curves[name] = json.loads(Path(path).read_text())["curve"]
    stem = "learning_curve" if metric == "sdr" else f"learning_curve_{metric}"
    atomic_write_text(out / f"{stem}.md", markdown(curves, metric))
    plot(curves, out / f"{stem}.png", metric)
    print(markdown(curves, metric))
    return curves


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--losses", default="l1,mse,mse_stft,masked_mse,mrstft,snr_floor")
    p.add_argument("--minutes", type=float, default=6.0, help="budget per loss")
    p.add_argument("--out", default="results/loss_study")
    p.add_argument("--state", default="runs/loss_study", help="resumable training state per loss")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--extra", default="--width 16 --crop-frames 64 --batch-size 4 --bank-hours 0.25 "
                   "--val-clips 24 --eval-every 45 --ema 0.99 --workers 2", help="train.onthefly_teacher flags")
    p.add_argument("--curves", nargs="+", metavar="NAME=CURVE_JSON",
                   help="report these train.onthefly_teacher curves instead of training")
    p.add_argument("--metric", choices=sorted(METRIC_LABELS), default="sdr",
                   help="with --curves: utterance SDR (sdr) or the median of 1-s frame SDRs, as museval scores (fsdr)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.curves:
        return report_curves(args.curves, out, args.metric)
    torch.set_num_threads(args.threads)
    curves = {}
    for loss in [x.strip() for x in args.losses.split(",") if x.strip()]:
        print(f"[loss_study] {loss}: {args.minutes} min", flush=True)
        safe = loss.replace("*", "x").replace("+", "_plus_").replace(" ", "")
        train_one(["--loss", loss, "--minutes", str(args.minutes), "--out", f"{args.state}/{safe}",
                   "--export-dir", f"{args.state}/{safe}/export", *args.extra.split()])
        curves[loss] = json.loads(Path(f"{args.state}/{safe}/export/curve.json").read_text())["curve"]
        report = {"command": "python -m train.loss_study " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
                  "machine": {**machine_info(), "threads": args.threads},
                  "settings": args.extra, "minutes_per_loss": args.minutes, "curves": curves}
        atomic_write_text(out / "loss_study.json", json.dumps(report, indent=1))
        atomic_write_text(out / "loss_study.md", markdown(curves))
        plot(curves, out / "loss_study.png")
    return curves


if __name__ == "__main__":
    main()

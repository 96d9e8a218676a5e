"""Train a teacher on clips rendered in memory, by wall-clock budget, on CPU or GPU.

    python -m train.onthefly_teacher --minutes 60 --loss mse_stft --out runs/teacher-onthefly

With ``--teacher NAME_OR_CKPT`` it distils instead: the targets are that frozen model's estimates
on each training mixture (label-free, as ``train.distill`` with ``alpha=0``), plus ``--alpha`` x
the same loss against the rendered stems. Validation always scores against the true stems.

Why beside the Lightning entry point (``train.teacher``): a lent GPU machine has no package
registry and no kits, and a file-based loader cannot feed it. Here the data is an in-memory
bank (:mod:`drumdata.bank`) cropped and remixed on the device, the schedule is a fraction of the
time budget (warm-up, then cosine), the weights are averaged (EMA) and the EMA is validated on
held-out kits every ``--eval-every`` seconds. ``best.ckpt`` (MSST format, fp16, + YAML) keeps
the best validation SDR; ``last.pt`` holds the whole state, so a rerun with the same ``--out``
resumes where it stopped; ``curve.json`` is the learning curve (step, seconds, per-stem SDR).
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path

import torch

from drumdata import STEMS
from drumdata.bank import (activity, bank_clip_kits, draw_batch, kits_for_split, parse_kit_stems,
                           parse_kit_weights, render_bank, stem_eligibility)
from drumdata.kits import DEFAULT_KITS_DIR
from drumdata.songs import load_songs
from eval.timing.benchlib import machine_info
from eval.scoring.metrics import active_mask, frame_sdrs, utterance_sdr
from separation.atomic_io import atomic_write_bytes
from separation.checkpoint import save_model
from separation.config import ModelSpec
from separation.errors import UserError, exit_on_user_error
from separation.model import TFC_TDF_net
from separation.pretrained import MODELS_DIR

from .losses import make_loss
from .precision import autocast_settings, choose_precision


def build_spec(base: str, width: int, crop_frames: int, scales: int | None, blocks: int | None = None,
               n_fft: int | None = None, dim_f: int | None = None) -> ModelSpec:
    spec = ModelSpec.from_yaml(base)
    model = {"num_channels": width, "growth": width, **({"num_scales": scales} if scales else {}),
             **({"num_blocks_per_scale": blocks} if blocks else {})}
    audio = {"chunk_size": spec.audio.hop_length * (crop_frames - 1), "dim_t": crop_frames,
             **({"n_fft": n_fft} if n_fft else {}), **({"dim_f": dim_f} if dim_f else {})}
    return spec.replace(model=model, audio=audio)


def load_frozen_teacher(name_or_path: str, student: ModelSpec, device: torch.device) -> TFC_TDF_net:
    """The teacher to distil from, in eval mode without gradients. Only waveforms pass between the two, so the
    student may use a smaller STFT (``--n-fft``/``--dim-f``) but must share the stems, audio format and hop."""
    from separation import load_any

    teacher = load_any(name_or_path)
    student.require_waveform_targets_of(teacher.spec)
    return teacher.eval().requires_grad_(False).to(device)


def lr_at(fraction: float, peak: float, warmup: float = 0.03, final: float = 0.02) -> float:
    """Linear warm-up over ``warmup`` of the budget, then cosine down to ``final`` x peak."""
    if fraction < warmup:
        return peak * max(fraction / warmup, 0.01)
    progress = min(1.0, (fraction - warmup) / (1 - warmup))
    return peak * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def validate(model: torch.nn.Module, mixture: torch.Tensor, stems: torch.Tensor, batch_size: int,
             autocast: dict) -> dict:
    """Mean utterance SDR per stem over the crops where that stem is active, and their mean (``sdr``);
    and per stem the median of the 1-s frame SDRs where that stem is not silent, pooled over all
    crops, and their mean (``fsdr``). ``fsdr`` is a proxy for museval's statistic, which the held-out
    tables quote (a median over the frames of each track, then a mean over tracks): a training crop
    (2.96 s at 256 frames) holds only two whole 1-s frames, too few for a median of its own, and the
    rest of the crop is not scored. Like museval's median, it drops when a quiet cymbal tail
    is scored badly, while ``sdr`` barely moves."""
    sdrs, frames, scored = [], [], []
    for i in range(0, len(mixture), batch_size):
        with torch.autocast(**autocast):
            est = model(mixture[i:i + batch_size]).float()
        sdrs.append(utterance_sdr(stems[i:i + batch_size], est))
        frame_sdr, frame_scored = frame_sdrs(stems[i:i + batch_size], est)
        frames.append(frame_sdr), scored.append(frame_scored)
    sdr, active = torch.cat(sdrs), active_mask(stems)
    frames, scored = torch.cat(frames), torch.cat(scored)
    per_stem = {s: float(sdr[active[:, k], k].mean()) for k, s in enumerate(STEMS) if active[:, k].any()}
    # quantile(0.5) averages the two middle values, as numpy's median does; torch.median takes the lower one
    per_stem_frames = {s: float(frames[:, k][scored[:, k]].quantile(0.5)) for k, s in enumerate(STEMS)
                       if scored[:, k].any()}
    if not per_stem or not per_stem_frames:
        raise ValueError("validation has no crop where any stem is active: render more --val-clips")
    return {"sdr": sum(per_stem.values()) / len(per_stem), **{f"sdr_{k}": v for k, v in per_stem.items()},
            "fsdr": sum(per_stem_frames.values()) / len(per_stem_frames),
            **{f"fsdr_{k}": v for k, v in per_stem_frames.items()}}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/teacher-onthefly")
    p.add_argument("--export-dir", default=None, help="where best.ckpt/.yaml and curve.json go (default: --out)")
    p.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget (total, across resumes)")
    p.add_argument("--loss", default="mse_stft", help="train.losses spec, e.g. mse_stft or 'mse+0.01*snr_floor'")
    p.add_argument("--base-config", default=str(MODELS_DIR / "demo_teacher.yaml"))
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--scales", type=int, default=None)
    p.add_argument("--blocks", type=int, default=None,
                   help="residual blocks per scale (default: the base config's); a deeper model is cut to this by "
                        "python -m compress.prune.depth, whose output is then the --init")
    p.add_argument("--n-fft", type=int, default=None,
                   help="the student's FFT size (default: the base config's); with --dim-f, a cheaper front-end")
    p.add_argument("--dim-f", type=int, default=None, help="STFT bins the student keeps (default: the base config's)")
    p.add_argument("--crop-frames", type=int, default=256, help="STFT frames per training crop (256 = 2.96 s)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--bank-hours", type=float, default=1.0)
    p.add_argument("--clip-seconds", type=float, default=8.0)
    p.add_argument("--grooves", default="procedural", choices=["procedural", "songs", "mixed"],
                   help="training clips' patterns: procedural, Hydrogen's song patterns, or both")
    p.add_argument("--kit-weight", action="append", default=[], metavar="PATTERN=WEIGHT",
                   help="training kits matching PATTERN render WEIGHT x an even share (repeatable; e.g. 'sf2-*=0.5')")
    p.add_argument("--kit-stems", action="append", default=[], metavar="PATTERN=STEM,...",
                   help="training kits matching PATTERN lend only these stems to batches; their others are "
                        "drawn from other kits (repeatable; e.g. 'sf2-*=hh,cymbals')")
    p.add_argument("--eq", type=float, default=0.0,
                   help="per-stem random spectral tilt in [-eq, eq] (drumdata.bank.tilt_eq; 0 = off)")
    p.add_argument("--val-clips", type=int, default=48)
    p.add_argument("--select", default="sdr", choices=["sdr", "fsdr"],
                   help="which validation mean picks best.ckpt: utterance SDR, or the median of 1-s frame SDRs "
                        "(museval's aggregation, which quiet tails pull down)")
    p.add_argument("--eval-every", type=float, default=120.0, help="seconds between validations")
    p.add_argument("--kits-dir", default=str(DEFAULT_KITS_DIR))
    p.add_argument("--workers", type=int, default=None, help="render processes (default: cores - 1)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="autocast for training and validation; auto: bf16 on CUDA, measured on a CPU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default=None, help="warm-start weights (MSST .ckpt of the same shape)")
    p.add_argument("--teacher", default=None,
                   help="distil from this model (registry name or MSST .ckpt with its YAML) instead of the stems")
    p.add_argument("--alpha", type=float, default=0.0,
                   help="with --teacher: weight of the loss against the rendered stems (0 = label-free)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    spec = build_spec(args.base_config, args.width, args.crop_frames, args.scales, args.blocks, args.n_fft, args.dim_f)
    crop = spec.audio.chunk_size
    # a teacher that cannot teach this student fails here, in one sentence, before anything is rendered
    teacher = load_frozen_teacher(args.teacher, spec, device) if args.teacher else None

    kit_weights = parse_kit_weights(args.kit_weight)  # a typo fails here, before rendering
    kit_stems = parse_kit_stems(args.kit_stems)
    t0 = time.time()
    if args.grooves != "procedural":
        load_songs()  # a machine without the demo songs fails here, in one sentence, before rendering
    train_kits, valid_kits = kits_for_split("train", args.kits_dir), kits_for_split("valid", args.kits_dir)
    stem_ok = None
    if kit_stems:  # a rule that leaves a stem with no kit fails here, before rendering
        stem_ok = stem_eligibility(bank_clip_kits(train_kits, args.bank_hours, args.clip_seconds, kit_weights),
                                   kit_stems).to(device)
    bank = render_bank(train_kits, args.bank_hours, args.clip_seconds,
                       args.seed, args.kits_dir, args.workers, grooves=args.grooves,
                       kit_weights=kit_weights).to(device)
    assert stem_ok is None or len(stem_ok) == len(bank), "bank_clip_kits disagrees with render_bank"
    val = render_bank(valid_kits, args.val_clips * crop / 44100 / 3600,
                      crop / 44100, args.seed + 1, args.kits_dir, args.workers)
    val_stems = val[..., :crop].float().to(device)
    val_mix = val_stems.sum(1)
    print(f"bank: {tuple(bank.shape)} in {time.time() - t0:.1f} s; active share per stem "
          f"{dict(zip(STEMS, [round(a, 2) for a in activity(bank[:256].cpu(), crop)]))}", flush=True)

    model = TFC_TDF_net(spec).to(device)
    if args.init:
        from separation.checkpoint import read_state_dict
        from .warm_start import pooled_state_dict
        try:  # equal shapes load as they are; a checkpoint with a wider frequency axis is pooled onto this one
            model.load_state_dict(pooled_state_dict(read_state_dict(args.init), model))
        except ValueError as err:
            raise UserError(f"--init {args.init} cannot start this model: {err}.") from None
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    loss_fn = make_loss(args.loss)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    state = {"step": 0, "elapsed": 0.0, "best": -float("inf"), "curve": [], "select": args.select}
    last = out / "last.pt"
    export = Path(args.export_dir or out)
    export.mkdir(parents=True, exist_ok=True)
    if last.is_file():
        saved = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"]), ema.load_state_dict(saved["ema"]), opt.load_state_dict(saved["opt"])
        state = saved["state"]
        if state.setdefault("select", "sdr") != args.select:  # runs saved before --select existed picked by sdr
            raise SystemExit(f"{last} picked its best weights by {state['select']!r}; resume it with "
                             f"--select {state['select']} (a best {state['select']} cannot be compared with a {args.select}).")
        print(f"resuming at step {state['step']} ({state['elapsed'] / 60:.1f} min done)", flush=True)
    if state.get("precision") is None or args.precision not in ("auto", state["precision"]):
        # measured once per run (a resumed run keeps its choice unless told otherwise), on a batch of its own
        probe_gen = torch.Generator(device=device).manual_seed(args.seed + 2)
        probe_mix, probe_stems = draw_batch(bank, args.batch_size, crop, probe_gen, stem_ok=stem_ok)
        state["precision"], why = choose_precision(args.precision, device, model,
                                                   lambda: loss_fn(model(probe_mix).float(), probe_stems, probe_mix))
        print(f"training precision {state['precision']} ({why})", flush=True)
    autocast = autocast_settings(state["precision"], device)
    meta = {"command": "python -m train.onthefly_teacher " + " ".join(argv if argv is not None else sys.argv[1:]),
            "loss": args.loss, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "machine": machine_info(),
            "bank_clips": bank.shape[0], "clip_seconds": args.clip_seconds, "batch_size": args.batch_size,
            "crop_samples": crop, "train_kits": train_kits, "kit_weights": args.kit_weight, "kit_stems": args.kit_stems, "teacher": args.teacher, "alpha": args.alpha, "select": args.select,
            "precision": state["precision"], "valid_kits": valid_kits}
    meta = json.loads(json.dumps(meta, default=str))  # plain types: it goes into YAML and JSON

    # a resumed run's weights were validated when last.pt was written: the next validation is one interval on
    # (validating at once appended the same step to the curve twice)
    budget, start, losses = args.minutes * 60, time.time() - state["elapsed"], []
    next_eval = state["elapsed"] + args.eval_every if state["curve"] else 0.0
    model.train()
    while True:
        elapsed = time.time() - start
        done = elapsed >= budget
        if done and state["curve"] and state["curve"][-1]["step"] == state["step"]:
            break  # resumed with nothing left to train: its last row is already this step's
        if elapsed >= next_eval or done:
            model.eval()
            row = {"step": state["step"], "seconds": round(elapsed, 1), "train_loss": sum(losses) / max(1, len(losses)),
                   **validate(ema.module, val_mix, val_stems, args.batch_size, autocast)}
            model.train()
            losses.clear()
            state["curve"].append(row)
            if row[args.select] > state["best"]:
                state["best"] = row[args.select]
                save_model(ema.module, export / "best.ckpt", half=True,
                           extra_meta={"training": {**meta, "step": row["step"], "seconds": row["seconds"],
                                                    "val": {k: round(v, 3) for k, v in row.items() if k.startswith(("sdr", "fsdr"))}}})
            state["elapsed"] = elapsed
            buf = io.BytesIO()
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "state": state}, buf)
            atomic_write_bytes(last, buf.getvalue())
            atomic_write_bytes(export / "curve.json", json.dumps({**meta, "curve": state["curve"]}, indent=1).encode())
            print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
            next_eval = elapsed + args.eval_every
            if done:
                break
        for group in opt.param_groups:
            group["lr"] = lr_at(elapsed / budget, args.lr)
        mixture, stems = draw_batch(bank, args.batch_size, crop, gen, eq=args.eq, stem_ok=stem_ok)
        target = stems
        if teacher is not None:
            with torch.no_grad(), torch.autocast(**autocast):
                target = teacher(mixture).float()
        with torch.autocast(**autocast):
            estimate = model(mixture).float()
        loss = loss_fn(estimate, target, mixture)
        if teacher is not None and args.alpha:
            loss = loss + args.alpha * loss_fn(estimate, stems, mixture)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update_parameters(model)
        state["step"] += 1
        if state["step"] % 10 == 1:  # reading the loss syncs a GPU: not every step
            losses.append(float(loss.detach()))
    return {"best": state["best"], "steps": state["step"]}


if __name__ == "__main__":
    exit_on_user_error(main)()

"""``python -m compress.prune [compress/method=free] [prune.ratio=0.5] [+config=test_tiny]``.

:func:`prune_run` is a plain function on the composed config (tests call it); the Hydra entry
point only composes. It loads the teacher and the model to prune (default: a copy of the teacher),
prunes with :func:`compress.prune.graph.prune_`, distils after each step when ``prune.finetune_steps``,
writes the model with :func:`separation.checkpoint.save_model` plus a ``.prune.json`` with the
settings and the cost before/after, and prints that JSON.
"""
from __future__ import annotations

import copy
import json
from itertools import islice
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from separation import load_any
from separation.atomic_io import atomic_write_bytes
from separation.checkpoint import save_model

from ..common import cost
from .graph import PruneConfig, prune_


def _finetuner(cfg: DictConfig, teacher, datamodule, steps: int):
    from train.common import fit

    from ..finetune import distill_finetuner

    def fit_step(module, step):
        # One output dir per pruning step: its last.ckpt has this step's shapes, so resume is safe.
        step_cfg = copy.deepcopy(cfg)
        OmegaConf.update(step_cfg, "output_dir", str(Path(cfg.output_dir) / f"step{step}"))
        OmegaConf.update(step_cfg, "trainer.max_steps", steps)
        OmegaConf.update(step_cfg, "trainer.val_check_interval", min(steps, cfg.trainer.val_check_interval))
        fit(step_cfg, module, datamodule, ema_decay=None)

    d = cfg.distill
    return distill_finetuner(teacher, datamodule, steps, lr=d.lr, warmup_steps=d.warmup_steps, fit=fit_step,
                             loss=d.loss)


def prune_run(cfg: DictConfig) -> dict:
    """Prune as configured; returns the report (also written beside the checkpoint)."""
    import lightning as L

    from train.common import build_datamodule, command_line, load_teacher

    L.seed_everything(cfg.seed, workers=True)
    config = PruneConfig(**OmegaConf.to_container(cfg.prune))  # validates before anything is loaded
    teacher = load_teacher(cfg.teacher)
    src = cfg.source
    model = load_any(str(src.checkpoint), src.get("config")) if src.checkpoint else copy.deepcopy(teacher)
    before = cost(model)
    calibration, finetune, crop = None, None, None
    if config.importance == "taylor" or config.finetune_steps:
        crop = cfg.distill.get("crop_samples") or model.spec.audio.chunk_size  # the net is convolutional in time
        datamodule = build_datamodule(cfg.data, model.spec.stems, crop, cfg.seed)
        if config.importance == "taylor":
            calibration = list(islice(iter(datamodule.train_dataloader()), cfg.calibration.crops))
        if config.finetune_steps:
            finetune = _finetuner(cfg, teacher, datamodule, config.finetune_steps)
    model = prune_(model, config, calibration=calibration, finetune=finetune)
    after = cost(model)
    out = Path(cfg.output_dir) / f"{cfg.export.name}.ckpt"
    ckpt, yaml_path = save_model(model, out, half=bool(cfg.export.half))
    m = model.spec.model
    report = {"checkpoint": str(ckpt), "config": str(yaml_path), "prune": config.to_dict(),
              "source": str(src.checkpoint or cfg.teacher.checkpoint), "crop_samples": crop,
              "num_channels": m.num_channels, "growth": m.growth, "bottleneck_factor": m.bottleneck_factor,
              "before": before, "after": after,
              "params_ratio": round(after["params"] / before["params"], 4),
              "flop_ratio": round(after["gflop_per_chunk"] / before["gflop_per_chunk"], 4),
              "command": command_line()}
    atomic_write_bytes(ckpt.with_suffix(".prune.json"), json.dumps(report, indent=1).encode())
    print(json.dumps(report, indent=1))
    return report

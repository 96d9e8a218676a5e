"""``python -m train.distill +config=small``: distil the teacher into a small student, export it,
and print the teacher-vs-student table.

``distill(cfg)`` is a plain function; the Hydra entry point only composes the config.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from separation.errors import UserError, exit_on_user_error

from .common import build_datamodule, command_line, derive_spec, fit, load_teacher
from .modules import DistillModule


def distill(cfg: DictConfig) -> dict:
    """Run distillation as configured; returns paths of the exported student and its report."""
    L.seed_everything(cfg.seed, workers=True)
    teacher = load_teacher(cfg.teacher)
    spec = derive_spec(teacher.spec, OmegaConf.to_container(cfg.student.model),
                       OmegaConf.to_container(cfg.student.get("audio", OmegaConf.create())))
    datamodule = build_datamodule(cfg.data, spec.stems, spec.audio.chunk_size, cfg.seed)
    d = cfg.distill
    module = DistillModule(spec, teacher, alpha=d.alpha, feature_weight=d.feature_weight, lr=d.lr,
                           warmup_steps=d.warmup_steps, loss=d.loss)
    if cfg.student.get("init"):
        # Warm start (a registry name or checkpoint of the student's shape): 15 CPU minutes of
        # distillation cannot train a separator from scratch, they can refine one.
        from separation import load_any
        from separation.checkpoint import load_into
        load_into(module.model, load_any(str(cfg.student.init)).state_dict(), spec, source=str(cfg.student.init))
    if d.teacher_outputs == "cached":
        from .teacher_cache import use_cached_teacher_outputs
        datamodule = use_cached_teacher_outputs(datamodule, teacher, Path(cfg.output_dir) / "teacher_cache",
                                                num_crops=d.cache_crops, seed=cfg.seed)
    elif d.teacher_outputs != "on_the_fly":
        raise UserError("distill.teacher_outputs must be 'on_the_fly' or 'cached'.")
    # Lightning warns that modules are in eval mode at the start of fit: those are the frozen
    # teacher's (DistillModule keeps it in eval mode on purpose), so the warning is noise here.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    trainer = fit(cfg, module, datamodule, d.ema_decay)
    if not (cfg.export.enabled and trainer.is_global_zero):
        return {}
    from .export import export_and_report
    return export_and_report(module.model, cfg, command=command_line(), teacher=teacher,
                             steps=trainer.global_step)


@hydra.main(config_path="../configs", config_name="distill", version_base="1.3")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(distill)(cfg)  # inside Hydra's wrapper, so a user error is one line, not a trace

if __name__ == "__main__":
    main()

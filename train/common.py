"""Pieces shared by the training entry points: specs, teachers, data, trainer, resume, export."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EMAWeightAveraging, LearningRateMonitor, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from separation import load_any
from separation.config import ModelSpec
from separation.errors import UserError
from separation.pretrained import MODELS_DIR

from .checkpoint_io import AtomicCheckpointIO
from .precision import lightning_precision


def base_spec(name_or_path: str) -> ModelSpec:
    """A YAML in ``separation/models/`` by name (``drumsep_5stems``) or any path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = MODELS_DIR / f"{name_or_path}.yaml"
    return ModelSpec.from_yaml(path)


def derive_spec(base: ModelSpec, model: dict | None = None, audio: dict | None = None) -> ModelSpec:
    """``base`` with MSST ``model``/``audio`` overrides; ``dim_t`` follows a new ``chunk_size``."""
    audio = dict(audio or {})
    if "chunk_size" in audio and "dim_t" not in audio:
        audio["dim_t"] = audio["chunk_size"] // base.audio.hop_length + 1
    data = base.to_dict()
    data.pop("drumsep_lab", None)  # widths of a pruned parent do not carry over
    return ModelSpec.from_dict(data).replace(model=dict(model or {}), audio=audio)


def load_teacher(cfg: DictConfig):
    """The frozen teacher from a registry name or a checkpoint path (strict, weights-only)."""
    model = load_any(str(cfg.checkpoint), cfg.get("config"), cfg.get("weights"))
    return model.eval().requires_grad_(False)


def build_datamodule(data_cfg: DictConfig, stems: list[str], chunk_size: int, seed: int):
    """The DrumDataModule for ``data_cfg`` with crops of exactly ``chunk_size`` samples."""
    from drumdata.datamodule import DrumDataModule
    from drumdata.render import ensure_rendered

    kind = data_cfg.kind
    if kind == "rendered":
        source = "rendered:" + str(ensure_rendered(data_cfg.root, hours=data_cfg.hours, seed=data_cfg.seed,
                                                   clip_seconds=data_cfg.clip_seconds))
    elif kind in ("folder", "mixtures"):
        if data_cfg.root in (None, "???"):
            raise UserError(f"data={kind} needs data.root=<folder of drum audio>.")
        source = {"type": "stems" if kind == "folder" else "mixtures", "path": str(data_cfg.root)}
        if data_cfg.get("stem_names"):
            source["names"] = OmegaConf.to_container(data_cfg.stem_names)
    else:
        source = str(data_cfg.root)  # anything datasets.load_dataset opens
    return DrumDataModule(source=source, stems=tuple(stems), crop_samples=chunk_size,
                          batch_size=data_cfg.batch_size, num_workers=data_cfg.num_workers,
                          mixture_only=bool(data_cfg.mixture_only), augment=bool(data_cfg.augment),
                          val_crops_per_track=data_cfg.val_crops_per_track, seed=seed)


def last_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    path = Path(output_dir) / "checkpoints" / "last.ckpt"
    return path if path.is_file() else None


def build_trainer(cfg: DictConfig, ema_decay: float | None, precision: str | None = None) -> L.Trainer:
    """The configured Trainer; ``precision`` (resolved by :func:`fit` when the config says ``auto``)
    replaces ``cfg.trainer.precision``."""
    out = Path(cfg.output_dir)
    every = int(cfg.trainer.get("val_check_interval") or 50)
    callbacks = [
        ModelCheckpoint(dirpath=out / "checkpoints", filename="best-{step}-{val/sdr:.2f}",
                        monitor="val/sdr", mode="max", save_top_k=1, auto_insert_metric_name=False),
        # last.ckpt on a step schedule, independent of validation, so an interrupted run resumes close by.
        ModelCheckpoint(dirpath=out / "checkpoints", save_top_k=0, save_last=True, every_n_train_steps=every),
        LearningRateMonitor(logging_interval="step"),
    ]
    if ema_decay:
        callbacks.append(EMAWeightAveraging(decay=ema_decay))
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    for logger_cfg in (cfg.get("logger") or {}).values():
        Path(logger_cfg.save_dir).mkdir(parents=True, exist_ok=True)
    extra = {"precision": precision} if precision is not None else {}
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                       default_root_dir=str(out), plugins=[AtomicCheckpointIO()], **extra)


def fit(cfg: DictConfig, module: L.LightningModule, datamodule, ema_decay: float | None) -> L.Trainer:
    """Fit, resuming from ``last.ckpt`` when ``cfg.resume`` (same global step as when it stopped)."""
    precision, why = lightning_precision(str(cfg.trainer.get("precision", "32-true")), module,
                                         int(cfg.data.batch_size), len(module.model.spec.stems),
                                         str(cfg.trainer.get("accelerator", "cpu")))
    print(f"trainer precision {precision} ({why})", flush=True)
    trainer = build_trainer(cfg, ema_decay, precision)
    ckpt = last_checkpoint(cfg.output_dir) if cfg.resume else None
    if ckpt is not None:
        print(f"resuming from {ckpt}")
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None)
    # Also after max_time, Ctrl-C (Lightning stops gracefully) or a step between schedules.
    trainer.save_checkpoint(Path(cfg.output_dir) / "checkpoints" / "last.ckpt")
    return trainer


def command_line() -> str:
    """How this process was started, as a user would type it (``python -m train.distill ...``)."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.suffix == ".py":
        try:
            module = ".".join(script.resolve().relative_to(Path(__file__).resolve().parents[1]).with_suffix("").parts)
            return " ".join(["python -m", module, *sys.argv[1:]])
        except ValueError:
            pass
    return " ".join(["python", *sys.argv])

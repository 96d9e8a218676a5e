"""``python -m train.teacher +config=demo``: train a TFC_TDF_net teacher on stem data from scratch."""
from __future__ import annotations

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from separation.errors import exit_on_user_error

from .common import base_spec, build_datamodule, command_line, derive_spec, fit
from .modules import SupervisedModule


def train_teacher(cfg: DictConfig) -> dict:
    L.seed_everything(cfg.seed, workers=True)
    spec = derive_spec(base_spec(cfg.model.base_config), OmegaConf.to_container(cfg.model.model),
                       OmegaConf.to_container(cfg.model.get("audio", OmegaConf.create())))
    datamodule = build_datamodule(cfg.data, spec.stems, spec.audio.chunk_size, cfg.seed)
    o = cfg.optim
    module = SupervisedModule(spec, lr=o.lr, warmup_steps=o.warmup_steps, loss=o.loss)
    trainer = fit(cfg, module, datamodule, o.ema_decay)
    if not (cfg.export.enabled and trainer.is_global_zero):
        return {}
    from .export import export_and_report
    return export_and_report(module.model, cfg, command=command_line(), teacher=None, steps=trainer.global_step)


@hydra.main(config_path="../configs", config_name="teacher", version_base="1.3")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(train_teacher)(cfg)  # inside Hydra's wrapper, so a user error is one line, not a trace

if __name__ == "__main__":
    main()

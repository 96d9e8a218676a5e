"""Recover a pruned model's quality by distillation from the unpruned teacher.

:func:`distill_finetuner` returns the ``finetune(model, step) -> model`` callback
:func:`compress.prune.prune_` calls after each pruning step. It trains the pruned network as the
student of :class:`train.modules.DistillModule` (the module is built for the model's spec, then
its ``model`` is swapped for the pruned one, so the optimizer sees the pruned parameters).
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch

from separation.model import TFC_TDF_net

from .common import calibration_batches


def distill_module(model: TFC_TDF_net, teacher: TFC_TDF_net, **hparams):
    """A DistillModule whose student is ``model`` (any widths; feature distillation is off,
    its 1x1 adapters assume uniform widths)."""
    from train.modules import DistillModule

    with torch.device("meta"):  # the placeholder student is replaced at once: build it for free
        module = DistillModule(model.spec, teacher, feature_weight=0.0, **hparams)
    module.teacher = teacher.eval().requires_grad_(False)
    module.model = model
    return module


def distill_finetuner(teacher: TFC_TDF_net, data, steps: int, lr: float = 1e-4, warmup_steps: int = 0,
                      fit: Callable | None = None, **hparams) -> Callable[[TFC_TDF_net, int], TFC_TDF_net]:
    """``finetune(model, step)`` that distils ``teacher`` into ``model`` for ``steps`` optimizer steps.

    ``data``: a LightningDataModule, or an iterable of batches (``(B, 2, L)`` tensors or dicts
    with ``mixture``) that is cycled. ``fit(module, step)``: how to train (the Hydra entry point
    passes one with checkpoints and resume); default: a plain Lightning Trainer on the CPU.
    """
    import lightning as L

    batches = None if isinstance(data, L.LightningDataModule) else calibration_batches(data)

    def finetune(model: TFC_TDF_net, step: int) -> TFC_TDF_net:
        module = distill_module(model.train(), teacher, lr=lr, warmup_steps=warmup_steps, **hparams)
        if fit is not None:
            fit(module, step)
        else:
            trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False,
                                enable_checkpointing=False, enable_progress_bar=True,
                                enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
            if batches is None:
                trainer.fit(module, datamodule=data)
            else:
                loader = torch.utils.data.DataLoader(_Cycle(batches, steps), batch_size=None)
                trainer.fit(module, train_dataloaders=loader)
        return module.model.cpu().eval()

    return finetune


class _Cycle(torch.utils.data.IterableDataset):
    """``steps`` batches drawn round-robin from a short list."""

    def __init__(self, batches: list[dict], steps: int):
        self.batches, self.steps = batches, steps

    def __iter__(self) -> Iterable[dict]:
        for i in range(self.steps):
            yield self.batches[i % len(self.batches)]

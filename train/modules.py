"""LightningModules: supervised training of a TFC_TDF_net, and distillation from a frozen teacher.

Batches are dicts: ``mixture`` ``(B, 2, L)`` and, when the data has stems, ``stems``
``(B, S, 2, L)``; a pre-computed teacher cache adds ``teacher`` ``(B, S, 2, L)``.
``L`` equals the model's ``audio.chunk_size``.
"""
from __future__ import annotations

import lightning as L
import torch
from torch import nn

from eval.scoring.metrics import active_mask, utterance_sdr
from separation.config import ModelSpec
from separation.errors import UserError
from separation.model import TFC_TDF_net

from .losses import make_loss


class SeparationModule(L.LightningModule):
    """Shared parts: the student network, optimiser, losses, NaN guard and validation SDR."""

    def __init__(self, spec: ModelSpec | dict, lr: float = 5e-4, weight_decay: float = 0.0,
                 loss: str = "mse_stft", warmup_steps: int = 100):
        super().__init__()
        spec = spec if isinstance(spec, ModelSpec) else ModelSpec.from_dict(spec)
        self.save_hyperparameters({"spec": spec.to_dict(), "lr": lr, "weight_decay": weight_decay,
                                   "loss": loss,
                                   "warmup_steps": warmup_steps})
        self.model = TFC_TDF_net(spec)
        self.loss_fn = make_loss(loss)  # fails here, before any data is read, for an unknown name

    @property
    def stems(self) -> list[str]:
        return self.model.spec.stems

    def reconstruction_loss(self, estimate, target, mixture) -> torch.Tensor:
        """The configured :mod:`train.losses` loss; estimate/target ``(B, S, C, L)``."""
        return self.loss_fn(estimate, target, mixture)

    def check_finite(self, loss: torch.Tensor, batch_idx: int) -> None:
        if not torch.isfinite(loss):
            raise UserError(f"the loss became {loss.item()} at global step {self.global_step} "
                            f"(batch {batch_idx} of epoch {self.current_epoch}); lower the learning rate or check "
                            "that batch's audio for NaN/inf.")

    def configure_optimizers(self):
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        warmup = max(1, hp.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def validation_reference(self, batch) -> torch.Tensor:
        return batch["stems"]

    def validation_step(self, batch, batch_idx):
        estimate = self.model(batch["mixture"])
        reference = self.validation_reference(batch)
        sdr = utterance_sdr(reference, estimate)  # (B, S)
        active = active_mask(reference)
        # Silent reference stems say nothing about separation quality: leave them out.
        for s, stem in enumerate(self.stems):
            if active[:, s].any():
                self.log(f"val/sdr_{stem}", sdr[active[:, s], s].mean(), sync_dist=True,
                         batch_size=int(active[:, s].sum()))
        self.log("val/sdr", sdr[active].mean() if active.any() else sdr.mean(), prog_bar=True,
                 sync_dist=True, batch_size=estimate.shape[0])
        self.log("val/loss", self.reconstruction_loss(estimate, reference, batch["mixture"]), sync_dist=True,
                 batch_size=estimate.shape[0])


class SupervisedModule(SeparationModule):
    """Train a TFC_TDF_net on stem data (used for the demo teacher)."""

    def training_step(self, batch, batch_idx):
        if "stems" not in batch:
            raise UserError("supervised training needs stems, but the data is mixture-only; use train.distill.")
        estimate = self.model(batch["mixture"])
        loss = self.reconstruction_loss(estimate, batch["stems"], batch["mixture"])
        self.check_finite(loss, batch_idx)
        self.log("train/loss", loss, prog_bar=True, batch_size=estimate.shape[0])
        return loss


class DistillModule(SeparationModule):
    """Distil a frozen teacher into a student of the same STFT front-end.

    Loss = the configured :mod:`train.losses` loss to the teacher's stems
         + ``alpha`` * the same against ground truth (only where the batch has stems)
         + ``feature_weight`` * L1 between 1x1-adapted student features and the teacher's
           at every encoder level and the bottleneck.
    With ``alpha = 0`` and no stems it is label-free: any drum recording works.
    """

    def __init__(self, spec: ModelSpec | dict, teacher: TFC_TDF_net, alpha: float = 0.0,
                 feature_weight: float = 0.0, **kwargs):
        super().__init__(spec, **kwargs)
        self.save_hyperparameters({"alpha": alpha, "feature_weight": feature_weight})
        teacher.spec.validate()
        self.model.spec.require_front_end_of(teacher.spec)
        self.teacher = teacher.eval().requires_grad_(False)
        self.adapters = None
        if feature_weight > 0:
            s_ch, t_ch = self.model.spec.level_channels(), teacher.spec.level_channels()
            self.adapters = nn.ModuleList(nn.Conv2d(s, t, 1, bias=False) for s, t in zip(s_ch, t_ch))

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # the teacher stays in eval mode whatever Lightning toggles
        return self

    def _teacher_forward(self, batch, with_features: bool):
        if "teacher" in batch and not with_features:
            return batch["teacher"], None
        with torch.no_grad():
            stft = self.teacher.stft
            out = self.teacher.spectral_forward(stft(batch["mixture"]), return_features=with_features)
            spec, feats = out if with_features else (out, None)
            return stft.inverse(spec)[..., : batch["mixture"].shape[-1]], feats

    def training_step(self, batch, batch_idx):
        hp = self.hparams
        mix = batch["mixture"]
        use_feats = self.adapters is not None
        target, t_feats = self._teacher_forward(batch, use_feats)
        out = self.model.spectral_forward(self.model.stft(mix), return_features=use_feats)
        s_spec, s_feats = out if use_feats else (out, None)
        estimate = self.model.stft.inverse(s_spec)[..., : mix.shape[-1]]
        loss = self.reconstruction_loss(estimate, target, mix)
        self.log("train/distill", loss, batch_size=mix.shape[0])
        if hp.alpha and "stems" in batch:
            gt = self.reconstruction_loss(estimate, batch["stems"], mix)
            self.log("train/ground_truth", gt, batch_size=mix.shape[0])
            loss = loss + hp.alpha * gt
        if use_feats:
            feat = sum((a(s) - t).abs().mean() / (t.abs().mean() + 1e-6)
                       for a, s, t in zip(self.adapters, s_feats, t_feats))
            self.log("train/features", feat, batch_size=mix.shape[0])
            loss = loss + hp.feature_weight * feat
        self.check_finite(loss, batch_idx)
        self.log("train/loss", loss, prog_bar=True, batch_size=mix.shape[0])
        return loss

    def validation_reference(self, batch) -> torch.Tensor:
        if "stems" in batch:
            return batch["stems"]
        return self._teacher_forward(batch, False)[0]

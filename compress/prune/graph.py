"""Structured channel pruning of a TFC_TDF_net with torch-pruning's DependencyGraph.

    prune_(model, PruneConfig(mode="uniform", ratio=0.5), calibration=None) -> model

The graph is traced on the spectral core (``model.core()``), not the STFT wrapper, so torch-pruning
sees every coupling the U-Net has: the residual ``shortcut`` adds, the encoder->decoder skip
``torch.cat``, the ``x * first_conv_out`` product (first_conv's output channels are tied to the
last decoder block's) and the affine InstanceNorms, which are pruned with their convolutions.

Why the TDF ``nn.Linear`` layers are left out of the channel graph: they act on the *frequency*
axis (last dim), not on channels, so their in/out features are bins, never channels. Traced as
layers, torch-pruning would tie their feature dims to the conv channels; given as
``ignored_layers`` they are not traced and the channel dim passes through them like an
elementwise op, which is exactly what they do to channels. Their hidden (bottleneck) bins can be
pruned separately (``bottleneck_factor`` in uniform mode, ``tdf_ratio`` in free mode).
first_conv's input (the spectrogram) and final_conv's output (the stems) are never pruned.

Modes:

* ``uniform``: every level ends at ``num_channels' + i * growth'`` (rounded, see
  :func:`uniform_widths`); the most important channels of each group are kept and ``model.spec``
  is updated, so :func:`separation.checkpoint.save_model` writes a plain MSST/UVR YAML.
* ``free``: widths chosen by importance, globally (one ranking over all groups, importances
  mean-normalized per group) or per group; ``model.spec`` stays and ``save_model`` records the
  per-layer shapes so the model reloads without the original.

Importance: ``l1``/``l2`` weight magnitude of the whole group, or ``taylor`` (|w * dL/dw|) from
calibration batches, L = L1 to the batch's stems, or, for mixture-only audio, L1 between the sum
of the stem estimates and the mixture (a label-free signal that is non-zero for any model).

``iterative_steps > 1`` prunes in equal steps; ``finetune`` (e.g. :func:`compress.finetune.
distill_finetuner`) is called after each step with the pruned model, as distillation from the
unpruned teacher. The Hydra entry point is ``python -m compress.prune`` (:mod:`compress.prune.cli`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch_pruning as tp
from torch import nn

from separation.errors import UserError
from separation.model import STFT, TFC_TDF, SpectralView, TFC_TDF_net, _Rescale
from separation.widths import layer_shapes_if_nonuniform

from ..common import calibration_batches, require_tfc_tdf

MODES = ("uniform", "free")
IMPORTANCES = ("l1", "l2", "taylor")
# Layer types the channel graph knows how to prune; anything else is refused before any work.
SUPPORTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.InstanceNorm2d, nn.BatchNorm2d, nn.GELU, nn.ReLU,
             nn.ELU, nn.Identity, nn.ModuleList, nn.Sequential, TFC_TDF, _Rescale, STFT, SpectralView, TFC_TDF_net)


@dataclass
class PruneConfig:
    """How to prune. ``ratio`` is the fraction of channels removed (0 <= ratio < 1)."""

    mode: str = "uniform"
    ratio: float = 0.5
    importance: str = "l2"
    iterative_steps: int = 1
    finetune_steps: int = 0            # distillation steps after each pruning step (needs ``finetune``)
    bottleneck_factor: int | None = None  # uniform: new MSST bottleneck_factor for the TDF (>= old)
    tdf_ratio: float = 0.0             # free: fraction of TDF bottleneck bins removed
    global_pruning: bool = True        # free: one importance ranking across all groups
    min_channels: int = 1              # free: no group goes below this
    round_to: int = 1                  # uniform: num_channels/growth rounded to a multiple of this
    calibration_batches: int = 4       # taylor: batches of the calibration data used

    def __post_init__(self):
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode={self.mode!r} (use {' or '.join(MODES)})")
        if not 0 <= self.ratio < 1:
            problems.append(f"ratio={self.ratio} (fraction removed, 0 <= ratio < 1)")
        if not 0 <= self.tdf_ratio < 1:
            problems.append(f"tdf_ratio={self.tdf_ratio} (0 <= tdf_ratio < 1)")
        if self.importance not in IMPORTANCES:
            problems.append(f"importance={self.importance!r} (use one of {', '.join(IMPORTANCES)})")
        for name in ("iterative_steps", "min_channels", "round_to", "calibration_batches"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name}={getattr(self, name)} (must be >= 1)")
        if self.finetune_steps < 0:
            problems.append(f"finetune_steps={self.finetune_steps} (must be >= 0)")
        if self.bottleneck_factor is not None and self.mode != "uniform":
            problems.append("bottleneck_factor is for mode=uniform (use tdf_ratio in free mode)")
        if self.tdf_ratio and self.mode != "free":
            problems.append("tdf_ratio is for mode=free (use bottleneck_factor in uniform mode)")
        if problems:
            raise UserError("invalid PruneConfig: " + "; ".join(problems) + ".")

    def to_dict(self) -> dict:
        return asdict(self)


def uniform_widths(num_channels: int, growth: int, ratio: float, round_to: int = 1) -> tuple[int, int]:
    """``(num_channels', growth')`` after removing ``ratio`` of the channels, rounded to ``round_to``."""
    def shrink(w: int) -> int:
        return int(round(w * (1 - ratio) / round_to)) * round_to if w else 0
    return shrink(num_channels), shrink(growth)


def check_model(model) -> TFC_TDF_net:
    require_tfc_tdf(model, "pruning")
    for name, module in model.named_modules():
        if type(module) is not nn.Module and not isinstance(module, SUPPORTED):
            raise UserError(f"cannot prune layer {name!r} of type {type(module).__name__}; supported: "
                            f"{', '.join(sorted({t.__name__ for t in SUPPORTED}))}.")
        if isinstance(module, nn.GroupNorm):
            raise UserError(f"cannot prune {name!r}: GroupNorm ties channels in groups; use InstanceNorm/BatchNorm.")
    return model


def plan(model: TFC_TDF_net, config: PruneConfig):
    """``(target spec, None)`` (uniform) or ``(None, group widths)`` (free), validated before any work."""
    check_model(model)
    m = model.spec.model
    if config.mode == "free":
        widths = group_widths(model)
        if config.global_pruning:
            if len(widths) * config.min_channels > sum(widths) * (1 - config.ratio):
                raise UserError(f"ratio={config.ratio} cannot keep min_channels={config.min_channels} in each of "
                                f"the {len(widths)} layer groups; use a smaller ratio.")
        else:
            left = min(int(round(w * (1 - config.ratio))) for w in widths)
            if left < config.min_channels:
                raise UserError(f"ratio={config.ratio} leaves a layer with {left} channels (< min_channels="
                                f"{config.min_channels}); use a smaller ratio.")
        return None, widths
    if layer_shapes_if_nonuniform(model):
        raise UserError("uniform pruning needs a uniform-width model, but this one is already free-pruned; "
                        "use mode=free, or start from the unpruned checkpoint.")
    c, g = uniform_widths(m.num_channels, m.growth, config.ratio, config.round_to)
    if c < 1:
        raise UserError(f"ratio={config.ratio} leaves num_channels={m.num_channels} with {c} channels; "
                        "use a smaller ratio (or a smaller round_to).")
    bn = config.bottleneck_factor or m.bottleneck_factor
    if bn < m.bottleneck_factor:
        raise UserError(f"bottleneck_factor={bn} would grow the TDF bottleneck (now {m.bottleneck_factor}); "
                        "pruning can only raise it.")
    return model.spec.replace(model={"num_channels": c, "growth": g, "bottleneck_factor": bn}), None


# ------------------------------------------------------------------------- graph & importance
def _example_spec(model: TFC_TDF_net) -> torch.Tensor:
    """The smallest spectrogram the U-Net accepts: ``(1, C*2, dim_f, scale**num_scales)`` frames."""
    a, m = model.spec.audio, model.spec.model
    return torch.randn(1, a.num_channels * 2, a.dim_f, m.scale[0] ** m.num_scales)


def build_graph(model: TFC_TDF_net) -> tuple[tp.DependencyGraph, list]:
    """The channel DependencyGraph of the spectral core and its prunable groups (one per root)."""
    tdf = [mod for mod in model.modules() if isinstance(mod, nn.Linear)]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    try:  # the graph is traced through autograd: a frozen model (a loaded teacher) shows no edges
        model.requires_grad_(True)
        with torch.enable_grad():
            dg = tp.DependencyGraph().build_dependency(model.core(), _example_spec(model), ignored_layers=tdf,
                                                       verbose=False)
    finally:
        for p in frozen:
            p.requires_grad_(False)
    keep = [model.final_conv[-1]]  # stem outputs
    groups = list(dg.get_all_groups(ignored_layers=keep, root_module_types=(nn.Conv2d, nn.ConvTranspose2d)))
    if not groups:
        raise RuntimeError("torch-pruning found no prunable channel groups in the spectral core")
    return dg, groups


def group_widths(model: TFC_TDF_net) -> list[int]:
    return [len(g[0].idxs) for g in build_graph(model)[1]]


def _importance(kind: str):
    if kind == "taylor":
        return tp.importance.GroupTaylorImportance()
    return tp.importance.GroupMagnitudeImportance(p=1 if kind == "l1" else 2)


def taylor_loss(model: TFC_TDF_net, batch: dict) -> torch.Tensor:
    est = model(batch["mixture"])
    if "stems" in batch:
        return (est - batch["stems"]).abs().mean()
    return (est.sum(1) - batch["mixture"]).abs().mean()  # mixture consistency: label-free


def accumulate_gradients(model: TFC_TDF_net, batches: list[dict]) -> None:
    if not batches:
        raise UserError("importance=taylor needs calibration batches of drum audio; pass calibration=... "
                        "(or use importance=l2).")
    model.zero_grad(set_to_none=True)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    model.requires_grad_(True)
    with torch.enable_grad():
        for batch in batches:
            taylor_loss(model, batch).backward()
    for p in frozen:
        p.requires_grad_(False)


# ------------------------------------------------------------------------------ pruning
def _choose(groups, scores, keep: list[int]) -> list[list[int]]:
    """Indices to remove per group: the ``w - keep`` least important."""
    return [torch.argsort(s)[: len(s) - k].tolist() for s, k in zip(scores, keep)]


def _global_keep(scores, remaining: int, min_channels: int) -> list[int]:
    """Per-group channel counts after removing the globally least important until ``remaining`` are left."""
    widths = [len(s) for s in scores]
    flat = torch.cat([s.float() for s in scores])
    owner = torch.cat([torch.full((len(s),), i) for i, s in enumerate(scores)])
    keep, to_remove = list(widths), sum(widths) - remaining
    for j in torch.argsort(flat).tolist():
        if to_remove <= 0:
            break
        if keep[owner[j]] > min_channels:
            keep[owner[j]] -= 1
            to_remove -= 1
    return keep


def _prune_step(model, config, target_spec, ratio, remaining, original_widths, batches):
    dg, groups = build_graph(model)
    imp = _importance(config.importance)
    if config.importance == "taylor":
        accumulate_gradients(model, batches)
    with torch.no_grad():
        scores = [imp(g).detach() for g in groups]
    widths = [len(s) for s in scores]
    if config.mode == "uniform":
        m, t = model.spec.model, target_spec.model
        levels = [(w - m.num_channels) // m.growth if m.growth else 0 for w in widths]
        if any(m.num_channels + i * m.growth != w for i, w in zip(levels, widths)):
            raise RuntimeError(f"a channel group does not match the uniform widths {model.spec.level_channels()}")
        keep = [t.num_channels + i * t.growth for i in levels]
    elif config.global_pruning:
        keep = _global_keep(scores, remaining, config.min_channels)
    else:
        keep = [max(config.min_channels, int(round(w0 * (1 - ratio)))) for w0 in original_widths]
    for group, idxs in zip(groups, _choose(groups, scores, keep)):
        if idxs:  # a fresh group: earlier prunes moved the concat offsets
            root = group[0].dep
            dg.get_pruning_group(root.target.module, root.handler, idxs).prune()
    model.zero_grad(set_to_none=True)
    return widths


def prune_tdf_(model: TFC_TDF_net, hidden: Callable[[int, int], int], p: int = 2) -> None:
    """Shrink each TDF bottleneck ``Linear(f, h) -> Linear(h, f)`` to ``hidden(f, h)`` bins, keeping
    the bins whose in/out weights have the largest ``p``-norm product."""
    for module in model.modules():
        if isinstance(module, nn.Sequential) and len(module) == 6 and isinstance(module[2], nn.Linear):
            down, up = module[2], module[5]
            f, h = down.in_features, down.out_features
            k = hidden(f, h)
            if k >= h:
                continue
            score = down.weight.norm(p=p, dim=1) * up.weight.norm(p=p, dim=0)
            idx = torch.sort(torch.argsort(score, descending=True)[:k]).values
            new_down, new_up = nn.Linear(f, k, bias=False), nn.Linear(k, f, bias=False)
            with torch.no_grad():
                new_down.weight.copy_(down.weight[idx])
                new_up.weight.copy_(up.weight[:, idx])
            module[2], module[5] = new_down, new_up


def prune_(model: TFC_TDF_net, config: PruneConfig, calibration=None,
           finetune: Callable[[TFC_TDF_net, int], TFC_TDF_net] | None = None) -> TFC_TDF_net:
    """Prune ``model`` in place as ``config`` says and return it (in eval mode).

    ``calibration``: batches of drum audio (see :mod:`compress.common`), needed for ``taylor``.
    ``finetune(model, step) -> model``: called after each pruning step when ``finetune_steps > 0``.
    """
    target, widths0 = plan(model, config)  # every user mistake surfaces here, before any work
    batches = calibration_batches(calibration, config.calibration_batches)
    if config.importance == "taylor" and not batches:
        raise UserError("importance=taylor needs calibration batches of drum audio; pass calibration=... "
                        "(or use importance=l2).")
    if config.finetune_steps and finetune is None:
        raise UserError("finetune_steps > 0 needs a finetune function (compress.finetune.distill_finetuner).")
    original = model.spec
    model.eval()
    total0 = sum(widths0 or [])
    for step in range(1, config.iterative_steps + 1):
        ratio = config.ratio * step / config.iterative_steps
        step_spec = None
        if target is not None:
            m = original.model
            c, g = uniform_widths(m.num_channels, m.growth, ratio, config.round_to)
            step_spec = target.replace(model={"num_channels": max(c, target.model.num_channels),
                                              "growth": max(g, target.model.growth)})
        _prune_step(model, config, step_spec, ratio, int(round(total0 * (1 - ratio))), widths0, batches)
        if step_spec is not None:
            bn = step_spec.model.bottleneck_factor
            prune_tdf_(model, lambda f, h: f // bn)
            model.spec = step_spec
            leftover = layer_shapes_if_nonuniform(model)
            if leftover:  # an internal error, not a user's: the graph missed a coupling
                raise RuntimeError(f"uniform pruning left non-uniform layers: {sorted(leftover)[:3]}")
        elif config.tdf_ratio:
            r = config.tdf_ratio * step / config.iterative_steps
            prune_tdf_(model, lambda f, h, r=r: max(1, int(round((f // original.model.bottleneck_factor) * (1 - r)))))
        if config.finetune_steps:
            model = finetune(model, step)
        model.eval()
    return model


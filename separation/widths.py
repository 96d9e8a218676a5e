"""Per-layer widths for models whose layers no longer follow num_channels/growth.

Free-mode pruning leaves every conv with its own width. Such a model is saved with the
shape of each parameter that differs from the uniform build, and rebuilt by resizing
exactly those layers, so it reloads without the original model object.
"""
from __future__ import annotations

import torch
from torch import nn


def _uniform_shapes(spec) -> dict[str, tuple]:
    from .model import TFC_TDF_net
    with torch.device("meta"):
        ref = TFC_TDF_net(spec)
    return {k: tuple(v.shape) for k, v in ref.state_dict().items()}


def layer_shapes_if_nonuniform(model: nn.Module) -> dict[str, list[int]]:
    """Shapes of parameters that differ from ``TFC_TDF_net(model.spec)``; empty if none do."""
    ref = _uniform_shapes(model.spec)
    return {k: list(v.shape) for k, v in model.state_dict().items() if ref.get(k) != tuple(v.shape)}


def _resized(module: nn.Module, shape: list[int]) -> nn.Module:
    if isinstance(module, nn.ConvTranspose2d):
        return nn.ConvTranspose2d(shape[0], shape[1], module.kernel_size, module.stride, module.padding, bias=False)
    if isinstance(module, nn.Conv2d):
        return nn.Conv2d(shape[1], shape[0], module.kernel_size, module.stride, module.padding, bias=False)
    if isinstance(module, nn.Linear):
        return nn.Linear(shape[1], shape[0], bias=False)
    if isinstance(module, nn.InstanceNorm2d):
        return nn.InstanceNorm2d(shape[0], affine=True)
    if isinstance(module, nn.GroupNorm):
        return nn.GroupNorm(module.num_groups, shape[0])
    if isinstance(module, nn.BatchNorm2d):
        return nn.BatchNorm2d(shape[0])
    raise ValueError(f"cannot resize a {type(module).__name__}")


def apply_layer_shapes(model: nn.Module, shapes: dict[str, list[int]]) -> nn.Module:
    """Replace each module named by a ``<module>.weight`` key in ``shapes`` with one of that shape."""
    for key, shape in shapes.items():
        module_name, _, param = key.rpartition(".")
        if param != "weight":
            continue  # norm biases follow their weights
        parent_name, _, child = module_name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, _resized(getattr(parent, child), shape))
    return model

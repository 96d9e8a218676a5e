"""The one checkpoint loader/saver: MSST-format state dict + YAML, strict, weights_only.

A checkpoint on disk is ``<name>.ckpt`` (a plain state dict, as MSST/UVR write it) next to
``<name>.yaml`` (the MSST config). Pruned models with per-layer widths also carry
``layer_shapes`` in the YAML's ``drumsep_lab`` section so they rebuild without the original.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import torch

from .atomic_io import atomic_write_bytes
from .config import ModelSpec
from .errors import CheckpointError, UserError

WRAPPER_KEYS = ("state_dict", "state", "model_state_dict", "model")
PREFIXES = ("_orig_mod.", "module.", "model.", "student.")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read tensors from a checkpoint file without unpickling code.

    Accepts a plain state dict, the wrappers ``state_dict``/``state``/``model_state_dict``,
    Lightning checkpoints, and the ``_orig_mod.`` prefix ``torch.compile`` adds.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} needs arbitrary code to unpickle, which drumsep-lab refuses for safety "
            f"(torch.load weights_only=True: {str(err).splitlines()[0]}); re-save it as a plain state dict.") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({str(err).splitlines()[0]}).") from None
    return extract_state_dict(obj, path)


def extract_state_dict(obj, path: os.PathLike | str = "<object>") -> dict[str, torch.Tensor]:
    for _ in range(3):  # unwrap nested wrappers such as {"state_dict": {"model": ...}}
        if isinstance(obj, dict) and not _is_tensor_dict(obj):
            inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict) or not _is_tensor_dict(obj):
        raise CheckpointError(f"{path} holds no state dict (expected tensors, or one under {WRAPPER_KEYS}).")
    return strip_prefixes({k: v for k, v in obj.items() if isinstance(v, torch.Tensor)})


def _is_tensor_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop prefixes shared by *every* key (``_orig_mod.``, ``module.``, Lightning's ``model.``)."""
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


def describe_mismatch(model: torch.nn.Module, state: dict[str, torch.Tensor], spec: ModelSpec | None = None) -> str:
    """One sentence naming missing, unexpected and wrongly-shaped keys, and the config values
    that probably differ; empty if the state dict fits."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shaped = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in own
              if k in state and state[k].shape != own[k].shape]
    if not (missing or unexpected or shaped):
        return ""
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if shaped:
        parts.append(f"{len(shaped)} wrongly shaped (e.g. " + ", ".join(
            f"{k}: file {a} vs model {b}" for k, a, b in shaped[:3]) + ")")
    hints = _config_hints(state, spec) if spec is not None else []
    hint = f"; probably differing config values: {', '.join(hints)}" if hints else ""
    return "; ".join(parts) + hint


def _config_hints(state: dict[str, torch.Tensor], spec: ModelSpec) -> list[str]:
    """Infer the config the file was trained with from a few tell-tale tensors."""
    m, a = spec.model, spec.audio
    hints = []
    if "first_conv.weight" in state:
        c, dim_c = state["first_conv.weight"].shape[:2]
        if c != m.num_channels:
            hints.append(f"model.num_channels (file {c}, config {m.num_channels})")
        if dim_c != m.num_subbands * a.num_channels * 2:
            hints.append(f"model.num_subbands or audio.num_channels (file has {dim_c} input channels)")
    key = "encoder_blocks.0.downscale.conv.2.weight"
    if key in state and "first_conv.weight" in state:
        g = state[key].shape[0] - state["first_conv.weight"].shape[0]
        if g != m.growth:
            hints.append(f"model.growth (file {g}, config {m.growth})")
    levels = {int(k.split(".")[1]) for k in state if k.startswith("encoder_blocks.")}
    if levels and len(levels) != m.num_scales:
        hints.append(f"model.num_scales (file {len(levels)}, config {m.num_scales})")
    blocks = {int(k.split(".")[4]) for k in state if k.startswith("encoder_blocks.0.tfc_tdf.blocks.")}
    if blocks and len(blocks) != m.num_blocks_per_scale:
        hints.append(f"model.num_blocks_per_scale (file {len(blocks)}, config {m.num_blocks_per_scale})")
    tdf = state.get("encoder_blocks.0.tfc_tdf.blocks.0.tdf.2.weight")
    if tdf is not None:
        f_file, f_cfg = tdf.shape[1], a.dim_f // m.num_subbands
        if f_file != f_cfg:
            hints.append(f"audio.dim_f/model.num_subbands (file {f_file} bins per subband, config {f_cfg})")
        elif tdf.shape[0] != f_cfg // m.bottleneck_factor:
            hints.append(f"model.bottleneck_factor (file {f_file // tdf.shape[0]}, config {m.bottleneck_factor})")
    out = state.get("final_conv.2.weight")
    if out is not None and "first_conv.weight" in state:
        stems = out.shape[0] // state["first_conv.weight"].shape[1]
        if stems != len(spec.stems):
            hints.append(f"training.instruments (file has {stems} stems, config {len(spec.stems)})")
    return hints


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], spec: ModelSpec | None = None,
              source: str = "checkpoint") -> torch.nn.Module:
    """Strictly load ``state`` into ``model`` or raise one clear :class:`CheckpointError`."""
    problem = describe_mismatch(model, state, spec)
    if problem:
        raise CheckpointError(f"{source} does not match its config: {problem}.")
    model.load_state_dict(state, strict=True)
    return model


def config_path_for(ckpt: Path) -> Path:
    return ckpt.with_suffix(".yaml")


def load_model(ckpt: str | os.PathLike, config: str | os.PathLike | ModelSpec | None = None,
               dtype: torch.dtype = torch.float32):
    """Build the model described by ``config`` (default: the YAML beside ``ckpt``) and load
    ``ckpt`` into it strictly. Returns the model in eval mode on the CPU."""
    from .model import TFC_TDF_net
    from .widths import apply_layer_shapes

    ckpt = Path(ckpt)
    if config is None:
        config = config_path_for(ckpt)
        if not config.is_file():
            raise CheckpointError(f"no config given and {config} does not exist; pass --config with the model's YAML.")
    spec = config if isinstance(config, ModelSpec) else ModelSpec.from_yaml(config)
    state = read_state_dict(ckpt)
    model = TFC_TDF_net(spec)
    shapes = spec.extras.get("drumsep_lab", {}).get("layer_shapes")
    if shapes:
        apply_layer_shapes(model, shapes)
    load_into(model, {k: v.float() for k, v in state.items()}, spec, source=str(ckpt))
    return model.to(dtype).eval()


def save_model(model, path: str | os.PathLike, half: bool = False, extra_meta: dict | None = None) -> tuple[Path, Path]:
    """Write ``path`` (state dict, MSST format) and the YAML beside it, both atomically.

    ``half`` stores fp16 tensors (loading converts back to fp32). A model whose layers no
    longer follow the uniform num_channels/growth widths (free pruning) records its
    per-layer shapes so :func:`load_model` can rebuild it.
    """
    from .widths import layer_shapes_if_nonuniform

    path = Path(path)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    data = model.spec.to_dict()
    meta = dict(data.pop("drumsep_lab", None) or {})
    meta.pop("layer_shapes", None)
    shapes = layer_shapes_if_nonuniform(model)
    if shapes:
        meta["layer_shapes"] = shapes
    meta.update(extra_meta or {})
    if meta:
        data["drumsep_lab"] = meta
    out_spec = ModelSpec.from_dict(data)
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())
    yaml_path = config_path_for(path)
    out_spec.to_yaml(yaml_path)
    return path, yaml_path


__all__ = ["read_state_dict", "extract_state_dict", "load_into", "load_model", "save_model",
           "describe_mismatch", "CheckpointError", "UserError"]

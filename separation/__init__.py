"""drumsep-lab core: TFC_TDF_net, MSST-format configs and checkpoints, the batched runner.

Depends on neither Lightning nor Hydra, so it can be vendored into other frontends.
"""
from .config import STEMS, ModelSpec
from .errors import AudioError, CheckpointError, UserError
from .model import SpectralCore, TFC_TDF_net, build_model
from .runner import Runner

__all__ = ["STEMS", "ModelSpec", "TFC_TDF_net", "SpectralCore", "build_model", "Runner",
           "UserError", "AudioError", "CheckpointError", "load_any"]


def load_any(model: str, config=None, local_path=None):
    """A model from a registry name or a checkpoint path (with ``config`` or the YAML beside it)."""
    from .checkpoint import load_model
    from .pretrained import REGISTRY, resolve

    if model in REGISTRY:
        ckpt, cfg = resolve(model, local_path)
        return load_model(ckpt, config or cfg)
    return load_model(model, config)

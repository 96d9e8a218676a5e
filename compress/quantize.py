"""int8 TFC_TDF_net with torchao: ``quantize_model(model, QuantConfig(flavour=...), calibration)``.

Flavours:

* ``weight_only``: int8 weights (per output row) for the TDF ``nn.Linear`` layers through
  ``torchao.quantization.quantize_(..., Int8WeightOnlyConfig(), filter_fn=is Linear)``.
* ``dynamic``: the same linears with int8 weights *and* activations quantized on the fly
  (``Int8DynamicActivationInt8WeightConfig``). Both touch only the TDF matmuls (~3 % of the
  time, FACTS.md); the 3x3 convolutions stay fp32. The result is still a TFC_TDF_net.
* ``static``: every convolution (and linear) int8 with activation ranges calibrated on drum audio:
  ``torch.export`` of the spectral core (dynamic batch), ``prepare_pt2e`` with torchao's
  ``X86InductorQuantizer``, calibration, ``convert_pt2e``, then ``torch.compile`` (inductor lowers
  the q/dq pattern to oneDNN int8 kernels; without ``compile`` it runs a slow reference path).
  The quantized core is wrapped in :class:`QuantizedSeparator` (STFT outside).

Every variant maps ``(B, 2, chunk) -> (B, S, 2, chunk)``, so the Runner takes it.

Save/reload (:func:`save_quantized` / :func:`load_quantized`): a small JSON recipe beside the fp32
checkpoint (and, for ``static``, the calibration crops as a plain tensor file); loading re-quantizes.
Why: the int8 tensor-subclass state dict of ``weight_only``/``dynamic`` does load with
``weights_only=True``, but a converted PT2E graph is not a state dict, and re-quantizing is
deterministic (same weights + same calibration audio -> same int8 model), never unpickles code,
and works across torchao versions. The price: the file on disk holds fp32 weights.
"""
from __future__ import annotations

import copy
import json
import os
import platform
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from separation.atomic_io import atomic_write_bytes
from separation.checkpoint import load_model, save_model
from separation.errors import UserError
from separation.machine import cpu_model_and_flags, present_flags
from separation.model import TFC_TDF_net

from .common import calibration_batches, require_tfc_tdf

FLAVOURS = ("weight_only", "dynamic", "static")
RECIPE_FORMAT = "drumsep-lab-int8/1"


@dataclass
class QuantConfig:
    flavour: str = "dynamic"
    compile: bool | None = None      # default: True for static (needed for int8 kernels), else False
    fallback: bool = False           # run even where no int8 CPU backend is detected (slow / emulated)
    calibration_batches: int = 8     # static: batches of the calibration data observed
    max_batch: int = 64              # static: largest batch the exported graph accepts

    def __post_init__(self):
        if self.flavour not in FLAVOURS:
            raise UserError(f"invalid QuantConfig: flavour={self.flavour!r}; use one of {', '.join(FLAVOURS)}.")
        if self.calibration_batches < 1 or self.max_batch < 1:
            raise UserError("invalid QuantConfig: calibration_batches and max_batch must be >= 1.")
        if self.compile is None:
            self.compile = self.flavour == "static"

    def to_dict(self) -> dict:
        return asdict(self)


def int8_backend() -> tuple[bool, str]:
    """Whether this machine has a CPU int8 path torchao/inductor can use, and why (not)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False, f"the CPU is {platform.machine()}, but torchao's int8 CPU kernels and X86InductorQuantizer target x86"
    if not torch.backends.mkldnn.is_available():
        return False, "this PyTorch build has no oneDNN (mkldnn), which runs the int8 convolutions"
    known = bool(cpu_model_and_flags()[1])  # no flags line (off Linux): say nothing against the CPU
    if known and not present_flags(("avx2", "avx512f")):
        return False, "the CPU has neither AVX2 nor AVX-512, so oneDNN has no fast int8 kernels"
    if known and not present_flags(("avx512_vnni", "avx_vnni", "amx_int8")):
        return True, "x86 with AVX2 but no VNNI: int8 works, but may not beat fp32"
    return True, "x86 with oneDNN int8 (VNNI)"


def _is_linear(module: nn.Module, fqn: str) -> bool:
    return isinstance(module, nn.Linear)


class QuantizedSeparator(nn.Module):
    """Waveform ``(B, C, L)`` -> stems ``(B, S, C, L)`` around a quantized spectral core
    ``(B, C*2, F, T) -> (B, S, C*2, F, T)``; the STFT/iSTFT stay fp32 outside it."""

    def __init__(self, core, stft: nn.Module, spec, flavour: str):
        super().__init__()
        self.core, self.stft, self.spec, self.flavour = core, stft, spec, flavour

    @property
    def stems(self) -> list[str]:
        return self.spec.stems

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        length = wave.shape[-1]
        return self.stft.inverse(self.core(self.stft(wave)))[..., :length]


def _static_core(model: TFC_TDF_net, batches: list[dict], config: QuantConfig):
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    specs = [model.stft(b["mixture"]) for b in batches]
    batch = torch.export.Dim("batch", min=1, max=config.max_batch)
    example = torch.cat([specs[0], specs[0]])[:2]  # batch 2 so export does not specialize on 1
    with torch.no_grad():
        graph = torch.export.export(model.core().eval(), (example,), dynamic_shapes=({0: batch},)).module()
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for spec in specs:
            prepared(spec)
    core = convert_pt2e(prepared)
    allow_exported_model_train_eval(core)  # the Runner calls .eval() on whatever it is given
    if config.compile:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # lets inductor pre-pack the int8 weights for oneDNN
        core = torch.compile(core)
    return core


def quantize_model(model: TFC_TDF_net, config: QuantConfig, calibration=None) -> nn.Module:
    """An int8 copy of ``model`` (the fp32 model is left untouched) as a waveform callable.

    ``calibration``: batches of drum audio ``(B, 2, chunk)`` (see :mod:`compress.common`), required
    for ``static``. Raises :class:`UserError` before any work when no int8 backend is usable and
    ``config.fallback`` is off, or when static calibration data is missing."""
    require_tfc_tdf(model, "quantization")
    ok, why = int8_backend()
    if not ok and not config.fallback:
        raise UserError(f"no usable int8 backend: {why}; set fallback=True to run anyway (slowly).")
    batches = calibration_batches(calibration, config.calibration_batches)
    if config.flavour == "static" and not batches:
        raise UserError("static int8 needs calibration audio (batches of drum mixtures (B, 2, chunk)); "
                        "pass calibration=..., e.g. compress.common.rendered_calibration(root, chunk_size, 8).")
    model = copy.deepcopy(model).float().eval()
    if config.flavour == "static":
        return QuantizedSeparator(_static_core(model, batches, config), model.stft, model.spec, "static")
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

    ao_config = Int8WeightOnlyConfig() if config.flavour == "weight_only" else Int8DynamicActivationInt8WeightConfig()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_(model, ao_config, filter_fn=_is_linear)
    model.flavour = config.flavour
    return torch.compile(model) if config.compile else model


# ------------------------------------------------------------------------------ save/load
def save_quantized(fp32_model: TFC_TDF_net, config: QuantConfig, path: str | os.PathLike,
                   calibration=None) -> Path:
    """Write ``path`` (``.int8.json`` recipe), the fp32 checkpoint beside it and, for static, the
    calibration crops; :func:`load_quantized` rebuilds the same int8 model."""
    path = Path(path)
    if not path.name.endswith(".json"):
        raise UserError(f"{path}: an int8 recipe is a .json file (e.g. model.int8.json).")
    stem = path.name.removesuffix(".json").removesuffix(".int8")
    ckpt, _ = save_model(fp32_model, path.with_name(f"{stem}.fp32.ckpt"))
    recipe = {"format": RECIPE_FORMAT, "quant": config.to_dict(), "checkpoint": ckpt.name, "calibration": None}
    batches = calibration_batches(calibration, config.calibration_batches)
    if config.flavour == "static":
        if not batches:
            raise UserError("saving a static int8 model needs its calibration audio (calibration=...).")
        calib = path.with_name(f"{stem}.calib.pt")
        import io

        buf = io.BytesIO()
        torch.save(torch.cat([b["mixture"] for b in batches]), buf)
        atomic_write_bytes(calib, buf.getvalue())
        recipe["calibration"] = calib.name
        recipe["calibration_batch_sizes"] = [b["mixture"].shape[0] for b in batches]
    atomic_write_bytes(path, json.dumps(recipe, indent=1).encode())
    return path


def load_quantized(path: str | os.PathLike, **overrides) -> nn.Module:
    """Rebuild the int8 model a recipe describes (``overrides`` replace QuantConfig fields)."""
    path = Path(path)
    try:
        recipe = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is not a readable int8 recipe ({err}).") from None
    if recipe.get("format") != RECIPE_FORMAT:
        raise UserError(f"{path} is not an int8 recipe (format {recipe.get('format')!r}, want {RECIPE_FORMAT}).")
    config = QuantConfig(**{**recipe["quant"], **overrides})
    model = load_model(path.parent / recipe["checkpoint"])
    calibration = None
    if recipe.get("calibration"):
        calibration = torch.load(path.parent / recipe["calibration"], map_location="cpu", weights_only=True)
        sizes = recipe.get("calibration_batch_sizes") or [1] * calibration.shape[0]
        calibration = list(calibration.split(sizes))
    return quantize_model(model, config, calibration)

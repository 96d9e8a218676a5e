"""Typed MSST/UVR-format model configuration (``audio``, ``model``, ``training``, ``inference``).

The YAML files MSST and UVR ship for MDX23C read into :class:`ModelSpec` and write back
with the same keys. Keys this project does not use (MSST's optimizer settings, augmentation
blocks, ...) are kept in ``extras`` so a round trip loses nothing.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .atomic_io import atomic_write_text
from .errors import UserError

STEMS = ("kick", "snare", "toms", "hh", "cymbals")


def _split_known(cls, data: dict | None) -> dict:
    """Constructor kwargs for dataclass ``cls`` from ``data``; unknown keys go to ``extras``."""
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)} - {"extras"}
    kwargs = {k: data.pop(k) for k in list(data) if k in names}
    kwargs["extras"] = data
    return kwargs


def _as_dict(section) -> dict:
    out = {f.name: getattr(section, f.name) for f in dataclasses.fields(section) if f.name != "extras"}
    out.update(section.extras)
    return out


@dataclass
class AudioConfig:
    """STFT front-end. ``chunk_size`` samples give ``chunk_size // hop_length + 1`` frames."""

    chunk_size: int = 523776
    dim_f: int = 1024
    dim_t: int = 1024
    hop_length: int = 512
    n_fft: int = 2048
    num_channels: int = 2
    sample_rate: int = 44100
    min_mean_abs: float = 0.0
    extras: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return self.chunk_size // self.hop_length + 1


@dataclass
class ModelConfig:
    """U-Net widths: level ``i`` of the encoder has ``num_channels + i * growth`` channels."""

    act: str = "gelu"
    bottleneck_factor: int = 4
    growth: int = 128
    norm: str = "InstanceNorm"
    num_blocks_per_scale: int = 2
    num_channels: int = 128
    num_scales: int = 5
    num_subbands: int = 4
    scale: list = field(default_factory=lambda: [2, 2])
    extras: dict = field(default_factory=dict)


@dataclass
class TrainingConfig:
    instruments: list = field(default_factory=lambda: list(STEMS))
    target_instrument: str | None = None
    use_amp: bool = True
    extras: dict = field(default_factory=dict)


@dataclass
class InferenceConfig:
    batch_size: int = 1
    dim_t: int = 1024
    num_overlap: int = 4
    extras: dict = field(default_factory=dict)


@dataclass
class ModelSpec:
    """Everything needed to rebuild a TFC_TDF_net, in MSST's YAML layout."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    extras: dict = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    # ----------------------------------------------------------------- derived
    @property
    def stems(self) -> list[str]:
        t = self.training
        return [t.target_instrument] if t.target_instrument else list(t.instruments)

    def level_channels(self) -> list[int]:
        """Channels at encoder levels 0..num_scales (the last is the bottleneck)."""
        m = self.model
        return [m.num_channels + i * m.growth for i in range(m.num_scales + 1)]

    def _require_shared(self, teacher: "ModelSpec", keys: list[tuple[str, str]], what: str) -> None:
        """Raise a UserError naming every one of ``keys`` (and the stems) where this config differs from ``teacher``."""
        bad = [f"{a}.{b}" for a, b in keys if getattr(getattr(self, a), b) != getattr(getattr(teacher, a), b)]
        bad += ["training.instruments"] if self.stems != teacher.stems else []
        if bad:
            raise UserError(f"student and teacher configs differ in {', '.join(bad)}; {what}.")

    def require_front_end_of(self, teacher: "ModelSpec") -> None:
        """Raise unless this (student) config can learn from ``teacher``'s outputs: the STFT
        front-end, the subbands and the stems must agree."""
        self._require_shared(teacher, [("audio", "n_fft"), ("audio", "hop_length"), ("audio", "dim_f"),
                                       ("model", "num_subbands")],
                             "a student must share the teacher's STFT front-end and stems")

    def require_waveform_targets_of(self, teacher: "ModelSpec") -> None:
        """Raise unless this (student) config can learn from ``teacher``'s output waveforms on the same crop: the
        stems, the audio format and the hop must agree (the same hop gives both models the same frames, so a
        crop valid for one is valid for the other). Unlike :meth:`require_front_end_of`, the FFT size and the
        bins kept may differ, since only waveforms pass between them."""
        self._require_shared(teacher, [("audio", "sample_rate"), ("audio", "num_channels"), ("audio", "hop_length")],
                             "a student learning from the teacher's waveforms must share its stems, audio format and hop")

    # --------------------------------------------------------------- validation
    def validate(self) -> None:
        a, m = self.audio, self.model
        problems = []
        if a.n_fft // 2 + 1 < a.dim_f:
            problems.append(f"dim_f={a.dim_f} exceeds the {a.n_fft // 2 + 1} bins of n_fft={a.n_fft}")
        if a.dim_f % m.num_subbands:
            problems.append(f"dim_f={a.dim_f} is not divisible by num_subbands={m.num_subbands}")
        sf_, st = m.scale[1], m.scale[0]
        f = a.dim_f // max(m.num_subbands, 1)
        if f % (sf_ ** m.num_scales):
            problems.append(f"dim_f/num_subbands={f} is not divisible by scale^num_scales={sf_ ** m.num_scales}")
        elif f // (sf_ ** m.num_scales) < m.bottleneck_factor:
            problems.append(f"bottleneck_factor={m.bottleneck_factor} leaves the deepest TDF layer with 0 bins")
        if a.num_frames % (st ** m.num_scales):
            problems.append(
                f"chunk_size={a.chunk_size} gives {a.num_frames} STFT frames, not divisible by "
                f"scale^num_scales={st ** m.num_scales}; use chunk_size = hop_length * (k * {st ** m.num_scales} - 1)")
        if m.num_channels <= 0 or m.growth < 0:
            problems.append("num_channels must be positive and growth non-negative")
        if not self.stems:
            problems.append("training.instruments is empty")
        if problems:
            raise UserError("invalid model config: " + "; ".join(problems) + ".")

    # ------------------------------------------------------------------- YAML IO
    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        data = dict(data)
        try:
            return cls(
                audio=AudioConfig(**_split_known(AudioConfig, data.pop("audio", None))),
                model=ModelConfig(**_split_known(ModelConfig, data.pop("model", None))),
                training=TrainingConfig(**_split_known(TrainingConfig, data.pop("training", None))),
                inference=InferenceConfig(**_split_known(InferenceConfig, data.pop("inference", None))),
                extras=data,
            )
        except TypeError as err:
            raise UserError(f"config has a malformed section ({err}).") from None

    def to_dict(self) -> dict[str, Any]:
        out = {name: _as_dict(getattr(self, name)) for name in ("audio", "model", "training", "inference")}
        out.update(self.extras)
        return out

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "ModelSpec":
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config {path} does not exist.")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise UserError(f"config {path} is not valid YAML ({err}).") from None
        if not isinstance(data, dict) or "model" not in data or "audio" not in data:
            raise UserError(f"config {path} is not an MSST/UVR model config (needs 'audio' and 'model').")
        return cls.from_dict(data)

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            atomic_write_text(path, text)
        return text

    def replace(self, **sections) -> "ModelSpec":
        """Copy with some fields changed: ``spec.replace(model={'num_channels': 32})``."""
        data = self.to_dict()
        for name, values in sections.items():
            data[name] = {**data[name], **values}
        return ModelSpec.from_dict(data)

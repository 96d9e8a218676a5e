"""TFC_TDF_net (MDX23C v3), split into a spectral core and a waveform wrapper.

The parameter names, their order and shapes are those of MSST's ``tfc_tdf_v3.TFC_TDF_net``,
so MSST/UVR checkpoints (e.g. jarredou's 5-stem DrumSep) load strictly.

* :class:`SpectralCore` maps a spectrogram ``(B, C*2, F, T)`` (real/imag stacked per channel)
  to stem spectrograms ``(B, S, C*2, F, T)``. Pruning, quantization and ONNX act on it.
* :class:`TFC_TDF_net` *is* a SpectralCore (same parameters, same state-dict keys) whose
  ``forward`` adds the STFT/iSTFT: waveform ``(B, C, L)`` -> stems ``(B, S, C, L)``.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelSpec
from .spectral import istft, stft_tf


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "BatchNorm":
        return nn.BatchNorm2d(channels)
    if kind == "InstanceNorm":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind.startswith("GroupNorm"):
        return nn.GroupNorm(int(kind.removeprefix("GroupNorm")), channels)
    return nn.Identity()


def make_act(kind: str) -> nn.Module:
    if kind == "gelu":
        return nn.GELU()
    if kind == "relu":
        return nn.ReLU()
    if kind.startswith("elu"):
        return nn.ELU(float(kind.removeprefix("elu") or 1.0))
    raise ValueError(f"unknown activation {kind!r}")


class STFT(nn.Module):
    """MSST's complex-as-channels STFT; keeps the first ``dim_f`` bins."""

    def __init__(self, n_fft: int, hop_length: int, dim_f: int):
        super().__init__()
        self.n_fft, self.hop_length, self.dim_f = n_fft, hop_length, dim_f
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(*batch, C, L)`` -> ``(*batch, C*2, dim_f, frames)``."""
        *batch, c, length = x.shape
        spec = stft_tf(x.reshape(-1, length), self.n_fft, self.hop_length, self.window).transpose(-1, -2)
        spec = torch.view_as_real(spec).permute(0, 3, 1, 2)  # (B*C, 2, bins, frames)
        spec = spec.reshape(*batch, c * 2, spec.shape[-2], spec.shape[-1])
        return spec[..., : self.dim_f, :]

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """``(*batch, C*2, dim_f, frames)`` -> ``(*batch, C, L)``; missing top bins are zero."""
        *batch, c2, f, t = x.shape
        # Half precision goes up to fp32, float64 (the null floor's exact pass) stays. The complex
        # spectrogram keeps the model's (F, T) memory order: an inverse FFT along the strided bin axis
        # costs less than transposing to (T, F) first (~30 % of the inverse for a c = 16 student).
        x = x.reshape(-1, 2, f, t).to(torch.promote_types(x.dtype, torch.float32))
        spec = torch.complex(x[:, 0], x[:, 1]).transpose(-1, -2)  # (N, T, F) view
        wave = istft(spec, self.n_fft, self.hop_length, self.window)
        return wave.reshape(*batch, c2 // 2, -1)


class _Rescale(nn.Module):
    """Norm -> act -> (transposed) strided conv; MSST's Downscale/Upscale."""

    def __init__(self, in_c, out_c, scale, norm, act, transpose: bool):
        super().__init__()
        conv = nn.ConvTranspose2d if transpose else nn.Conv2d
        self.conv = nn.Sequential(make_norm(norm, in_c), make_act(act),
                                  conv(in_c, out_c, kernel_size=scale, stride=scale, bias=False))

    def forward(self, x):
        return self.conv(x)


class TFC_TDF(nn.Module):
    """``num_blocks`` residual blocks: 3x3 conv, a frequency-axis bottleneck MLP (TDF), 3x3 conv."""

    def __init__(self, in_c, c, num_blocks, f, bottleneck_factor, norm, act):
        super().__init__()
        self.blocks = nn.ModuleList()
        for _ in range(num_blocks):
            block = nn.Module()
            block.tfc1 = nn.Sequential(make_norm(norm, in_c), make_act(act), nn.Conv2d(in_c, c, 3, 1, 1, bias=False))
            block.tdf = nn.Sequential(make_norm(norm, c), make_act(act), nn.Linear(f, f // bottleneck_factor, bias=False),
                                      make_norm(norm, c), make_act(act), nn.Linear(f // bottleneck_factor, f, bias=False))
            block.tfc2 = nn.Sequential(make_norm(norm, c), make_act(act), nn.Conv2d(c, c, 3, 1, 1, bias=False))
            block.shortcut = nn.Conv2d(in_c, c, 1, 1, 0, bias=False)
            self.blocks.append(block)
            in_c = c

    def forward(self, x):
        """``(B, C_in, T, F)`` -> ``(B, C, T, F)``; the TDF linears act on the last (frequency) axis."""
        for block in self.blocks:
            s = block.shortcut(x)
            x = block.tfc1(x)
            x = x + block.tdf(x)
            x = block.tfc2(x)
            x = x + s
        return x


class SpectralCore(nn.Module):
    """The U-Net: stacked-complex spectrogram in, one per stem out."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        m, a = spec.model, spec.audio
        self.num_stems = len(spec.stems)
        self.num_subbands = m.num_subbands
        self.audio_channels = a.num_channels
        dim_c = m.num_subbands * a.num_channels * 2
        c, g, f = m.num_channels, m.growth, a.dim_f // m.num_subbands
        l, bn, scale = m.num_blocks_per_scale, m.bottleneck_factor, tuple(m.scale)

        self.first_conv = nn.Conv2d(dim_c, c, 1, 1, 0, bias=False)
        self.encoder_blocks = nn.ModuleList()
        for _ in range(m.num_scales):
            block = nn.Module()
            block.tfc_tdf = TFC_TDF(c, c, l, f, bn, m.norm, m.act)
            block.downscale = _Rescale(c, c + g, scale, m.norm, m.act, transpose=False)
            f, c = f // scale[1], c + g
            self.encoder_blocks.append(block)
        self.bottleneck_block = TFC_TDF(c, c, l, f, bn, m.norm, m.act)
        self.decoder_blocks = nn.ModuleList()
        for _ in range(m.num_scales):
            block = nn.Module()
            block.upscale = _Rescale(c, c - g, scale, m.norm, m.act, transpose=True)
            f, c = f * scale[1], c - g
            block.tfc_tdf = TFC_TDF(2 * c, c, l, f, bn, m.norm, m.act)
            self.decoder_blocks.append(block)
        self.final_conv = nn.Sequential(nn.Conv2d(c + dim_c, c, 1, 1, 0, bias=False), make_act(m.act),
                                        nn.Conv2d(c, self.num_stems * dim_c, 1, 1, 0, bias=False))

    def spectral_forward(self, spec: torch.Tensor, return_features: bool = False):
        """``(B, C*2, F, T)`` -> ``(B, S, C*2, F, T)``.

        With ``return_features`` also returns the encoder outputs and bottleneck (a list of
        ``(B, c_level, T', F')``) for feature distillation.
        """
        k = self.num_subbands
        b, c, f, t = spec.shape
        mix = x = spec.reshape(b, c * k, f // k, t)  # complex-as-channels -> subbands as channels
        first_conv_out = x = self.first_conv(x)
        x = x.transpose(-1, -2)
        skips = []
        for block in self.encoder_blocks:
            x = block.tfc_tdf(x)
            skips.append(x)
            x = block.downscale(x)
        x = self.bottleneck_block(x)
        features = [*skips, x] if return_features else None
        for block in self.decoder_blocks:
            x = block.upscale(x)
            x = torch.cat([x, skips.pop()], 1)
            x = block.tfc_tdf(x)
        x = x.transpose(-1, -2)
        x = x * first_conv_out  # MSST: "reduce artifacts"
        x = self.final_conv(torch.cat([mix, x], 1))
        b, c, f, t = x.shape
        x = x.reshape(b, self.num_stems, c // (k * self.num_stems), f * k, t)
        return (x, features) if return_features else x

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.spectral_forward(spec)


class TFC_TDF_net(SpectralCore):
    """Waveform model: ``(B, C, L)`` -> ``(B, S, C, L)`` with the spectral core inside.

    ``L`` is normally ``spec.audio.chunk_size``; any length whose frame count divides
    by ``scale ** num_scales`` works.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        a = spec.audio
        self.stft = STFT(a.n_fft, a.hop_length, a.dim_f)

    @property
    def stems(self) -> list[str]:
        return self.spec.stems

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        length = wave.shape[-1]
        out = self.stft.inverse(self.spectral_forward(self.stft(wave)))
        return out[..., :length]

    def core(self) -> "SpectralView":
        """A module whose ``forward`` is the spectral core (shares this model's parameters)."""
        return SpectralView(self)


class SpectralView(nn.Module):
    """Exposes ``net.spectral_forward`` as ``forward`` (for ONNX export and graph tracing)."""

    def __init__(self, net: SpectralCore):
        super().__init__()
        self.net = net

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.net.spectral_forward(spec)


def build_model(spec: ModelSpec) -> TFC_TDF_net:
    return TFC_TDF_net(spec)

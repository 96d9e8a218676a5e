"""The block-sum inverse STFT is torch.istft's arithmetic, and the allocator switch is safe to call."""
import pytest
import torch

from separation.machine import keep_freed_memory
from separation.spectral import istft, stft_tf


@pytest.mark.parametrize("n_fft,hop", [(4096, 1024), (2048, 512), (2048, 1024), (1024, 256), (512, 384)])
@pytest.mark.parametrize("length", [3000, 44100, 44100 + 333])
def test_istft_equals_torch_istft(n_fft, hop, length):
    torch.manual_seed(length + n_fft)
    window = torch.hann_window(n_fft)
    wave = torch.randn(3, length)
    spec = stft_tf(wave, n_fft, hop, window)  # (N, T, F)
    assert spec.shape == (3, 1 + length // hop, n_fft // 2 + 1) and spec.is_contiguous()
    # a spectrogram no waveform has (the model's and the filter's outputs are of that kind)
    spec = spec * torch.rand(spec.shape)
    ref = torch.istft(spec.transpose(-1, -2), n_fft, hop, window=window, center=True, length=length)
    ours = istft(spec, n_fft, hop, window, length)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-5 * float(ref.abs().max())), float((ours - ref).abs().max())
    default = istft(spec, n_fft, hop, window)  # no length: torch.istft's hop * (frames - 1)
    torch.testing.assert_close(default, torch.istft(spec.transpose(-1, -2), n_fft, hop, window=window, center=True),
                               atol=1e-5 * float(ref.abs().max()), rtol=0)


@pytest.mark.parametrize("n_fft,hop", [(2048, 512), (512, 384)])
def test_istft_zero_fills_missing_top_bins(n_fft, hop):
    window = torch.hann_window(n_fft)
    spec = stft_tf(torch.randn(2, 20_000), n_fft, hop, window)
    cut = spec[..., : n_fft // 4]  # the model keeps dim_f < n_fft // 2 + 1 bins
    full = torch.cat([cut, torch.zeros(*cut.shape[:-1], spec.shape[-1] - cut.shape[-1], dtype=cut.dtype)], -1)
    torch.testing.assert_close(istft(cut, n_fft, hop, window), istft(full, n_fft, hop, window), atol=1e-6, rtol=0)


def test_istft_refuses_a_length_its_frames_cannot_give():
    window = torch.hann_window(1024)
    spec = stft_tf(torch.randn(1, 5000), 1024, 256, window)
    with pytest.raises(ValueError, match="cannot give"):
        istft(spec, 1024, 256, window, 50_000)


def test_keep_freed_memory_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("DRUMSEP_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False

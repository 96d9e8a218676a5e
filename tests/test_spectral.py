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


@pytest.mark.parametrize("n_fft,hop", [(4096, 2048), (1024, 512), (2048, 512)])
@pytest.mark.parametrize("length", [3000, 44100 + 333])
def test_host_stft_equals_torch_stft(n_fft, hop, length):
    """The host path (numba framing, scipy FFT) against torch.stft, reflect-padded edges included,
    on a track slice whose rows are not contiguous (what the Wiener filter passes)."""
    torch.manual_seed(length)
    window = torch.hann_window(n_fft)
    track = torch.randn(3, length + 500)
    wave = track[:, 200:200 + length]
    ours = stft_tf(wave, n_fft, hop, window, host=True)
    ref = torch.stft(wave, n_fft, hop, window=window, center=True, return_complex=True).transpose(-1, -2)
    assert ours.shape == ref.shape and ours.dtype == torch.complex64 and ours.is_contiguous()
    torch.testing.assert_close(ours, ref, atol=1e-5 * float(ref.abs().max()), rtol=0)


def test_host_istft_reads_a_strided_layout():
    """An (N, T, F) view of (F, T) memory with dim_f < n_fft // 2 + 1 bins, as the model hands the inverse."""
    n_fft, hop, bins, frames = 1024, 512, 480, 40
    window = torch.hann_window(n_fft)
    spec = torch.complex(torch.randn(4, bins, frames), torch.randn(4, bins, frames)).transpose(-1, -2)
    assert spec.stride(-1) != 1
    full = torch.nn.functional.pad(spec, (0, n_fft // 2 + 1 - bins))
    ref = torch.istft(full.transpose(-1, -2), n_fft, hop, window=window, center=True)
    ours = istft(spec, n_fft, hop, window, host=True)
    torch.testing.assert_close(ours, ref, atol=1e-5 * float(ref.abs().max()), rtol=0)


def test_a_spectrogram_that_needs_its_gradient_stays_in_torch():
    """Training back-propagates through the model's inverse STFT: the host path must not cut the graph."""
    n_fft, hop = 512, 256
    window = torch.hann_window(n_fft)
    wave = torch.randn(2, 4000, requires_grad=True)
    spec = stft_tf(wave, n_fft, hop, window, host=True)
    out = istft(spec, n_fft, hop, window, 4000, host=True)
    out.square().sum().backward()
    torch.testing.assert_close(wave.grad, 2 * wave.detach(), atol=1e-4, rtol=1e-4)  # istft(stft(x)) = x
    with torch.no_grad():  # the same call without a gradient takes the host path, same numbers
        torch.testing.assert_close(istft(stft_tf(wave, n_fft, hop, window, host=True), n_fft, hop, window, 4000, host=True),
                                   out.detach(), atol=1e-5, rtol=0)

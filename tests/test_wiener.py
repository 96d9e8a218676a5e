"""The Wiener post-filter gives back what a shrunken estimate leaves out, sums to the mixture,
streams segment by segment without seams, and is norbert's filter (the reference) exactly."""
import numpy as np
import pytest
import torch

from separation import Runner
from separation.wiener import refine, refine_stream, wiener

SR = 44100


def _sources(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Two stereo sources in disjoint bands: a low tone with a pulse envelope, high-passed noise bursts."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    low = np.sin(2 * np.pi * 110 * t) * (0.5 + 0.5 * np.sign(np.sin(2 * np.pi * 2 * t)))
    noise = rng.standard_normal(t.size)
    high = np.fft.irfft(np.fft.rfft(noise) * (np.fft.rfftfreq(t.size, 1 / SR) > 6000), t.size)
    high *= (np.sin(2 * np.pi * 3 * t) > 0.3) * 0.3
    return np.stack([np.stack([low, 0.8 * low]), np.stack([0.7 * high, high])]).astype(np.float32)


def _snr(ref, est):
    return 10 * np.log10((ref ** 2).sum() / ((ref - est) ** 2).sum())


def test_refine_restores_a_shrunken_estimate_and_sums_to_the_mixture():
    refs = _sources()
    mix = refs.sum(0)
    shrunk = 0.4 * refs  # what an unsure MSE model outputs: the right stem, too quiet
    before = [_snr(r, e) for r, e in zip(refs, shrunk)]
    out = refine(mix, shrunk, iterations=1)
    after = [_snr(r, e) for r, e in zip(refs, out)]
    assert out.shape == refs.shape and out.dtype == np.float32
    assert max(before) < 5 and min(after) > 15, (before, after)
    # the filtered stems add up to the mixture, except in bins where every prior is ~0 (40.2 dB through
    # torch's FFTs, 40.0 through the host FFT path: the EM step amplifies rounding there)
    assert _snr(mix, out.sum(0)) > 35


@pytest.mark.parametrize("block,hop", [(997, None), (44100, None), (200_000, None), (44100, 2048)])
def test_refine_stream_matches_the_whole_track_for_a_ratio_mask(block, hop):
    refs = _sources(seconds=5.0, seed=1)
    mix = refs.sum(0)
    est = (0.5 * refs + 0.01 * np.random.default_rng(2).standard_normal(refs.shape)).astype(np.float32)
    whole = refine(mix, est, iterations=0, hop=hop)
    blocks = (est[..., i:i + block] for i in range(0, est.shape[-1], block))
    streamed = np.concatenate(list(refine_stream(mix, blocks, iterations=0, segment=43 * 1024, hop=hop)), axis=-1)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-4)


def test_refine_stream_refuses_a_stream_that_does_not_cover_the_mixture():
    refs = _sources(seconds=1.0)
    with pytest.raises(ValueError, match="covers"):
        list(refine_stream(refs.sum(0), iter([refs[..., :1000]]), iterations=0))


def test_runner_wiener_output_sums_to_the_mixture():
    refs = _sources(seconds=3.0, seed=3)
    mix = refs.sum(0)

    def unsure_model(x):  # a band split that outputs each band at 0.4x: right stems, too quiet
        spec = torch.fft.rfft(x)
        low = torch.fft.rfftfreq(x.shape[-1], 1 / SR) < 3000
        bands = [torch.fft.irfft(spec * low, x.shape[-1]), torch.fft.irfft(spec * ~low, x.shape[-1])]
        return 0.4 * torch.stack(bands, dim=1)

    plain = Runner(unsure_model, chunk_size=SR, num_overlap=2, device="cpu", progress=False).separate(mix)
    filtered = Runner(unsure_model, chunk_size=SR, num_overlap=2, device="cpu", progress=False,
                      wiener=1).separate(mix)
    assert filtered.shape == plain.shape
    assert _snr(mix, plain.sum(0)) < 10 < 30 < _snr(mix, filtered.sum(0))
    assert all(_snr(r, p) < 5 < 15 < _snr(r, f) for r, p, f in zip(refs, plain, filtered))
    with pytest.raises(ValueError):
        Runner(unsure_model, chunk_size=SR, wiener=-1)
    with pytest.raises(ValueError, match="wiener_hop"):
        Runner(unsure_model, chunk_size=SR, wiener=1, wiener_hop=1000)
    coarse = Runner(unsure_model, chunk_size=SR, num_overlap=2, device="cpu", progress=False,
                    wiener=1, wiener_hop=2048).separate(mix)  # half the filter's frames: still restores the stems
    assert _snr(mix, coarse.sum(0)) > 30 and all(_snr(r, c) > 15 for r, c in zip(refs, coarse))


@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("iterations", [0, 1, 2])
def test_wiener_is_norberts_filter(channels, iterations):
    """The torch filter (bin blocks, closed-form stereo step) against norbert.wiener itself."""
    import norbert
    rng = np.random.default_rng(channels * 10 + iterations)
    frames, bins, stems = 150, 200, 5  # 200 bins: several blocks and a ragged last one
    v = (rng.standard_normal((frames, bins, channels, stems)) ** 2).astype(np.float32)
    x = (30 * (rng.standard_normal((frames, bins, channels)) + 1j * rng.standard_normal((frames, bins, channels)))
         ).astype(np.complex64)  # loud enough that norbert's rescaling (max |x| / 10) is exercised
    ref = norbert.wiener(v.copy(), x.copy(), iterations=iterations)
    out = wiener(torch.from_numpy(v).permute(3, 2, 1, 0), torch.from_numpy(x).permute(2, 1, 0), iterations)
    out = out.permute(3, 2, 1, 0).numpy()
    null = 10 * np.log10((np.abs(ref - out) ** 2).sum() / (np.abs(ref) ** 2).sum())
    assert null < -100, null


def test_benchmark_warm_up_waits_for_the_filters_kernels():
    """eval's warm-up must leave no first-use compile of the filter inside a timed track."""
    from eval.timing.benchlib import warm_up

    plain = Runner(lambda x: torch.stack([x, x], 1) / 2, chunk_size=SR, device="cpu", progress=False)
    assert plain.wiener_preload is None
    warm_up(plain)
    runner = Runner(lambda x: torch.stack([x, x], 1) / 2, chunk_size=SR, device="cpu", progress=False, wiener=1)
    assert runner.wiener_preload is not None
    warm_up(runner)
    assert not runner.wiener_preload.is_alive()

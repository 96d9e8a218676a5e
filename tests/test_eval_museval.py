"""museval wrapper: a hand-computed SDR, silent stems, the per-track cache."""
import numpy as np
import pytest

from eval.scoring.museval_sdr import evaluate_folders, evaluate_track, utterance_sdr_folders
from separation.audio import write_audio

SR = 44100


def noisy_copy(refs, target_db, rng):
    """``refs`` plus white noise scaled so that 10 log10(|ref|^2 / |noise|^2) = target_db per stem."""
    noise = rng.standard_normal(refs.shape)
    ref_energy = np.square(refs).sum((-2, -1), keepdims=True)
    noise_energy = np.square(noise).sum((-2, -1), keepdims=True)
    return (refs + noise * np.sqrt(ref_energy / noise_energy / 10 ** (target_db / 10))).astype(np.float32)


@pytest.mark.parametrize("mode", ["per_stem", "joint"])
def test_museval_matches_hand_computed_sdr(mode):
    # BSSEval v4's SDR projects on the unfiltered reference, so white noise at 10 dB must read
    # 10 dB (the distortion filter only moves ISR); 2 s of noise keeps the estimate tight.
    rng = np.random.default_rng(0)
    refs = (0.1 * rng.standard_normal((3, 2, 2 * SR))).astype(np.float32)
    ests = noisy_copy(refs, 10.0, rng)
    out = evaluate_track(refs, ests, ["a", "b", "c"], mode=mode)
    for stem in "abc":
        assert out[stem]["SDR"] == pytest.approx(10.0, abs=0.1)
        assert set(out[stem]) == {"SDR", "SIR", "ISR", "SAR"}


@pytest.mark.parametrize("mode", ["per_stem", "joint"])
def test_silent_estimate_of_an_active_stem_scores_zero_db(mode):
    # museval refuses an all-zero estimate; a model that gives up on a stem must be scored
    # (0 dB, the SDR of silence), not crash the run or drop out of the average.
    rng = np.random.default_rng(3)
    refs = (0.1 * rng.standard_normal((3, 2, 2 * SR))).astype(np.float32)
    ests = noisy_copy(refs, 10.0, rng)
    ests[1] = 0
    out = evaluate_track(refs, ests, ["a", "b", "c"], mode=mode)
    assert out["b"] == {"SDR": 0.0, "SIR": None, "ISR": None, "SAR": None}
    for stem in "ac":
        assert out[stem]["SDR"] == pytest.approx(10.0, abs=0.1)
    ests[2] = 0  # now every estimate but "a" is silent: "a" is still scored
    out = evaluate_track(refs, ests, ["a", "b", "c"], mode=mode)
    assert out["a"]["SDR"] == pytest.approx(10.0, abs=0.1) and out["c"]["SDR"] == 0.0


def write_tracks(root, refs_by_track, ests_by_track, stems):
    for track, refs in refs_by_track.items():
        for stem, ref, est in zip(stems, refs, ests_by_track[track]):
            write_audio(root / "ref" / track / f"{stem}.wav", ref)
            write_audio(root / "est" / track / f"{stem}.wav", est)


def test_silent_stem_is_excluded_and_counted(tmp_path):
    stems = ["kick", "snare", "toms"]
    rng = np.random.default_rng(1)
    refs = {t: (0.1 * rng.standard_normal((3, 2, SR))).astype(np.float32) for t in ("t0", "t1")}
    refs["t1"][2] = 0  # no toms in t1: museval gives NaN frames, the track must not count for toms
    ests = {t: noisy_copy(r, 10.0, rng) for t, r in refs.items()}
    ests["t1"][2] = 0.01 * rng.standard_normal((2, SR))
    write_tracks(tmp_path, refs, ests, stems)
    res = evaluate_folders(tmp_path / "ref", tmp_path / "est", stems, jobs=1)
    assert res["excluded"] == {"kick": 0, "snare": 0, "toms": 1}
    assert res["num_tracks"]["toms"] == 1
    assert res["per_track"]["t1"]["toms"] is None
    assert res["sdr"]["toms"] == pytest.approx(10.0, abs=0.1)  # the mean over the one valid track
    assert np.isfinite(res["sdr"]["mean"])
    fast = utterance_sdr_folders(tmp_path / "ref", tmp_path / "est", stems)
    assert fast["excluded"]["toms"] == 1 and fast["sdr"]["kick"] == pytest.approx(10.0, abs=0.05)


def test_cache_skips_unchanged_tracks(tmp_path):
    stems = ["kick", "snare"]
    rng = np.random.default_rng(2)
    refs = {t: (0.1 * rng.standard_normal((2, 2, SR))).astype(np.float32) for t in ("t0", "t1")}
    ests = {t: noisy_copy(r, 5.0, rng) for t, r in refs.items()}
    write_tracks(tmp_path, refs, ests, stems)
    kwargs = dict(stems=stems, jobs=2, cache_dir=tmp_path / "cache", cache_key="model-a")
    first = evaluate_folders(tmp_path / "ref", tmp_path / "est", **kwargs)
    assert first["cache"] == {"hits": 0, "computed": 2}
    second = evaluate_folders(tmp_path / "ref", tmp_path / "est", **kwargs)
    assert second["cache"] == {"hits": 2, "computed": 0}
    assert second["sdr"] == first["sdr"]
    # A changed estimate invalidates only its own track.
    write_audio(tmp_path / "est" / "t1" / "kick.wav", noisy_copy(refs["t1"], 20.0, rng)[0])
    third = evaluate_folders(tmp_path / "ref", tmp_path / "est", **kwargs)
    assert third["cache"] == {"hits": 1, "computed": 1}
    assert third["per_track"]["t1"]["kick"]["SDR"] == pytest.approx(20.0, abs=0.2)


def test_reference_folder_without_stems_is_an_error(tmp_path):
    from separation.errors import UserError
    rng = np.random.default_rng(4)
    refs = {"t0": (0.1 * rng.standard_normal((2, 2, SR))).astype(np.float32)}
    write_tracks(tmp_path, refs, refs, ["kick", "snare"])
    for f in (tmp_path / "ref" / "t0").iterdir():
        f.rename(f.with_name("Kick-" + f.name))  # misnamed stems: would read as "all silent"
    for fn in (evaluate_folders, utterance_sdr_folders):
        with pytest.raises(UserError, match="has none of kick.wav, snare.wav"):
            fn(tmp_path / "ref", tmp_path / "est", ["kick", "snare"])

"""The training bank: spectral-tilt augmentation (drumdata.bank.tilt_eq / draw_batch(eq=...)) and per-kit shares."""
import math

import pytest
import torch

from drumdata.bank import draw_batch, tilt_eq

SR = 44100


def _band_gain_db(before: torch.Tensor, after: torch.Tensor) -> float:
    return 10 * math.log10(float(after.pow(2).mean() / before.pow(2).mean()))


def _sine(freq: float, n: int = SR // 4) -> torch.Tensor:
    return torch.sin(2 * math.pi * freq * torch.arange(n) / SR)[None, None, None, :].expand(1, 1, 2, n).clone()


def test_tilt_brightens_darkens_and_leaves_lows_alone():
    low, high = _sine(100.0), _sine(8000.0)
    core = slice(16, -16)  # away from the edges' padding
    for tilt, high_min, high_max in [(0.0, -0.01, 0.01), (0.5, 2.0, 4.0), (-1.0, -99.0, -15.0)]:
        t = torch.full((1, 1), tilt)
        assert abs(_band_gain_db(low[..., core], tilt_eq(low, t)[..., core])) < 0.05
        gain = _band_gain_db(high[..., core], tilt_eq(high, t)[..., core])
        assert high_min < gain < high_max, (tilt, gain)


def test_draw_batch_eq_only_tilts_the_same_crops():
    torch.manual_seed(0)
    bank = torch.randn(6, 5, 2, 4000).to(torch.float16)
    plain_mix, plain = draw_batch(bank, 3, 1000, torch.Generator().manual_seed(1))
    mix, stems = draw_batch(bank, 3, 1000, torch.Generator().manual_seed(1), eq=0.6)
    assert torch.allclose(mix, stems.sum(1), atol=1e-5)
    assert not torch.allclose(stems, plain)
    # same crops, gains and channels: the boxcar low-pass of both agrees (tilt touches highs only)
    box = lambda x: torch.nn.functional.avg_pool1d(x.reshape(-1, 1, x.shape[-1]), 9, 1, 4)  # noqa: E731
    assert torch.allclose(box(box(stems))[..., 20:-20], box(box(plain))[..., 20:-20], atol=0.15)
    ratio = stems.pow(2).mean((-2, -1)) / plain.pow(2).mean((-2, -1))
    assert ratio.std() > 0.01  # each stem got its own tilt


def test_kit_weights_set_each_kits_share_of_the_bank(tmp_path):
    """--kit-weight: SoundFont kits at half a Hydrogen kit's share; bad specs fail before rendering."""
    from drumdata.bank import clips_per_kit, parse_kit_weights
    from separation.errors import UserError
    from train.onthefly_teacher import main

    kits = ["GMRockKit", "sf2-FluidR3_GM-Standard", "sf2-FluidR3_GM-Jazz", "Audiophob"]
    assert clips_per_kit(kits, 10) == [3, 3, 2, 2]  # even, remainder to the first
    weights = parse_kit_weights(["sf2-*=0.5"])
    assert weights == [("sf2-*", 0.5)]
    assert clips_per_kit(kits, 300, weights) == [100, 50, 50, 100]
    assert sum(clips_per_kit(kits, 7, weights)) == 7
    assert clips_per_kit(kits, 300, parse_kit_weights(["sf2-*=0", "*=1"])) == [150, 0, 0, 150]
    for bad in (["sf2-*"], ["=1"], ["sf2-*=-1"], ["sf2-*=x"], ["sf2-*=nan"]):
        with pytest.raises(UserError, match="PATTERN=WEIGHT"):
            parse_kit_weights(bad)
    with pytest.raises(UserError, match="weight 0"):
        clips_per_kit(kits, 10, [("*", 0.0)])
    with pytest.raises(UserError, match="PATTERN=WEIGHT"):
        main(["--out", str(tmp_path / "run"), "--kit-weight", "sf2-*", "--kits-dir", str(tmp_path / "no-kits")])
    assert not (tmp_path / "run" / "last.pt").exists()


def test_kit_stems_keep_a_kits_other_stems_out_of_every_batch(tmp_path):
    """--kit-stems 'sf2-*=hh,cymbals': SoundFont clips lend hi-hats and cymbals only; each stem of
    each batch item is traced back to its clip, so a forbidden draw cannot hide."""
    from drumdata.bank import bank_clip_kits, clips_per_kit, parse_kit_stems, stem_eligibility
    from separation.errors import UserError
    from train.onthefly_teacher import main

    kits = ["GMRockKit", "sf2-FluidR3_GM-Standard", "Audiophob"]
    rules = parse_kit_stems(["sf2-*=hh,cymbals"])
    assert rules == [("sf2-*", ("hh", "cymbals"))]
    clip_kits = bank_clip_kits(kits, hours=30 * 4 / 3600, clip_seconds=4, kit_weights=[("sf2-*", 2.0)])
    assert [clip_kits.count(k) for k in kits] == clips_per_kit(kits, 30, [("sf2-*", 2.0)]) == [8, 15, 7]
    ok = stem_eligibility(clip_kits, rules)
    assert ok.shape == (30, 5) and ok[8:23, 3:].all() and not ok[8:23, :3].any() and ok[:8].all()

    # clip i holds the value i + 1 everywhere, so every drawn sample names its clip
    bank = (torch.arange(30, dtype=torch.float32) + 1)[:, None, None, None].expand(30, 5, 2, 500).clone()
    gen = torch.Generator().manual_seed(3)
    sources = torch.cat([draw_batch(bank, 16, 100, gen, gain=(1.0, 1.0), stem_ok=ok)[1][..., 0, 0].abs().long() - 1
                         for _ in range(20)])  # (320, 5) clip index of each drawn stem
    assert ok[sources, torch.arange(5)].all()
    sf2 = (sources >= 8) & (sources < 23)
    assert sf2[:, 3:].float().mean() > 0.3  # their hats and cymbals are used (half the bank is theirs)

    # without stem_ok the draws are the old ones, and they do reach the SoundFont kits' drums
    plain = draw_batch(bank, 64, 100, torch.Generator().manual_seed(4), gain=(1.0, 1.0))[1]
    assert ((plain[..., :3, 0, 0].abs().long() - 1).ge(8) & (plain[..., :3, 0, 0].abs().long() - 1).lt(23)).any()

    for bad in (["sf2-*"], ["=hh"], ["sf2-*=hats"], ["sf2-*="]):
        with pytest.raises(UserError, match="PATTERN=STEM"):
            parse_kit_stems(bad)
    with pytest.raises(UserError, match="'sf-\\*' match no training kit"):
        stem_eligibility(clip_kits, parse_kit_stems(["sf-*=hh"]))
    with pytest.raises(UserError, match="no training kit lends kick"):
        stem_eligibility(["sf2-a", "sf2-b"], rules)
    with pytest.raises(UserError, match="PATTERN=STEM"):
        main(["--out", str(tmp_path / "run"), "--kit-stems", "sf2-*=hats", "--kits-dir", str(tmp_path / "no-kits")])
    assert not (tmp_path / "run" / "last.pt").exists()

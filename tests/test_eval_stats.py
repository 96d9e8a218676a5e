"""Intervals over tracks: the t-interval is the textbook one, pairing removes the spread that two
variants share, and excluded stems drop out instead of counting as zeros."""
import math

import numpy as np
import pytest

from eval.scoring.stats import fmt_ci, mean_ci, paired_delta, sdr_with_ci

STEMS = ["kick", "snare"]


def _tracks(values: dict[str, list[float | None]]) -> dict:
    """{stem: [v per track]} -> evaluate_folders' per_track layout."""
    n = len(next(iter(values.values())))
    return {f"t{i}": {s: (None if v[i] is None else {"SDR": v[i]}) for s, v in values.items()} for i in range(n)}


def test_mean_ci_is_the_student_t_interval():
    x = [1.0, 2.0, 3.0, 4.0]
    # t(0.975, 3) = 3.182446; sd = 1.290994; half = t * sd / 2
    assert mean_ci(x) == pytest.approx({"mean": 2.5, "ci": 3.182446 * 1.290994 / 2, "n": 4}, rel=1e-5)
    assert mean_ci([5.0]) == {"mean": 5.0, "ci": None, "n": 1}
    assert mean_ci([None, float("nan")]) == {"mean": None, "ci": None, "n": 0}


def test_pairing_removes_shared_track_spread():
    rng = np.random.default_rng(0)
    level = rng.normal(10, 5, 30)  # tracks differ by many dB ...
    a = _tracks({"kick": list(level), "snare": list(level + 2)})
    b = _tracks({"kick": list(level - 0.1 + rng.normal(0, 0.02, 30)),  # ... the variant by ~0.1 dB
                 "snare": list(level + 2 - 0.1 + rng.normal(0, 0.02, 30))})
    alone = sdr_with_ci(b, STEMS)
    delta = paired_delta(b, a, STEMS)
    assert alone["kick"]["ci"] > 1.0  # unpaired, 0.1 dB is lost in the spread
    assert delta["kick"]["mean"] == pytest.approx(-0.1, abs=0.02)
    assert delta["kick"]["ci"] < 0.02 and delta["mean"]["ci"] < 0.02
    assert delta["mean"]["lo"] < delta["mean"]["mean"] < delta["mean"]["hi"] < 0  # significantly worse
    assert paired_delta(b, a, STEMS) == delta  # seeded bootstrap: the same table twice


def test_excluded_stems_drop_out_of_the_statistics():
    a = _tracks({"kick": [10.0, 12.0, 14.0], "snare": [None, 4.0, 6.0]})
    res = sdr_with_ci(a, STEMS)
    assert res["snare"]["n"] == 2 and res["snare"]["mean"] == 5.0
    assert res["mean"]["mean"] == pytest.approx((12.0 + 5.0) / 2)  # the tables' mean of stem means
    b = _tracks({"kick": [9.0, 11.0, 13.0], "snare": [3.0, 3.0, 5.0]})
    d = paired_delta(b, a, STEMS)
    assert d["snare"]["n"] == 2 and d["snare"]["mean"] == pytest.approx(-1.0)
    assert d["mean"]["mean"] == pytest.approx(-1.0)  # track 0's snare is not compared with nothing
    assert fmt_ci(d["kick"], signed=True) == "-1.00 ± 0.00" and fmt_ci(None) == "–"
    assert not math.isnan(d["mean"]["ci"])

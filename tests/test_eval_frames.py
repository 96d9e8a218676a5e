"""eval.frames: the per-frame view of a stem's museval-style score (a decaying tail under a constant leak)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from eval.tables.frames import main

RATE = 44100


def write_track(folder, stems):
    folder.mkdir(parents=True)
    for name, audio in stems.items():
        sf.write(folder / f"{name}.wav", audio.T, RATE, subtype="FLOAT")


def test_frames_show_a_tail_losing_to_a_constant_leak(tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2, 4 * RATE))
    levels_db = np.array([-40.0, -60.0, -80.0, -300.0])  # a crash decaying 20 dB a second, then silence
    gain = np.repeat(10 ** (levels_db / 20), RATE)
    cymbal = noise * gain
    cymbal[:, 3 * RATE:] = 0.0
    leak = rng.standard_normal((2, 4 * RATE)) * 10 ** (-65 / 20)  # -65 dBFS of hi-hat under it throughout
    write_track(tmp_path / "ref", {"cymbals": cymbal})
    write_track(tmp_path / "est", {"cymbals": cymbal + leak})

    table = main([str(tmp_path / "ref"), str(tmp_path / "est"), "--stems", "cymbals", "--out", str(tmp_path / "f.json")])
    rows = table["cymbals"]
    assert [r["scored"] for r in rows] == [True, True, True, False]  # the silent second is left out
    for row, ref_db, sdr in zip(rows[:3], levels_db, [25.0, 5.0, -15.0]):
        assert row["reference_dbfs"] == pytest.approx(ref_db, abs=0.2)
        assert row["error_dbfs"] == pytest.approx(-65.0, abs=0.2)
        assert row["sdr"] == pytest.approx(sdr, abs=0.3)
    saved = json.loads((tmp_path / "f.json").read_text())
    assert saved["frames"]["cymbals"] == rows


def test_frames_refuse_a_missing_stem_in_one_line_and_write_nothing(tmp_path, capsys):
    write_track(tmp_path / "ref", {"hh": np.zeros((2, RATE))})
    (tmp_path / "est").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "ref"), str(tmp_path / "est"), "--stems", "hh", "--out", str(tmp_path / "f.json")])
    assert exit_info.value.code == 2
    assert "hh.wav is missing" in capsys.readouterr().err
    assert not (tmp_path / "f.json").exists()

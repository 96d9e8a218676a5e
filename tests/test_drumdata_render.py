"""drumdata: kit parsing, grooves, the renderer (real Hydrogen kits and the synthetic fallback)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from drumdata import STEMS
from drumdata.grooves import STYLES, make_groove
from drumdata.kit_tables import DEFAULT_SPLITS
from drumdata.kits import DEFAULT_KITS_DIR, guess_role, list_kits, load_kit, parse_drumkit_xml
from drumdata.render import choose_kits, ensure_rendered, main, render
from separation.errors import UserError

HAVE_KITS = (DEFAULT_KITS_DIR / "GMRockKit" / "drumkit.xml").is_file()
# scripts/setup.sh installs the kits; without them these tests fail (they are not skipped) with this hint.
KITS_HINT = "the Hydrogen kits are missing: run scripts/setup.sh (apt-get install hydrogen-drumkits hydrogen-data)"

# Small kits, one per split under the default table, plus a second (electronic) train kit.
TEST_KITS = ["Audiophob", "TR808EmulationKit", "ColomboAcousticDrumkit", "The Black Pearl 1.0"]
SETTINGS = dict(hours=4 * 2.5 / 3600, seed=1, clip_seconds=2.5, kits=TEST_KITS)


def null_db(mixture: np.ndarray, stems: np.ndarray) -> float:
    diff = mixture.astype(np.float64) - stems.astype(np.float64).sum(0)
    err = np.sqrt((diff ** 2).mean())
    return -np.inf if err == 0 else 20 * np.log10(err / np.sqrt((mixture.astype(np.float64) ** 2).mean()))


def read_clip(out: Path, rel: str) -> tuple[np.ndarray, np.ndarray]:
    mix = sf.read(out / rel / "mixture.wav", dtype="float32")[0].T
    stems = np.stack([sf.read(out / rel / f"{s}.wav", dtype="float32")[0].T for s in STEMS])
    return mix, stems


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    assert HAVE_KITS, KITS_HINT
    out = tmp_path_factory.mktemp("render") / "out"
    meta = render(out, progress=False, log=lambda *a: None, **SETTINGS)
    return out, meta


def test_kit_formats_and_mapping():
    # 1.x namespaced kit with <instrumentComponent> and <pan>
    _, _, gm = parse_drumkit_xml(DEFAULT_KITS_DIR / "GMRockKit" / "drumkit.xml")
    kick = next(i for i in gm if i["name"] == "Kick")
    assert len(kick["layers"]) == 5 and kick["pan"] == 0.0
    # 0.9.3 kit: a single <filename> directly on the instrument
    _, _, he = parse_drumkit_xml(DEFAULT_KITS_DIR / "HardElectro1" / "drumkit.xml")
    assert he[0]["layers"] == [(0.0, 1.0, 1.0, "HardHse_K_02.flac")]
    kit = load_kit("GMRockKit")
    assert kit.kind == "acoustic" and kit.classes() == set(STEMS)
    assert "Cowbell" in kit.unmapped and "Hand Clap" in kit.unmapped
    assert load_kit("TR808EmulationKit").kind == "electronic"
    assert not load_kit("Gimme A Hand 1.0", load_audio=False).instruments  # percussion only
    rumpf = load_kit("rumpf_kit_z01_h2")  # 48 kHz flac kit, resampled on load
    assert rumpf.skipped_samples == 0 and rumpf.instruments[0].layers[0].audio.shape[0] == 2


def test_keyword_fallback():
    cases = {"Bass Drum 2": "kick", "Side Stick": "sidestick", "Snare Rimshot": "rimshot",
             "Floor Tom": "tom_low", "Hi-Hat Open": "hh_open", "HH pedal": "hh_pedal",
             "China 18": "china", "Ride Bell": "ride_bell", "Cowbell": None, "Tambourine": None}
    assert {name: guess_role(name) for name in cases} == cases


def test_corrupt_samples_are_skipped_and_counted(tmp_path):
    kit_dir = tmp_path / "Broken"
    shutil.copytree(DEFAULT_KITS_DIR / "Audiophob", kit_dir)
    victim = sorted(kit_dir.glob("*.wav"))[0]
    victim.write_bytes(b"RIFF not really a wav")
    kit = load_kit("Broken", tmp_path)
    assert kit.skipped_samples == 1 and kit.instruments


def test_missing_kits_dir_says_how_to_install(tmp_path, capsys):
    with pytest.raises(UserError, match="apt-get install hydrogen-drumkits hydrogen-data"):
        list_kits(tmp_path / "nope")
    with pytest.raises(SystemExit) as exit_info:
        main(["--hours", "0.001", "--out", str(tmp_path / "o"), "--source", "hydrogen",
              "--kits-dir", str(tmp_path / "nope")])
    assert exit_info.value.code == 2 and "apt-get install" in capsys.readouterr().err


def test_grooves_are_deterministic_and_sane():
    for style in STYLES:
        a = make_groove(np.random.default_rng(7), 6.0, style=style)
        b = make_groove(np.random.default_rng(7), 6.0, style=style)
        assert a == b and a.events and 60 <= a.tempo <= 200
        assert all(0 <= e.time < 6.0 and 0 < e.velocity <= 1 and e.cls in STEMS for e in a.events)
    fills = make_groove(np.random.default_rng(0), 8.0, style="fill")
    assert any(e.cls == "toms" for e in fills.events)


def test_default_split_is_by_kit():
    _, by_split = choose_kits("hydrogen", DEFAULT_KITS_DIR, None)
    assert by_split["test"] == sorted(["BJA_Pacific", "The Black Pearl 1.0"])
    assert by_split["valid"] == ["ColomboAcousticDrumkit"]
    assert not set(by_split["train"]) & (set(DEFAULT_SPLITS["test"]) | set(DEFAULT_SPLITS["valid"]))


def test_render_layout_null_and_classes(rendered):
    out, meta = rendered
    clips = meta["clips"]
    assert len(clips) == 4 and meta["summary"]["source"] == "hydrogen"
    kits_by_split = {s: {c["kit"] for c in clips if c["split"] == s} for s in ("train", "valid", "test")}
    assert all(kits_by_split.values())
    assert not (kits_by_split["train"] & kits_by_split["test"] or kits_by_split["train"] & kits_by_split["valid"]
                or kits_by_split["valid"] & kits_by_split["test"])
    assert len({c["kit"] for c in clips}) >= 2
    for clip in clips:
        mix, stems = read_clip(out, clip["dir"])
        assert mix.shape == (2, int(2.5 * 44100)) and stems.shape == (5, 2, mix.shape[1])
        assert np.abs(mix).max() > 1e-3 and null_db(mix, stems) <= -120
        assert sf.info(str(out / clip["dir"] / "kick.wav")).subtype == "FLOAT"
    totals = {s: sum(c["activity"][s] for c in clips) for s in STEMS}
    assert all(v > 0 for v in totals.values()), totals
    saved = json.loads((out / "metadata.json").read_text())
    assert saved["summary"]["splits"]["test"]["kits"] == ["The Black Pearl 1.0"]


def test_same_seed_is_bit_identical_and_cached(rendered, tmp_path):
    out, _ = rendered
    again = tmp_path / "again"
    render(again, progress=False, log=lambda *a: None, **SETTINGS)
    files = sorted(p.relative_to(out) for p in out.glob("*/*/*.wav"))
    assert len(files) == 4 * 6
    # Compare the samples' bit patterns: libsndfile stamps the WAV PEAK chunk with the write time,
    # so the file bytes differ even when every sample is identical.
    for f in files:
        a, b = (sf.read(d / f, dtype="float32")[0] for d in (out, again))
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), f
    stamp = (again / "metadata.json").stat().st_mtime_ns
    assert ensure_rendered(again, **SETTINGS) == again  # same settings: nothing re-rendered
    assert (again / "metadata.json").stat().st_mtime_ns == stamp


def test_rendered_source_and_datamodule(rendered):
    from drumdata.datamodule import DrumDataModule
    from drumdata.sources import load_source

    out, _ = rendered
    dd = load_source(out)
    assert set(dd) == {"train", "valid", "test"} and Path(dd["test"][0]["kick"]).is_file()
    dm = DrumDataModule(str(out), crop_seconds=2.0, batch_size=2, num_workers=0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["mixture"].shape == (2, 2, 88200) and batch["stems"].shape == (2, 5, 2, 88200)
    assert torch.allclose(batch["mixture"], batch["stems"].sum(1), atol=1e-6)


def test_synthetic_fallback(tmp_path):
    messages = []
    meta = render(tmp_path / "synth", hours=3 * 1.5 / 3600, seed=0, clip_seconds=1.5,
                  kits_dir=tmp_path / "no-kits", progress=False, log=messages.append)
    assert meta["summary"]["source"] == "synthetic"
    assert any("SYNTHETIC" in m and "apt-get install" in m for m in messages)
    assert {c["kind"] for c in meta["clips"]} == {"synthetic"}
    assert len({c["split"] for c in meta["clips"]}) == 3
    for clip in meta["clips"]:
        mix, stems = read_clip(tmp_path / "synth", clip["dir"])
        assert null_db(mix, stems) <= -120

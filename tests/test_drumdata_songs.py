"""drumdata.songs: the Hydrogen demo songs (hydrogen-data) as a groove source, on the real files."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import soundfile as sf

from drumdata import STEMS
from drumdata.grooves import make_groove
from drumdata.kits import INSTALL_HINT, ROLE_CLASS
from drumdata.mixer import mix, render_clip
from drumdata.render import ensure_rendered, render
from drumdata.songs import SONGS_DIR, TEMPO_JITTER, TICKS_PER_QUARTER, load_songs, parse_song, song_groove
from drumdata.synth import synth_kit
from separation.errors import UserError

SONG_FILES = sorted(SONGS_DIR.glob("*.h2song"))
SONGS_HINT = "the Hydrogen demo songs are missing: run scripts/setup.sh (apt-get install hydrogen-data)"
# one 4/4 bar at the slowest song (98 BPM) played 4 % slow: the longest column, hence the longest rest
MAX_BAR_SECONDS = 4 * 60 / (98 * (1 - TEMPO_JITTER))
TOLERANCE = 0.035  # s: > 4 sigma of the largest per-clip timing spread (8 ms), < a 32nd note at 200 BPM


def song_seconds(song) -> float:
    return sum(length for length, _ in song.columns) * 60.0 / song.bpm / TICKS_PER_QUARTER


def test_all_demo_songs_parse():
    assert len(SONG_FILES) == 7, SONGS_HINT
    songs = load_songs()
    assert [s.name for s in songs] == [p.stem for p in SONG_FILES]
    for song in songs:
        assert 60 <= song.bpm <= 200 and 0 <= song.swing <= 1 and song.columns
        for length, notes in song.columns:
            assert notes and all(0 <= n.tick < length and 0 < n.velocity <= 1 for n in notes)
    # percussion outside the 5 classes is dropped: the TR808 demo also plays shaker, conga, clave, cowbell
    tr808 = next(s for s in songs if s.name == "TR808kit-demo")
    root = ET.parse(SONGS_DIR / "TR808kit-demo.h2song").getroot()
    in_sequence = sum(len(root.find(f"patternList/pattern[name='{g.findtext('patternID')}']").findall("noteList/note"))
                      for g in root.findall("patternSequence/group"))
    assert 0 < sum(len(notes) for _, notes in tr808.columns) < in_sequence


def test_missing_songs_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="hydrogen-data") as err:
        load_songs(tmp_path / "demo_songs")
    assert INSTALL_HINT in str(err.value)


def test_song_events_use_the_five_classes():
    classes = set()
    for i, song in enumerate(load_songs()):
        groove = song_groove(np.random.default_rng(i), 20.0, songs=(song,))
        assert groove.style == f"song:{song.name}" and groove.events
        assert abs(groove.tempo / song.bpm - 1) <= TEMPO_JITTER + 1e-3
        for e in groove.events:
            assert e.cls in STEMS and ROLE_CLASS[e.instrument] == e.cls and 0.05 <= e.velocity <= 1
        classes |= {e.cls for e in groove.events}
    assert classes == set(STEMS)


def test_demo1_first_pattern_plays_at_the_song_tempo():
    root = ET.parse(SONGS_DIR / "GM_kit_demo1.h2song").getroot()
    bpm = float(root.findtext("bpm"))
    ids = {i.findtext("name"): i.findtext("id") for i in root.findall("instrumentList/instrument")}
    first = root.find("patternList/pattern")
    size = int(first.findtext("size"))

    def ticks(*names: str) -> list[int]:
        wanted = {ids[n] for n in names}
        return sorted(int(n.findtext("position")) for n in first.findall("noteList/note")
                      if n.findtext("instrument") in wanted)

    expected = {"kick": ticks("Kick"), "snare": ticks("Snare", "Stick", "Snare Rimshot"),
                "hh": ticks("Hat Closed", "Hat Open", "Hat Pedal", "Hat Semi-Open")}
    # the pattern is a 4/4 groove: kick on beat 1, snare (cross-stick) on beat 2, hats throughout
    assert size == 192 and expected["kick"][0] == 0 and 48 in expected["snare"] and len(expected["hh"]) >= 8
    assert root.findtext("patternSequence/group/patternID") == first.findtext("name")  # the song opens with it
    demo1 = parse_song(SONGS_DIR / "GM_kit_demo1.h2song")
    assert demo1.bpm == bpm and demo1.columns[0][0] == size
    for cls, cls_ticks in expected.items():
        assert sorted(n.tick for n in demo1.columns[0][1] if ROLE_CLASS[n.role] == cls) == cls_ticks
    one_bar = demo1._replace(columns=demo1.columns[:1])  # the first column only, looped
    seconds = 3.0
    for seed in range(4):
        groove = song_groove(np.random.default_rng(seed), seconds, songs=(one_bar,))
        assert abs(groove.tempo / bpm - 1) <= TEMPO_JITTER + 1e-3
        tick_s = 60.0 / groove.tempo / TICKS_PER_QUARTER
        for cls, cls_ticks in expected.items():
            want = np.array([(bar * size + t) * tick_s for bar in range(3) for t in cls_ticks])
            want = want[want < seconds + TOLERANCE]
            got = np.array([e.time for e in groove.events if e.cls == cls])
            # every event sits on one of the pattern's notes, and every note well inside the clip is played
            assert np.abs(got[:, None] - want[None, :]).min(1).max() < TOLERANCE, (seed, cls)
            inside = want[want < seconds - TOLERANCE]
            assert np.abs(inside[:, None] - got[None, :]).min(1).max() < TOLERANCE, (seed, cls)
        assert {e.cls for e in groove.events} == {"kick", "snare", "hh"}


def test_song_groove_is_deterministic_and_covers_the_clip():
    styles = set()
    for seed in range(8):
        a = song_groove(np.random.default_rng(seed), 8.0)
        assert a == song_groove(np.random.default_rng(seed), 8.0)
        times = [e.time for e in a.events]
        assert a.seconds == 8.0 and times == sorted(times) and times[0] >= 0 and times[-1] < 8.0
        assert np.diff([0.0, *times, 8.0]).max() < MAX_BAR_SECONDS  # no hole longer than one column
        styles.add(a.style)
    assert len(styles) > 1 and a != song_groove(np.random.default_rng(99), 8.0)
    # a song shorter than the clip loops from its end back to its start: two and a half passes of
    # GM_kit_demo1 (whose last column holds a single note) play every note at least twice
    demo1 = next(s for s in load_songs() if s.name == "GM_kit_demo1")
    seconds = 2.5 * song_seconds(demo1) * (1 + TEMPO_JITTER)
    for seed in range(3):
        groove = song_groove(np.random.default_rng(seed), seconds, songs=(demo1,))
        times = [e.time for e in groove.events]
        assert np.diff([0.0, *times, seconds]).max() < MAX_BAR_SECONDS
        assert len(times) >= 2 * sum(len(notes) for _, notes in demo1.columns)


def test_render_clip_groove_sources():
    kit, rng = synth_kit("synthetic-A"), np.random.default_rng
    for seed in range(3):  # "procedural" draws exactly what it drew before the song source existed
        stems, groove = render_clip(kit, 1.0, rng(seed), "procedural")
        assert groove == make_groove(rng(seed), 1.0)
        assert np.array_equal(stems, render_clip(kit, 1.0, rng(seed))[0])
    assert render_clip(kit, 1.0, rng(0), "songs")[1].style.startswith("song:")
    mixed = {render_clip(kit, 1.0, rng(s), "mixed")[1].style.startswith("song:") for s in range(12)}
    assert mixed == {True, False}
    with pytest.raises(ValueError):
        render_clip(kit, 1.0, rng(0), "midi")


def test_render_with_song_grooves(tmp_path):
    out = tmp_path / "songs"
    settings = dict(hours=0.003, seed=3, clip_seconds=2.0, kits=["GMRockKit"], grooves="songs")
    meta = render(out, progress=False, log=lambda *a: None, **settings)
    saved = json.loads((out / "metadata.json").read_text())
    assert saved["settings"]["grooves"] == "songs" and len(saved["clips"]) == 6
    for clip in saved["clips"]:
        assert clip["style"].startswith("song:") and clip["events"] > 0
        mixture = sf.read(out / clip["dir"] / "mixture.wav", dtype="float32")[0].T
        stems = np.stack([sf.read(out / clip["dir"] / f"{s}.wav", dtype="float32")[0].T for s in STEMS])
        assert np.abs(mixture).max() > 0 and np.array_equal(mixture, mix(stems))
    assert meta["settings"] == saved["settings"]
    with pytest.raises(UserError, match="groove source"):
        render(out, progress=False, log=lambda *a: None, **{**settings, "grooves": "midi"})
    # the same settings are a cache hit; another groove source is not
    stamp = (out / "metadata.json").stat().st_mtime_ns
    assert ensure_rendered(out, progress=False, log=lambda *a: None, **settings) == out
    assert (out / "metadata.json").stat().st_mtime_ns == stamp
    procedural = {**settings, "grooves": "procedural"}
    ensure_rendered(out, progress=False, log=lambda *a: None, **procedural)
    saved = json.loads((out / "metadata.json").read_text())
    assert saved["settings"]["grooves"] == "procedural"
    assert not any(c["style"].startswith("song:") for c in saved["clips"])
    # a render from before the song source (no "grooves" recorded) still counts as procedural
    del saved["settings"]["grooves"]
    (out / "metadata.json").write_text(json.dumps(saved))
    stamp = (out / "metadata.json").stat().st_mtime_ns
    ensure_rendered(out, progress=False, log=lambda *a: None, **procedural)
    assert (out / "metadata.json").stat().st_mtime_ns == stamp


def test_packed_songs_serve_a_machine_without_hydrogen_data(tmp_path, monkeypatch):
    """pack_songs copies the demo songs; DRUMSEP_SONGS_DIR points load_songs at the copy (the GPU
    image has no hydrogen-data), and a folder without songs fails in one sentence that names it."""
    from drumdata.pack_kits import pack_songs
    from drumdata.songs import SONGS_ENV

    copied = pack_songs(tmp_path / "demo_songs")
    assert copied == len(SONG_FILES) > 0
    monkeypatch.setenv(SONGS_ENV, str(tmp_path / "demo_songs"))
    assert [s.name for s in load_songs()] == [s.name for s in load_songs(SONGS_DIR)]
    monkeypatch.setenv(SONGS_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match=SONGS_ENV):
        load_songs()

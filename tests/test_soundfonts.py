"""SoundFont 2 drum presets become Hydrogen kits that load_kit reads unchanged."""
import struct
from pathlib import Path

import numpy as np
import pytest

from drumdata.kits import load_kit
from drumdata.soundfonts import (GM_KEYS, HELD_OUT_SOUNDFONTS, SoundFont, convert, key_layers,
                                 write_kit)
from separation.errors import UserError

RATE = 22050


def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")


def _name(s: str) -> bytes:
    return s.encode().ljust(20, b"\0")


def write_sf2(path: Path, samples: list[np.ndarray], headers: list[tuple], inst_zones: list[list[tuple]],
              preset_zones: list[tuple]) -> None:
    """A minimal SF2: ``headers`` (name, root, link, kind) per sample; one instrument whose zones
    are lists of (op, amount) generators; one drum preset (bank 128, program 0) whose zones
    hold preset generators (the last one must name instrument 0)."""
    smpl, shdr, pos = b"", b"", 0
    for audio, (name, root, link, kind) in zip(samples, headers):
        data = (audio * 32767).astype("<i2").tobytes() + b"\0" * 92  # 46 zero samples after each
        shdr += struct.pack("<20sIIIIIBbHH", _name(name), pos, pos + audio.size, pos, pos + audio.size,
                            RATE, root, 0, link, kind)
        smpl += data
        pos += len(data) // 2
    shdr += struct.pack("<20sIIIIIBbHH", _name("EOS"), 0, 0, 0, 0, 0, 0, 0, 0, 0)

    def gen(op, amount):
        return struct.pack("<HBB", op, *amount) if isinstance(amount, tuple) else struct.pack("<Hh", op, amount)

    def bags_and_gens(zones):
        bags, gens, n = b"", b"", 0
        for zone in zones:
            bags += struct.pack("<HH", n, 0)
            for op, amount in zone:
                gens += gen(op, amount)
                n += 1
        return bags + struct.pack("<HH", n, 0), gens + struct.pack("<HH", 0, 0)

    ibag, igen = bags_and_gens(inst_zones)
    pbag, pgen = bags_and_gens(preset_zones)
    inst = struct.pack("<20sH", _name("Kit"), 0) + struct.pack("<20sH", _name("EOI"), len(inst_zones))
    phdr = (struct.pack("<20sHHHIII", _name("Standard"), 0, 128, 0, 0, 0, 0)
            + struct.pack("<20sHHHIII", _name("EOP"), 0, 0, len(preset_zones), 0, 0, 0))
    pdta = b"pdta" + b"".join(_chunk(c, d) for c, d in (
        (b"phdr", phdr), (b"pbag", pbag), (b"pmod", b"\0" * 10), (b"pgen", pgen), (b"inst", inst),
        (b"ibag", ibag), (b"imod", b"\0" * 10), (b"igen", igen), (b"shdr", shdr)))
    body = b"sfbk" + _chunk(b"LIST", b"INFO" + _chunk(b"ifil", struct.pack("<HH", 2, 1))) \
        + _chunk(b"LIST", b"sdta" + _chunk(b"smpl", smpl)) + _chunk(b"LIST", pdta)
    path.write_bytes(_chunk(b"RIFF", body))


def tone(freq: float, seconds: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * freq * t) * np.exp(-t * 10)).astype(np.float32)


@pytest.fixture
def font(tmp_path):
    """Kick on key 36 (two velocity layers, global zone sets the attenuation), a stereo crash on 49
    (left/right linked samples), one tom sample played on 45 and 50 with pitch tracking, and a
    preset zone that narrows everything to keys 36..50."""
    path = tmp_path / "tiny.sf2"
    samples = [tone(60), tone(60) * 2, tone(4000), tone(4100), tone(200)]
    headers = [("kick soft", 36, 0, 1), ("kick hard", 36, 0, 1), ("crash L", 49, 3, 4), ("crash R", 49, 2, 2),
               ("tom", 45, 0, 1)]
    inst_zones = [[(48, 60)],  # global: 6 dB attenuation for every zone
                  [(43, (36, 36)), (44, (0, 63)), (53, 0)],
                  [(43, (36, 36)), (44, (64, 127)), (53, 1)],
                  [(43, (49, 49)), (53, 2)], [(43, (49, 49)), (53, 3)],
                  [(43, (45, 45)), (53, 4)], [(43, (50, 50)), (53, 4)]]
    write_sf2(path, samples, headers, inst_zones, [[(43, (36, 50)), (41, 0)]])
    return SoundFont(path)


def test_zones_resolve_ranges_layers_stereo_and_pitch(font):
    assert font.drum_presets() == [("Standard", 0, 128)]
    kick = key_layers(font, 0, 36)
    assert [v for v, _ in kick] == [(0, 63), (64, 127)]
    soft, hard = (a for _, a in kick)
    assert np.isclose(np.abs(hard).max() / np.abs(soft).max(), 2.0, rtol=0.02)
    # 6 dB attenuation from the global zone and -3 dB per side for a centred mono sample.
    assert np.isclose(np.abs(soft[0]).max(), 0.5 * 10 ** (-60 / 200) * np.sqrt(0.5), rtol=0.05)
    (_, crash), = key_layers(font, 0, 49)
    assert np.abs(crash[0]).max() > 0.1 and np.abs(crash[1]).max() > 0.1  # linked L/R -> one stereo layer
    spectrum = np.abs(np.fft.rfft(crash, axis=-1))
    freqs = np.fft.rfftfreq(crash.shape[-1], 1 / 44100)
    assert freqs[spectrum[0].argmax()] == pytest.approx(4000, abs=20)
    assert freqs[spectrum[1].argmax()] == pytest.approx(4100, abs=20)
    # The tom sample (root 45) played five semitones up on key 50 is 2^(5/12) higher and shorter.
    (_, low), = key_layers(font, 0, 45)
    (_, high), = key_layers(font, 0, 50)
    assert low.shape[1] / high.shape[1] == pytest.approx(2 ** (5 / 12), rel=0.01)
    assert key_layers(font, 0, 51) == []  # outside every zone


def test_written_kit_loads_with_roles_and_velocity_layers(font, tmp_path):
    counts = write_kit(font, 0, "sf2-tiny", tmp_path / "kits")
    assert counts == {"kick": 2, "crash": 1, "tom_mid": 1, "tom_hi": 1}
    kit = load_kit("sf2-tiny", tmp_path / "kits")
    roles = {inst.role for inst in kit.instruments}
    assert roles == {"kick", "crash", "tom_mid", "tom_hi"} and not kit.unmapped
    kick = next(i for i in kit.instruments if i.role == "kick")
    assert [(round(l.vmin, 2), round(l.vmax, 2)) for l in kick.layers] == [(0.0, 0.5), (0.5, 1.0)]
    assert all(l.audio.shape[0] == 2 and l.audio.shape[1] > 1000 for i in kit.instruments for l in i.layers)
    with pytest.raises(FileExistsError):  # never overwritten half-way
        write_kit(font, 0, "sf2-tiny", tmp_path / "kits")


def test_bad_input_is_a_clear_error_and_leaves_nothing(tmp_path):
    bad = tmp_path / "not.sf2"
    bad.write_bytes(b"RIFF\0\0\0\0WAVEfmt ")
    with pytest.raises(UserError, match="not a SoundFont 2"):
        convert(tmp_path / "out", [bad])
    held_out = tmp_path / f"{HELD_OUT_SOUNDFONTS[0]}_kit.sf2"
    held_out.write_bytes(bad.read_bytes())
    with pytest.raises(UserError, match="no drum presets"):
        convert(tmp_path / "out", [held_out], log=lambda *_: None)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_debian_timgm6mb_converts_into_usable_kits(tmp_path):
    """The real TimGM6mb SoundFont (scripts/setup.sh installs it; 6 MB) gives its five acoustic kits."""
    path = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
    assert path.is_file(), "timgm6mb-soundfont is missing: run scripts/setup.sh"
    names = convert(tmp_path, [path], log=lambda *_: None)
    assert len(names) == 5
    kit = load_kit(names[0], tmp_path)
    assert kit.classes() == {"kick", "snare", "toms", "hh", "cymbals"}
    assert {GM_KEYS[k][0] for k in (36, 38, 42, 49, 51)} <= {i.name for i in kit.instruments}

"""drumdata.carry_kits: identical samples travel once, as links that unpack to the same bytes."""
import tarfile

import numpy as np
import pytest
import soundfile as sf

from drumdata.carry_kits import pack_for_carry
from separation.errors import UserError


def _kit(root, name, samples):
    d = root / name
    d.mkdir(parents=True)
    (d / "drumkit.xml").write_text(f"<drumkit_info><name>{name}</name></drumkit_info>")
    for fname, seed in samples.items():
        audio = np.random.default_rng(seed).uniform(-0.5, 0.5, (4410, 2))
        sf.write(d / fname, audio, 44100, format="FLAC", subtype="PCM_16")


def test_shared_samples_become_links_that_unpack_to_the_same_audio(tmp_path):
    src = tmp_path / "kits"
    _kit(src, "sf2-Font-Standard", {"kick.flac": 1, "snare.flac": 2})
    _kit(src, "sf2-Font-Jazz", {"kick.flac": 1, "snare.flac": 3})  # same kick, other snare
    _kit(src, "sf2-Font-Room", {"kick.flac": 4})
    out = tmp_path / "carry" / "kits.tar"
    stats = pack_for_carry(src, out, skip=("*-Room",))
    assert stats["kits"] == ["sf2-Font-Jazz", "sf2-Font-Standard"]
    assert stats["links"] == 1 and stats["files"] == 5  # 2 xml + 3 distinct samples
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert not any("Room" in n for n in names)
        tar.extractall(tmp_path / "there", filter="tar")
    there = tmp_path / "there" / ".gpukits"
    link = there / "sf2-Font-Standard" / "kick.flac"
    assert link.is_symlink()
    assert link.read_bytes() == (src / "sf2-Font-Standard" / "kick.flac").read_bytes()
    a, _ = sf.read(there / "sf2-Font-Standard" / "snare.flac")
    b, _ = sf.read(src / "sf2-Font-Standard" / "snare.flac")
    assert np.array_equal(a, b)


def test_bad_input_leaves_no_tar(tmp_path):
    out = tmp_path / "kits.tar"
    with pytest.raises(UserError, match="no kits folder"):
        pack_for_carry(tmp_path / "missing", out)
    _kit(tmp_path / "kits", "OnlyKit", {"a.flac": 1})
    with pytest.raises(UserError, match="nothing to pack"):
        pack_for_carry(tmp_path / "kits", out, skip=("Only*",))
    assert list(tmp_path.glob("*.tar*")) == []

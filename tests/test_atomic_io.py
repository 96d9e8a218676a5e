"""Files and folders appear whole or not at all."""
import pytest

from separation.atomic_io import atomic_dir, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a" / "report.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two" and [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_atomic_dir_appears_only_when_the_block_succeeds(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "kit") as tmp:
            (tmp / "half.flac").write_bytes(b"x")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(tmp_path / "kit") as tmp:
        (tmp / "drumkit.xml").write_text("<drumkit_info/>")
    assert [p.name for p in (tmp_path / "kit").iterdir()] == ["drumkit.xml"]
    assert [p.name for p in tmp_path.iterdir()] == ["kit"]
    with pytest.raises(FileExistsError):
        with atomic_dir(tmp_path / "kit"):
            pass

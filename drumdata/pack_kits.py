"""Pack Hydrogen kits into a compact copy (CLI: ``python -m drumdata.pack_kits --out DIR``).

Why: a remote training machine (a lent GPU with no package registry) cannot ``apt-get install
hydrogen-drumkits``, and the kits are ~230 MB of 24-bit WAV/AIFF at mixed rates. The packed
copy holds each referenced sample exactly as :func:`drumdata.kits.load_kit` would see it
(44.1 kHz stereo, cut to ``MAX_SAMPLE_SECONDS``), stored as 16-bit FLAC under its original file
name (libsndfile detects the format from the content), beside an unchanged ``drumkit.xml``.
``load_kit(name, DIR)`` then gives the same instruments. Test kits are left out by default,
so a packed copy can never leak them into training.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from separation.audio import read_audio
from separation.errors import AudioError, UserError, exit_on_user_error

from .songs import SONGS_DIR, SONGS_ENV
from .kits import DEFAULT_KITS_DIR, default_split, list_kits, parse_drumkit_xml, write_kit_sample


def pack_kit(name: str, kits_dir: Path, out_dir: Path) -> int:
    """Pack one kit into ``out_dir/name``; returns the bytes written."""
    src, dst = kits_dir / name, out_dir / name
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "drumkit.xml", dst / "drumkit.xml")
    _, _, instruments = parse_drumkit_xml(src / "drumkit.xml")
    written = (dst / "drumkit.xml").stat().st_size
    for fname in sorted({layer[3] for inst in instruments for layer in inst["layers"]}):
        try:
            audio, _ = read_audio(src / fname)
        except AudioError:
            continue  # load_kit skips it too
        written += write_kit_sample(dst / fname, audio)
    return written


def pack_kits(out_dir: str | Path, kits_dir: str | Path = DEFAULT_KITS_DIR,
              include_test: bool = False, log=print) -> dict[str, int]:
    """Pack every kit (test kits only with ``include_test``); returns bytes per kit."""
    out_dir, kits_dir = Path(out_dir), Path(kits_dir)
    if out_dir.resolve() == kits_dir.resolve():
        raise UserError("--out must differ from the kit directory.")
    sizes = {}
    for name in list_kits(kits_dir):
        if default_split(name) == "test" and not include_test:
            continue
        sizes[name] = pack_kit(name, kits_dir, out_dir)
        log(f"{name}: {sizes[name] / 2**20:.1f} MB")
    songs = pack_songs(out_dir / "demo_songs")
    log(f"{songs} Hydrogen demo songs in {out_dir / 'demo_songs'} (use with {SONGS_ENV}={out_dir / 'demo_songs'})")
    log(f"total {sum(sizes.values()) / 2**20:.1f} MB in {out_dir}")
    return sizes


def pack_songs(out_dir: Path, songs_dir: Path | None = None) -> int:
    """Copy the demo songs (``--grooves songs|mixed`` needs them) for machines without
    hydrogen-data; returns how many. None there is no error: procedural grooves need none."""
    src = Path(songs_dir) if songs_dir is not None else SONGS_DIR
    files = sorted(src.glob("*.h2song"))
    if files:
        out_dir.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, out_dir / f.name)
    return len(files)


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the packed kits")
    parser.add_argument("--kits-dir", default=str(DEFAULT_KITS_DIR))
    parser.add_argument("--include-test", action="store_true", help="also pack the held-out test kits")
    args = parser.parse_args(argv)
    pack_kits(args.out, args.kits_dir, args.include_test)


if __name__ == "__main__":
    main()

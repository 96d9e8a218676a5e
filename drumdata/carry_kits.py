"""Pack a kits folder into one tar that fits a lent GPU's carry limit
(CLI: ``python -m drumdata.carry_kits --src .kits --out .gpucarry/kits.tar [--skip PATTERN ...]``).

Why: the device tool carries at most 64 MiB with the working tree, and it copies symbolic links
as the files they point to. The packed kits (``pack_kits`` + ``soundfonts``) are ~80 MiB, but the
presets of one SoundFont share most of their samples: in the tar every file whose bytes were
already stored becomes a relative symbolic link to the first copy, which ``tar -xf`` restores on
the other side. ``--skip`` leaves out whole kits by name (shell-style patterns). The members live
under ``--name`` (default ``.gpukits``), the folder ``scripts/gpu_teacher_session.sh`` reads via
``KITS``. The tar is written through a temporary sibling, so a failed run leaves no partial file.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import os
import tarfile
from pathlib import Path

from separation.atomic_io import atomic_file
from separation.errors import UserError, exit_on_user_error


def pack_for_carry(src: str | Path, out: str | Path, skip: tuple[str, ...] = (),
                   name: str = ".gpukits") -> dict:
    """Write ``out`` (a tar with every kit of ``src`` not matched by ``skip`` under ``name/``);
    returns what went in: kits, files, links and the bytes of real file data."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise UserError(f"no kits folder at {src}: make it with `python -m drumdata.pack_kits --out {src}`")
    kits = sorted(p.name for p in src.iterdir()
                  if p.is_dir() and not any(fnmatch.fnmatch(p.name, pat) for pat in skip))
    if not kits:
        raise UserError(f"every kit in {src} matched --skip {list(skip)}: nothing to pack")
    first_copy: dict[str, str] = {}  # sha256 -> member name of the stored file
    stats = {"kits": kits, "files": 0, "links": 0, "bytes": 0}
    with atomic_file(out) as tmp, tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:  # PAX: ~1 KiB more a file
        for kit in kits:
            for path in sorted(p for p in (src / kit).rglob("*") if p.is_file()):
                member = f"{name}/{path.relative_to(src).as_posix()}"
                data = path.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                if digest in first_copy:
                    info = tarfile.TarInfo(member)
                    info.type = tarfile.SYMTYPE
                    info.linkname = os.path.relpath(first_copy[digest], os.path.dirname(member))
                    tar.addfile(info)
                    stats["links"] += 1
                else:
                    tar.addfile(tar.gettarinfo(path, arcname=member), io.BytesIO(data))
                    first_copy[digest] = member
                    stats["files"] += 1
                    stats["bytes"] += len(data)
    return stats


@exit_on_user_error
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", default=".kits", help="packed kits (pack_kits / soundfonts output)")
    p.add_argument("--out", default=".gpucarry/kits.tar")
    p.add_argument("--skip", nargs="*", default=[], help="kit names or shell patterns to leave out")
    p.add_argument("--name", default=".gpukits", help="folder the tar unpacks to")
    a = p.parse_args(argv)
    stats = pack_for_carry(a.src, a.out, tuple(a.skip), a.name)
    size = Path(a.out).stat().st_size
    print(f"{a.out}: {len(stats['kits'])} kits, {stats['files']} files + {stats['links']} links to "
          f"identical ones, {size / 2**20:.1f} MiB (unpack with `tar -xf {a.out}` into {a.name}/)")


if __name__ == "__main__":
    main()

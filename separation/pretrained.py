"""Named pretrained models and how their files are found: user path, cache, then the Hub.

Nothing is downloaded behind the user's back in a way that can hang or half-fail: the
download goes through ``huggingface_hub`` into the cache, is verified by SHA-256, and when
there is no network the error says in one sentence where to put the file.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .atomic_io import atomic_file
from .errors import CheckpointError

PACKAGE_DIR = Path(__file__).resolve().parent
MODELS_DIR = PACKAGE_DIR / "models"


@dataclass(frozen=True)
class PretrainedEntry:
    name: str
    filename: str
    config: Path  # MSST YAML shipped with the package
    sha256: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    bundled: Path | None = None  # file shipped inside the repository
    description: str = ""


def _bundled(name: str, stem: str, description: str) -> PretrainedEntry:
    """A model shipped in :data:`MODELS_DIR` as ``<stem>.ckpt`` with its ``<stem>.yaml``."""
    return PretrainedEntry(name=name, filename=f"{stem}.ckpt", config=MODELS_DIR / f"{stem}.yaml",
                           bundled=MODELS_DIR / f"{stem}.ckpt", description=description)


REGISTRY: dict[str, PretrainedEntry] = {
    "drumsep-5stem-jarredou": PretrainedEntry(
        name="drumsep-5stem-jarredou",
        filename="drumsep_5stems_mdx23c_jarredou.ckpt",
        config=MODELS_DIR / "drumsep_5stems.yaml",
        sha256="1f8e636fb674b88a52c8399fde9a4ebe2b72b065ca07eed4e03ab1c9f0bfb2e0",
        repo_id="xavriley/source_separation_mirror",
        revision="da6dc5af5458a296e04cbf52b97babced90eb908",
        description="jarredou's 5-stem DrumSep MDX23C (109 M params, 417 MiB)",
    ),
    **{name: _bundled(name, stem, description) for name, stem, description in [
        ("drumsep-demo-teacher", "demo_teacher",
         "the project's own c=32 teacher trained on rendered Hydrogen kits (bundled)"),
        ("drumsep-demo-student", "demo_student",
         "a c=16 student (1.9 M params) of the demo teacher: pruned, supervised and label-free distilled on CPU, "
         "then distilled on a lent GPU (bundled)"),
        ("drumsep-demo-student-b1", "demo_student_b1",
         "the demo student cut to 1 block per scale (1.1 M params) and distilled 245 CPU minutes from the demo "
         "teacher (bundled)"),
        ("drumsep-demo-student-b1-half", "demo_student_b1_half",
         "student b1 with half the teacher's STFT (n_fft 1024, 512 bins, same hop; 1.0 M params), distilled 70 CPU "
         "minutes from the demo teacher: the fastest bundled model (bundled)"),
    ]},
}


def cache_dir() -> Path:
    root = os.environ.get("DRUMSEP_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "drumsep-lab"
    return Path(root) / "checkpoints"


def sha256_of(path: Path, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, entry: PretrainedEntry) -> Path:
    if entry.sha256 and sha256_of(path) != entry.sha256:
        raise CheckpointError(
            f"{path} has the wrong SHA-256 for {entry.name} (expected {entry.sha256}); "
            "the file is corrupt or a different model, so delete it and fetch it again.")
    return path


def resolve(name: str, local_path: str | os.PathLike | None = None, allow_download: bool = True) -> tuple[Path, Path]:
    """Return ``(checkpoint, config)`` for a registry name.

    Order: ``local_path`` given by the user; the bundled file; the drumsep-lab cache;
    the Hugging Face cache and then a ``huggingface_hub`` download (copied into our cache).
    """
    if name not in REGISTRY:
        raise CheckpointError(f"unknown pretrained model {name!r}; known: {', '.join(REGISTRY)}.")
    entry = REGISTRY[name]
    if local_path is not None:
        path = Path(local_path)
        if not path.is_file():
            raise CheckpointError(f"{path} does not exist; give the path of {entry.filename}.")
        return verify(path, entry), entry.config
    if entry.bundled is not None:
        if entry.bundled.is_file():
            return entry.bundled, entry.config
        raise CheckpointError(f"bundled file {entry.bundled} is missing; restore it with git checkout.")
    cached = cache_dir() / entry.filename
    if cached.is_file():
        return verify(cached, entry), entry.config
    if entry.repo_id and allow_download:
        return verify(_download(entry, cached), entry), entry.config
    raise CheckpointError(_where_to_put(entry, cached))


def _where_to_put(entry: PretrainedEntry, cached: Path) -> str:
    return (f"{entry.filename} is not available offline: download it from the Hugging Face repository "
            f"{entry.repo_id} (revision {entry.revision}) and put it at {cached}, or pass its path with --model.")


def _download(entry: PretrainedEntry, cached: Path) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise CheckpointError(_where_to_put(entry, cached)) from None
    try:
        path = Path(hf_hub_download(entry.repo_id, entry.filename, revision=entry.revision))
    except Exception:  # offline, DNS failure, 404, gated repo: all end in the same instruction
        raise CheckpointError(_where_to_put(entry, cached)) from None
    with atomic_file(cached) as tmp:
        shutil.copyfile(path, tmp)
    return cached

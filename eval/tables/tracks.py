"""The tracks a table is made on: ``<folder>/<track>/mixture.wav`` (+ ``<stem>.wav`` when the
dataset has ground truth), from a rendered dataset's split or any folder of track folders."""
from __future__ import annotations

from pathlib import Path

from separation.errors import UserError


def find_tracks(dataset: dict) -> tuple[list[tuple[str, Path]], Path]:
    """``[(track, folder)]`` and the folder holding them, from ``{root, split}`` or ``{folder}``."""
    if dataset.get("folder"):
        base = Path(dataset["folder"])
    elif dataset.get("root"):
        base = Path(dataset["root"]) / dataset.get("split", "test")
    else:
        raise UserError("the config's dataset needs 'root' (a rendered dataset) or 'folder' (a folder of tracks).")
    if not base.is_dir():
        raise UserError(f"dataset folder {base} does not exist; render the dataset or fix dataset.root/folder.")
    tracks = sorted((d.name, d) for d in base.iterdir() if (d / "mixture.wav").is_file())
    if not tracks:
        raise UserError(f"{base} holds no <track>/mixture.wav; point dataset at a folder of track folders.")
    if dataset.get("max_tracks"):
        tracks = tracks[: int(dataset["max_tracks"])]
    return tracks, base


def has_ground_truth(tracks, stems) -> bool:
    return all(any((d / f"{s}.wav").is_file() for s in stems) for _, d in tracks)

"""Data sources -> ``datasets.Dataset`` / ``DatasetDict`` of file PATHS.

Every loader returns rows with at least ``track`` (str), ``mixture`` (path) and one path column
per stem in :data:`drumdata.STEMS` (``None`` when a source has no stems: mixture-only data for
label-free distillation). Paths always point at files the crop reader can use directly:
44.1 kHz, mono or stereo. Files that need work (resampling, summing several files of one class,
building a missing mixture, decoding an HF audio column) are written once, as float32 WAV, to a
cache directory and reused while newer than their sources.

``load_source(spec)`` dispatches on ``spec``:
    Dataset / DatasetDict                        returned as is (columns checked)
    "rendered:DIR" or a drumdata.render output   load_rendered
    "stems:DIR" or a folder of track/kick.wav... load_stem_folder
    "mixtures:DIR" or a folder of audio files    load_mixture_folder
    "hf:NAME_OR_PATH" or "owner/name"            load_hf (datasets.load_dataset)
    {"type": "stems", "path": DIR, **kwargs}     any loader with keyword arguments
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from separation.audio import SAMPLE_RATE, read_audio, resample, to_stereo, write_audio
from separation.errors import AudioError, UserError

from . import STEMS

AUDIO_EXTS = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".aifc", ".mp3", ".opus", ".w64", ".caf"}
DEFAULT_STEM_NAMES: dict[str, list[str]] = {
    "mixture": ["mixture", "mix", "drums"],
    "kick": ["kick", "bd", "bass_drum", "kick_in", "kick_out"],
    "snare": ["snare", "sd", "snare_top", "snare_bottom"],
    "toms": ["toms", "tom", "hi_tom", "mid_tom", "low_tom", "floor_tom"],
    "hh": ["hh", "hihat", "hi_hat", "hat", "hats"],
    "cymbals": ["cymbals", "cymbal", "crash", "ride", "china", "splash"],
}
COLUMNS = ("track", "mixture", *STEMS)


def _norm(name: str) -> str:
    return re.sub(r"[\s\-.]+", "_", name.lower()).strip("_")


def _role(basename: str, names: dict[str, list[str]]) -> str | None:
    """Class of a file stem such as "Kick", "tom-2" or "crash_1" (numbered copies are summed)."""
    n = _norm(basename)
    bare = re.sub(r"_?\d+$", "", n)
    for role, aliases in names.items():
        if n in aliases or bare in aliases:
            return role
    return None


def _cache_root(root: Path, cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if os.access(root, os.W_OK):
        return root / ".drumdata_cache"
    return Path.home() / ".cache" / "drumdata" / re.sub(r"[^A-Za-z0-9]+", "_", str(root.resolve()))


def _direct_ok(path: Path) -> bool:
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"{path} is not a readable audio file ({err}).") from None
    return info.samplerate == SAMPLE_RATE and info.channels <= 2 and info.frames > 0


def _fresh(target: Path, sources: list[Path]) -> bool:
    return target.exists() and all(target.stat().st_mtime >= s.stat().st_mtime for s in sources)


def _materialize(files: list[Path], target: Path) -> str:
    """One path for a class: the file itself when usable as is, else a cached 44.1 kHz sum."""
    if len(files) == 1 and _direct_ok(files[0]):
        return str(files[0])
    if not _fresh(target, files):
        parts = [read_audio(f)[0] for f in files]  # resampled to 44.1 kHz stereo
        out = np.zeros((2, max(p.shape[1] for p in parts)), np.float32)
        for p in parts:  # shorter files are zero-padded at the end
            out[:, : p.shape[1]] += p
        write_audio(target, out)
    return str(target)


def _dataset(rows: list[dict]):
    import datasets

    features = datasets.Features({c: datasets.Value("string") for c in COLUMNS})
    return datasets.Dataset.from_dict({c: [r.get(c) for r in rows] for c in COLUMNS}, features=features)


def _audio_files(folder: Path, recursive: bool) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in AUDIO_EXTS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def load_stem_folder(root: str | os.PathLike, names: dict[str, list[str]] | None = None,
                     cache_dir: str | os.PathLike | None = None, missing: str = "error"):
    """Tracks as folders of stem files (MUSDB/StemGMD-like): ``root/<track>/kick.wav`` ...

    ``names`` maps each class (and "mixture") to file-name aliases, e.g. ``{"kick": ["kick", "bd"]}``;
    several files of one class (``tom1.wav``, ``tom2.wav``) are summed. The mixture is
    ``mixture.wav`` when present, else the sum of the stems. A track without a file for some class
    is a UserError naming the missing file, unless ``missing="silent"`` (column None = silence).
    Top-level folders named train/valid/validation/test become the splits of a DatasetDict.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"stem folder {root} does not exist.")
    names = {**DEFAULT_STEM_NAMES, **{k: [_norm(a) for a in v] for k, v in (names or {}).items()}}
    split_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name in ("train", "valid", "validation", "test")]
    if split_dirs:
        import datasets

        return datasets.DatasetDict({d.name: load_stem_folder(d, names, cache_dir and Path(cache_dir) / d.name,
                                                              missing) for d in split_dirs})
    cache = _cache_root(root, cache_dir)
    track_dirs = sorted({f.parent for f in _audio_files(root, recursive=True)})
    if not track_dirs:
        raise UserError(f"no audio files found under {root}.")
    rows = []
    for tdir in track_dirs:
        track = tdir.relative_to(root).as_posix() if tdir != root else root.name
        by_role: dict[str, list[Path]] = {}
        for f in _audio_files(tdir, recursive=False):
            role = _role(f.stem, names)
            if role is not None:
                by_role.setdefault(role, []).append(f)
        row = {"track": track}
        for stem in STEMS:
            if stem in by_role:
                row[stem] = _materialize(by_role[stem], cache / track / f"{stem}.wav")
            elif missing == "silent":
                row[stem] = None
            else:
                raise UserError(f"track {track} has no {stem} stem: expected {tdir / (stem + '.wav')} "
                                f"(or a file named {', '.join(names[stem])}).")
        stem_files = [f for s in STEMS for f in by_role.get(s, [])]
        if "mixture" in by_role:
            row["mixture"] = _materialize(by_role["mixture"], cache / track / "mixture.wav")
        elif stem_files:
            row["mixture"] = _materialize(stem_files, cache / track / "mixture.wav")
        else:
            raise UserError(f"track {track} ({tdir}) has neither a mixture nor any stem file.")
        rows.append(row)
    return _dataset(rows)


def load_mixture_folder(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None):
    """Plain drum mixtures (any audio files, any depth, no stems) for label-free distillation.
    ``track`` is the path relative to ``root`` without extension; stem columns are None."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"mixture folder {root} does not exist.")
    files = _audio_files(root, recursive=True)
    if not files:
        raise UserError(f"no audio files ({', '.join(sorted(AUDIO_EXTS))}) found under {root}.")
    cache = _cache_root(root, cache_dir)
    rows = []
    for f in files:
        track = f.relative_to(root).with_suffix("").as_posix()
        rows.append({"track": track, "mixture": _materialize([f], cache / f"{track}.wav")})
    return _dataset(rows)


def load_rendered(out_dir: str | os.PathLike):
    """A :mod:`drumdata.render` output: its DatasetDict with paths made absolute."""
    import datasets

    out_dir = Path(out_dir).resolve()
    if not (out_dir / "hf").is_dir():
        raise UserError(f"{out_dir} is not a drumdata render (no hf/ folder); run python -m drumdata.render.")
    dd = datasets.load_from_disk(str(out_dir / "hf"))

    out = {}
    for split, ds in dd.items():  # rows are a few short strings each: rebuilding in memory is cheap
        cols = ds.to_dict()
        for c in ("mixture", *STEMS):
            cols[c] = [str(out_dir / p) for p in cols[c]]
        out[split] = datasets.Dataset.from_dict(cols, features=ds.features)
    return datasets.DatasetDict(out)


def _decode_value(value, target: Path) -> str:
    """An HF audio cell ({path, bytes} with decode=False) -> usable 44.1 kHz file path."""
    data, path = value.get("bytes"), value.get("path")
    if data is None and path and Path(path).is_file() and _direct_ok(Path(path)):
        return str(path)
    if not target.exists():
        try:
            audio, sr = sf.read(io.BytesIO(data) if data is not None else path, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            raise AudioError(f"audio cell {path or target.name} cannot be decoded ({err}).") from None
        write_audio(target, resample(to_stereo(np.ascontiguousarray(audio.T)), sr))
    return str(target)


def load_hf(name: str, split: str | None = None, names: dict[str, list[str]] | None = None,
            cache_dir: str | os.PathLike | None = None, **load_kwargs):
    """Anything ``datasets.load_dataset`` opens. Audio columns are matched to classes by column
    name (``names`` aliases; "audio" counts as the mixture), decoded with soundfile and cached."""
    import datasets

    try:
        loaded = datasets.load_dataset(name, split=split, **load_kwargs)
    except Exception as err:  # hub, builder and file errors all mean "cannot open this source"
        while err.__cause__ is not None:  # the root cause says more ("install torchcodec", "not found")
            err = err.__cause__
        first = str(err).splitlines()[0] if str(err) else ""
        raise UserError(f"could not load dataset {name!r} with datasets.load_dataset "
                        f"({type(err).__name__}: {first}).") from None
    names = {**DEFAULT_STEM_NAMES, **(names or {})}
    names["mixture"] = [*names["mixture"], "audio"]
    cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "drumdata" / "hf" / _norm(name)

    def convert(ds, split_name: str):
        audio_cols = [c for c, f in ds.features.items() if isinstance(f, datasets.Audio)]
        # string columns named like a class hold file paths (e.g. a csv of mixture,kick,... paths)
        path_cols = [c for c, f in ds.features.items() if c != "track" and _role(c, names)
                     and isinstance(f, datasets.Value) and f.dtype in ("string", "large_string")]
        roles = {c: _role(c, names) for c in audio_cols + path_cols}
        if not any(roles.values()):
            raise UserError(f"dataset {name!r} has no audio or path column named like a mixture or a stem "
                            f"(columns: {', '.join(ds.column_names)}).")
        ds = ds.cast(datasets.Features({**ds.features, **{c: datasets.Audio(decode=False) for c in audio_cols}}))
        rows = []
        for i in range(len(ds)):
            cells = ds[i]
            track = str(cells.get("track") or cells.get("name") or cells.get("id") or f"{split_name}-{i:06d}")
            row: dict = {"track": track}
            for col, role in roles.items():
                target = cache / split_name / f"{i:06d}" / f"{role}.wav"
                if role is None or cells[col] is None:
                    continue
                if col in path_cols:
                    row[role] = _materialize([Path(cells[col])], target)
                else:
                    row[role] = _decode_value(cells[col], target)
            if "mixture" not in row:
                row["mixture"] = _materialize([Path(row[s]) for s in STEMS if row.get(s)],
                                              cache / split_name / f"{i:06d}" / "mixture.wav")
            rows.append(row)
        return _dataset(rows)

    if isinstance(loaded, datasets.DatasetDict):
        return datasets.DatasetDict({k: convert(v, k) for k, v in loaded.items()})
    return convert(loaded, split or "train")


def _check(ds):
    import datasets

    parts = ds.values() if isinstance(ds, datasets.DatasetDict) else [ds]
    for part in parts:
        lacking = [c for c in ("track", "mixture") if c not in part.column_names]
        if lacking:
            raise UserError(f"dataset lacks column(s) {', '.join(lacking)}; drumdata needs track and mixture paths.")
    return ds


def _looks_like_stem_folder(root: Path) -> bool:
    files = _audio_files(root, recursive=True)
    return any(_role(f.stem, DEFAULT_STEM_NAMES) not in (None, "mixture") for f in files)


def load_source(spec):
    """Open any supported source (see the module docstring) as Dataset / DatasetDict of paths."""
    import datasets

    if isinstance(spec, (datasets.Dataset, datasets.DatasetDict)):
        return _check(spec)
    if isinstance(spec, dict):
        kwargs = dict(spec)
        kind, path = kwargs.pop("type", None), kwargs.pop("path", None)
        loaders = {"rendered": load_rendered, "stems": load_stem_folder,
                   "mixtures": load_mixture_folder, "hf": load_hf}
        if kind not in loaders or path is None:
            raise UserError(f"source dict needs type ({', '.join(loaders)}) and path; got {spec!r}.")
        return _check(loaders[kind](path, **kwargs))
    text = str(spec)
    prefix, _, rest = text.partition(":")
    if prefix in ("rendered", "stems", "mixtures", "hf") and rest:
        return load_source({"type": prefix, "path": rest})
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "hf").is_dir() and (path / "metadata.json").exists():
            return _check(load_rendered(path))
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return _check(datasets.load_from_disk(str(path)))
        if _audio_files(path, recursive=True):
            return _check(load_stem_folder(path) if _looks_like_stem_folder(path) else load_mixture_folder(path))
        return _check(load_hf(str(path)))  # e.g. a folder of csv/parquet/json files
    if path.is_file() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        if not path.exists():
            raise UserError(f"data source {text} does not exist.")
        return _check(load_hf(str(path)))
    return _check(load_hf(text))  # "owner/name" on the Hugging Face hub

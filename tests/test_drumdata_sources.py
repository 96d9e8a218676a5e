"""drumdata.sources loaders and drumdata.datamodule.DrumDataModule on small generated WAV files."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from drumdata import STEMS
from drumdata.datamodule import DrumDataModule
from drumdata.sources import load_hf, load_mixture_folder, load_source, load_stem_folder
from separation.errors import UserError

SR = 44100


def tone(seconds: float, freq: float, sr: int = SR, channels: int = 2, seed: int = 0) -> np.ndarray:
    """(frames, channels) float32: a decaying tone plus a little noise, non-silent everywhere."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    return (np.repeat(x[:, None], channels, 1) * (1 + 0.1 * np.arange(channels))).astype(np.float32)


def write(path: Path, audio: np.ndarray, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sr, subtype="FLOAT" if path.suffix == ".wav" else None)
    return path


@pytest.fixture
def stem_folder(tmp_path: Path) -> Path:
    """train/a: plain names; train/b: aliases, two tom files, hi-hat at 48 kHz, no mixture; valid/c."""
    root = tmp_path / "stems"
    for i, stem in enumerate(STEMS):
        write(root / "train" / "a" / f"{stem}.wav", tone(2.0, 100 + 50 * i, seed=i))
        write(root / "valid" / "c" / f"{stem}.wav", tone(2.5, 120 + 50 * i, seed=10 + i))
    write(root / "train" / "a" / "mixture.wav",
          sum(sf.read(root / "train" / "a" / f"{s}.wav", dtype="float32")[0] for s in STEMS))
    b = root / "train" / "b"
    write(b / "BD.wav", tone(2.0, 60))
    write(b / "snare.wav", tone(2.0, 200, channels=1))  # mono is fine
    write(b / "tom1.wav", tone(2.0, 150))
    write(b / "tom2.wav", tone(1.5, 90))
    write(b / "hihat.wav", tone(2.0, 5000, sr=48000), sr=48000)
    write(b / "crash.wav", tone(2.0, 3000))
    return root


def test_stem_folder_loader(stem_folder, tmp_path):
    dd = load_stem_folder(stem_folder, cache_dir=tmp_path / "cache")
    assert set(dd) == {"train", "valid"} and len(dd["train"]) == 2
    a, b = dd["train"][0], dd["train"][1]
    assert a["track"] == "a" and a["mixture"] == str(stem_folder / "train" / "a" / "mixture.wav")
    assert b["kick"].endswith("BD.wav")  # usable as is: referenced, not copied
    toms, _ = sf.read(b["toms"], dtype="float32")  # tom1 + tom2 summed into the cache
    t1 = sf.read(stem_folder / "train" / "b" / "tom1.wav", dtype="float32")[0]
    t2 = sf.read(stem_folder / "train" / "b" / "tom2.wav", dtype="float32")[0]
    assert np.allclose(toms[: len(t2)], t1[: len(t2)] + t2, atol=1e-6)
    info = sf.info(b["hh"])  # 48 kHz resampled to 44.1 kHz
    assert info.samplerate == SR and abs(info.frames - 2 * SR) <= 2
    mix = sf.read(b["mixture"], dtype="float32")[0]  # no mixture.wav: sum of the stems
    assert mix.shape == (2 * SR, 2) and np.abs(mix).max() > 0.3


def test_missing_stem_names_the_file(stem_folder):
    (stem_folder / "train" / "a" / "cymbals.wav").unlink()
    with pytest.raises(UserError, match=r"a/cymbals\.wav"):
        load_stem_folder(stem_folder / "train")
    ds = load_stem_folder(stem_folder / "train", missing="silent")
    assert ds[0]["cymbals"] is None


def test_custom_names(tmp_path):
    track = tmp_path / "songs" / "t1"
    for name in ("bassdrum", "sn", "toms", "hh", "overhead_cym"):
        write(track / f"{name}.wav", tone(1.0, 300))
    names = {"kick": ["bassdrum"], "snare": ["sn"], "cymbals": ["overhead_cym"]}
    ds = load_source({"type": "stems", "path": str(tmp_path / "songs"), "names": names})
    assert Path(ds[0]["kick"]).name == "bassdrum.wav" and Path(ds[0]["cymbals"]).name == "overhead_cym.wav"


def test_mixture_folder_and_dispatch(tmp_path):
    root = tmp_path / "mixes"
    write(root / "one.wav", tone(2.0, 220))
    write(root / "sub" / "two.flac", tone(2.0, 330, sr=22050, channels=1)[:, 0], sr=22050)
    ds = load_mixture_folder(root, cache_dir=tmp_path / "cache")
    assert ds["track"] == ["one", "sub/two"] and all(ds[0][s] is None for s in STEMS)
    assert sf.info(ds[1]["mixture"]).samplerate == SR
    auto = load_source(str(root))  # no stem-named files: detected as a mixture folder
    assert auto["track"] == ["one", "sub/two"]
    assert load_source(f"mixtures:{root}")["track"] == ["one", "sub/two"]
    with pytest.raises(UserError, match="does not exist"):
        load_source(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no audio files"):
        load_mixture_folder(tmp_path / "empty")


def _audio_cell(audio: np.ndarray, sr: int, name: str) -> dict:
    buf = io.BytesIO()
    sf.write(buf, audio, sr, format="WAV", subtype="FLOAT")
    return {"bytes": buf.getvalue(), "path": name}


def test_hf_dataset_with_audio_columns(tmp_path):
    """A parquet file with HF Audio columns (written with pyarrow: datasets needs torchcodec to
    encode audio, which this project does not install; our loader decodes with soundfile)."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    feats = datasets.Features({"track": datasets.Value("string"), "audio": datasets.Audio(),
                               "kick": datasets.Audio()})
    cell = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({
        "track": ["s1", "s2"],
        "audio": pa.array([_audio_cell(tone(1.0, 440, sr=16000), 16000, "a.wav"),
                           _audio_cell(tone(1.0, 550), SR, "b.wav")], type=cell),
        "kick": pa.array([_audio_cell(tone(1.0, 60), SR, "k1.wav"), None], type=cell),
    }).replace_schema_metadata({"huggingface": json.dumps({"info": {"features": feats.to_dict()}})})
    pq.write_table(table, tmp_path / "drums.parquet")
    ds = load_source({"type": "hf", "path": "parquet", "data_files": str(tmp_path / "drums.parquet"),
                      "split": "train", "cache_dir": str(tmp_path / "cache")})
    assert ds["track"] == ["s1", "s2"] and ds[1]["kick"] is None and ds[0]["snare"] is None
    assert all(sf.info(p).samplerate == SR for p in ds["mixture"])
    assert sf.info(ds[0]["mixture"]).frames == SR  # 16 kHz, 1 s -> 44100 frames
    kick = sf.read(ds[0]["kick"], dtype="float32")[0]
    assert np.array_equal(kick, tone(1.0, 60))
    with pytest.raises(UserError, match="could not load dataset"):
        load_hf(str(tmp_path / "nothing-here"))


def test_datamodule_batches_and_validation(stem_folder):
    dm = DrumDataModule(str(stem_folder), crop_seconds=1.0, batch_size=2, num_workers=0,
                        val_crops_per_track=2, steps_per_epoch=3)
    train = list(dm.train_dataloader())
    assert len(train) == 3
    for batch in train:
        assert batch["mixture"].shape == (2, 2, SR) and batch["stems"].shape == (2, 5, 2, SR)
        assert batch["mixture"].dtype == torch.float32
        assert torch.allclose(batch["mixture"], batch["stems"].sum(1), atol=1e-6)
    val1 = list(dm.val_dataloader())
    val2 = list(DrumDataModule(str(stem_folder), crop_seconds=1.0, batch_size=2, num_workers=0,
                               val_crops_per_track=2).val_dataloader())
    assert len(val1) == 1 and val1[0]["stems"].shape == (2, 5, 2, SR)
    assert torch.equal(val1[0]["mixture"], val2[0]["mixture"])  # same crops every time
    # the last crop of the 2.5 s valid track ends at its end: read it straight from the file
    kick = sf.read(stem_folder / "valid" / "c" / "kick.wav", dtype="float32")[0].T
    assert torch.equal(val1[0]["stems"][1, 0], torch.from_numpy(kick[:, -SR:]))


def test_datamodule_workers_and_mixture_only(tmp_path):
    root = tmp_path / "mixes"
    for i in range(3):
        write(root / f"m{i}.wav", tone(2.0, 200 + 100 * i, seed=i))
    dm = DrumDataModule(str(root), mixture_only=True, crop_seconds=0.5, batch_size=2, num_workers=1)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"mixture"} and batch["mixture"].shape == (2, 2, SR // 2)
    assert next(iter(dm.val_dataloader()))["mixture"].shape == (1, 2, SR // 2)  # 1 of 3 held out
    with pytest.raises(UserError, match="mixture_only"):
        DrumDataModule(str(root), crop_seconds=0.5, num_workers=0).setup()


def test_datamodule_rejects_short_and_empty(stem_folder):
    with pytest.raises(UserError, match="shorter than"):
        DrumDataModule(str(stem_folder), crop_seconds=5.0, num_workers=0).setup()
    import datasets

    empty = datasets.Dataset.from_dict({"track": [], "mixture": []})
    with pytest.raises(UserError, match="empty"):
        DrumDataModule(empty, mixture_only=True, num_workers=0).setup()

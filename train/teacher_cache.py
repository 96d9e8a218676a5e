"""Pre-computed teacher outputs, stored with Hugging Face ``datasets``.

When it pays off: the jarredou teacher costs ~25 s per 11.9-s chunk on a 2-core CPU, several
times a small student's training step, so computing it once for a fixed set of crops and
re-using it across epochs and across students saves most of the run. The price is fixed crops:
no fresh augmentation per epoch. With a cheap teacher (the c=32 demo teacher) or a GPU,
``on_the_fly`` keeps the full augmentation diversity and is the default.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from drumdata.datamodule import worker_context


def _cache_key(teacher, datamodule, num_crops: int, seed: int) -> str:
    h = hashlib.sha256()
    for k, v in teacher.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes()[:4096])
    h.update(repr((getattr(datamodule, "source", None), datamodule.crop, num_crops, seed)).encode())
    return h.hexdigest()[:16]


def build_teacher_cache(datamodule, teacher, cache_dir: Path, num_crops: int, seed: int, batch_size: int = 4) -> Path:
    """Run the teacher once on ``num_crops`` training crops; save mixture + teacher stems to disk."""
    from datasets import Array2D, Array3D, Dataset, Features

    path = Path(cache_dir) / _cache_key(teacher, datamodule, num_crops, seed)
    if (path / "dataset_info.json").is_file():
        return path
    datamodule.setup("fit")
    crop, stems = datamodule.crop, len(teacher.spec.stems)
    torch.manual_seed(seed)

    def crops():
        done = 0
        bar = tqdm(total=num_crops, desc="teacher cache", unit="crop")
        while done < num_crops:
            for batch in datamodule.train_dataloader():
                with torch.inference_mode():
                    out = teacher(batch["mixture"]).float().numpy()
                for mix, target in zip(batch["mixture"].numpy(), out):
                    yield {"mixture": mix, "teacher": target}
                    done += 1
                    bar.update(1)
                    if done >= num_crops:
                        bar.close()
                        return

    features = Features({"mixture": Array2D((2, crop), "float32"), "teacher": Array3D((stems, 2, crop), "float32")})
    dataset = Dataset.from_generator(crops, features=features, cache_dir=str(Path(cache_dir) / "hf"))
    tmp = path.with_suffix(".part")
    shutil.rmtree(tmp, ignore_errors=True)
    dataset.save_to_disk(str(tmp))
    tmp.rename(path)
    return path


class CachedTeacherDataModule(L.LightningDataModule):
    """Training batches from the teacher cache; validation from the original data module."""

    def __init__(self, cache_path: Path, original, batch_size: int, num_workers: int = 0):
        super().__init__()
        self.cache_path, self.original = cache_path, original
        self.batch_size, self.num_workers = batch_size, num_workers

    def setup(self, stage: str | None = None):
        from datasets import load_from_disk
        self.train_set = load_from_disk(str(self.cache_path)).with_format("torch")
        self.original.setup(stage)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          multiprocessing_context=worker_context(self.num_workers), drop_last=True)

    def val_dataloader(self):
        return self.original.val_dataloader()


def use_cached_teacher_outputs(datamodule, teacher, cache_dir: Path, num_crops: int, seed: int):
    path = build_teacher_cache(datamodule, teacher, cache_dir, num_crops, seed)
    return CachedTeacherDataModule(path, datamodule, datamodule.batch_size)

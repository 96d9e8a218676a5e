"""Lightning checkpoint writing that never destroys the previous good checkpoint.

Lightning's default writes through fsspec; if the disk fills up mid-write the target can be
left truncated. We serialise to memory first and then use the core's atomic write
(temporary sibling + fsync + rename), so ``last.ckpt`` is either the old file or the new one.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from separation.atomic_io import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        atomic_write_bytes(Path(path), buf.getvalue())

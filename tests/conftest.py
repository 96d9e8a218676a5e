import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
torch.set_num_threads(1)  # tiny models: threads only add sync overhead (and thrash on a busy machine)

SHARED_REFERENCE = ROOT.parent / "shared" / "reference"


def tiny_spec(**model):
    from separation.config import ModelSpec
    m = {"num_channels": 4, "growth": 4, "num_scales": 2, **model}
    return ModelSpec().replace(model=m, audio={"chunk_size": 512 * 7, "dim_t": 8})


@pytest.fixture
def tiny_model():
    from separation.model import TFC_TDF_net
    torch.manual_seed(0)
    return TFC_TDF_net(tiny_spec()).eval()


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_model):
    from separation.checkpoint import save_model
    ckpt, _ = save_model(tiny_model, tmp_path / "models" / "tiny.ckpt")
    return ckpt


@pytest.fixture
def rng():
    return np.random.default_rng(0)

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

# jarredou's published layout (copied from the workspace's shared/reference, so a clean clone has it).
REFERENCE = ROOT / "tests" / "reference"
HARDWARE_SKIP = "hardware:"  # the only skip reason allowed: e.g. "hardware: no CUDA device"


@pytest.fixture(scope="session", autouse=True)
def private_drumsep_cache(tmp_path_factory):
    """Hermetic caches: exports, compiled OpenVINO blobs and `auto` choices go to a folder of this
    test process (each pytest-xdist worker has its own basetemp, so two workers never share one;
    pytest prunes old ones), not the user's ~/.cache. CLIs started as subprocesses inherit it."""
    before = os.environ.get("DRUMSEP_CACHE")
    os.environ["DRUMSEP_CACHE"] = str(tmp_path_factory.mktemp("drumsep-cache"))
    yield
    if before is None:
        os.environ.pop("DRUMSEP_CACHE", None)
    else:
        os.environ["DRUMSEP_CACHE"] = before


def pytest_collection_modifyitems(session, config, items):
    """Run the Lightning training tests first. In one process, a Lightning fit that came after the
    inference-runtime tests (ONNX Runtime, OpenVINO incl. int8 IRs) crashed the interpreter with a
    segmentation fault. Two causes were found with core dumps (2026-11-26): DataLoader workers
    forked from a process whose runtime thread pools were running (fixed: workers start from a
    forkserver, drumdata.datamodule.worker_context), and a heap corruption that surfaces at
    varying places (os.read in wandb's git call, os.waitpid) only after the whole suite ran in one
    process; its source is not isolated. Users run these in separate processes (CLIs)."""
    items.sort(key=lambda item: 0 if item.nodeid.startswith("tests/test_train.py") else 1)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the skip count; any skip that is not for missing hardware fails the run: a test
    skipped for a missing package or file passes on a developer machine and hides a broken CI."""
    skipped = terminalreporter.stats.get("skipped", [])
    bad = [r for r in skipped if HARDWARE_SKIP not in str(r.longrepr)]
    terminalreporter.write_line(f"skipped tests: {len(skipped)} ({len(skipped) - len(bad)} for missing hardware)")
    for report in bad:
        terminalreporter.write_line(f"NOT ALLOWED skip: {report.nodeid}: {report.longrepr}")
    if bad:
        terminalreporter._session.exitstatus = 1


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


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test: two threads on two busy cores make tiny models ~10x slower
    through OpenMP contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Checkpoint loading: wrappers, prefixes, weights_only refusal, strict mismatch messages, registry."""
import os

import pytest
import torch

from conftest import tiny_spec
from separation.checkpoint import load_model, read_state_dict, save_model
from separation.errors import CheckpointError
from separation.model import TFC_TDF_net
from separation.pretrained import REGISTRY, resolve, sha256_of


def _same(a, b):
    return list(a.state_dict()) == list(b.state_dict()) and all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"state_dict": sd},
    lambda sd: {"state": sd},
    lambda sd: {"model_state_dict": sd},
    lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3, "global_step": 10},  # Lightning
    lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()},  # torch.compile
])
def test_every_checkpoint_wrapper_loads(tmp_path, tiny_model, wrap):
    path = tmp_path / "m.ckpt"
    torch.save(wrap(tiny_model.state_dict()), path)
    tiny_model.spec.to_yaml(tmp_path / "m.yaml")
    assert _same(load_model(path), tiny_model)


def test_pickled_code_is_refused(tmp_path, tiny_model):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": tiny_model.state_dict(), "extra": Evil()}, path)
    with pytest.raises(CheckpointError, match="unpickle"):
        read_state_dict(path)


def test_mismatch_names_keys_and_config_values(tmp_path, tiny_model):
    path, _ = save_model(tiny_model, tmp_path / "m.ckpt")
    wrong = tiny_spec(num_channels=6, growth=6)
    with pytest.raises(CheckpointError) as err:
        load_model(path, wrong)
    msg = str(err.value)
    assert "wrongly shaped" in msg and "first_conv.weight" in msg
    assert "model.num_channels (file 4, config 6)" in msg and "model.growth" in msg
    fewer_scales = tiny_spec(num_scales=1)
    with pytest.raises(CheckpointError, match="unexpected.*num_scales"):
        load_model(path, fewer_scales)


def test_save_is_atomic_and_round_trips_fp16(tmp_path, tiny_model, monkeypatch):
    path, yaml_path = save_model(tiny_model, tmp_path / "m.ckpt", half=True)
    assert yaml_path.read_text().startswith("audio:")
    reloaded = load_model(path)
    for a, b in zip(reloaded.state_dict().values(), tiny_model.state_dict().values()):
        torch.testing.assert_close(a, b.half().float())
    before = path.read_bytes()

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        save_model(TFC_TDF_net(tiny_model.spec), path)
    assert path.read_bytes() == before  # the previous checkpoint is intact
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_registry_entry_carries_mirror_facts():
    entry = REGISTRY["drumsep-5stem-jarredou"]
    assert entry.repo_id == "xavriley/source_separation_mirror"
    assert entry.revision == "da6dc5af5458a296e04cbf52b97babced90eb908"
    assert entry.filename == "drumsep_5stems_mdx23c_jarredou.ckpt"
    assert entry.sha256 == "1f8e636fb674b88a52c8399fde9a4ebe2b72b065ca07eed4e03ab1c9f0bfb2e0"


def test_resolution_order_and_offline_message(tmp_path, monkeypatch):
    monkeypatch.setenv("DRUMSEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as err:
        resolve("drumsep-5stem-jarredou")
    msg = str(err.value)
    assert "not available offline" in msg and str(tmp_path / "cache" / "checkpoints") in msg
    assert "\n" not in msg
    # A file in the cache with the wrong content is refused by its hash.
    cached = tmp_path / "cache" / "checkpoints" / "drumsep_5stems_mdx23c_jarredou.ckpt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not the model")
    with pytest.raises(CheckpointError, match="wrong SHA-256"):
        resolve("drumsep-5stem-jarredou")
    # A user-given local path wins over the cache and is verified too.
    local = tmp_path / "mine.ckpt"
    local.write_bytes(b"also not the model")
    with pytest.raises(CheckpointError, match="wrong SHA-256"):
        resolve("drumsep-5stem-jarredou", local_path=local)
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve("drumsep-5stem-jarredou", local_path=tmp_path / "missing.ckpt")


def test_sha256_verification_accepts_the_right_file(tmp_path, monkeypatch):
    from dataclasses import replace

    from separation import pretrained
    data = tmp_path / "x.ckpt"
    data.write_bytes(b"payload")
    entry = replace(REGISTRY["drumsep-5stem-jarredou"], sha256=sha256_of(data))
    monkeypatch.setitem(pretrained.REGISTRY, "drumsep-5stem-jarredou", entry)
    assert resolve("drumsep-5stem-jarredou", local_path=data)[0] == data

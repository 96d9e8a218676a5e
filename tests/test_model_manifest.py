"""The drumsep config must build a TFC_TDF_net whose state dict is exactly the jarredou checkpoint's."""
import json

import pytest
import torch

from conftest import REFERENCE
from separation.config import ModelSpec
from separation.model import TFC_TDF_net
from separation.pretrained import REGISTRY

def test_state_dict_matches_reference_manifest():
    spec = ModelSpec.from_yaml(REFERENCE / "config_drumsep_5stems.yaml")
    manifest = json.loads((REFERENCE / "drumsep_5stems_state_dict.json").read_text())
    with torch.device("meta"):  # 109 M parameters: shapes only, no memory
        model = TFC_TDF_net(spec)
    state = model.state_dict()
    assert list(state) == list(manifest["shapes"])  # keys and their order
    assert {k: list(v.shape) for k, v in state.items()} == manifest["shapes"]
    assert len(state) == manifest["num_tensors"]
    assert sum(v.numel() for v in state.values()) == manifest["num_parameters"]


def test_bundled_config_equals_reference_and_round_trips(tmp_path):
    reference = ModelSpec.from_yaml(REFERENCE / "config_drumsep_5stems.yaml")
    bundled = ModelSpec.from_yaml(REGISTRY["drumsep-5stem-jarredou"].config)
    assert bundled.to_dict() == reference.to_dict()
    reference.to_yaml(tmp_path / "again.yaml")
    assert ModelSpec.from_yaml(tmp_path / "again.yaml").to_dict() == reference.to_dict()


def test_unknown_msst_keys_survive_round_trip(tmp_path):
    data = ModelSpec().to_dict()
    data["training"]["lr"] = 1e-4
    data["augmentations"] = {"enable": True}
    spec = ModelSpec.from_dict(data)
    assert spec.to_dict()["training"]["lr"] == 1e-4 and spec.to_dict()["augmentations"] == {"enable": True}


def test_spectral_core_and_waveform_wrapper_agree(tiny_model):
    x = torch.randn(2, 2, tiny_model.spec.audio.chunk_size)
    spec = tiny_model.stft(x)
    core_out = tiny_model.core()(spec)
    assert core_out.shape == (2, 5, 4, spec.shape[-2], spec.shape[-1])
    wave = tiny_model(x)
    assert wave.shape == (2, 5, 2, x.shape[-1])
    torch.testing.assert_close(wave, tiny_model.stft.inverse(core_out)[..., : x.shape[-1]])


def test_invalid_config_is_a_clear_error():
    from separation.errors import UserError
    with pytest.raises(UserError, match="chunk_size"):
        ModelSpec().replace(audio={"chunk_size": 512 * 100})

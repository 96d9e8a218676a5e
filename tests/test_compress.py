"""compress/: pruning (both modes), torchao int8, ONNX export, eval loaders, on tiny models."""
import copy
import json

import numpy as np
import pytest
import torch
import yaml

from conftest import tiny_spec
from separation.checkpoint import load_model, save_model
from separation.errors import CheckpointError, UserError
from separation.model import TFC_TDF_net
from separation.runner import Runner

from compress.common import chunk_gflop, count_params, crops_from_audio, null_db
from compress.prune import PruneConfig, group_widths, prune_

CHUNK = tiny_spec().audio.chunk_size


@pytest.fixture(scope="module")
def parent():
    torch.manual_seed(0)
    return TFC_TDF_net(tiny_spec(num_channels=8, growth=8)).eval()


@pytest.fixture(scope="module")
def mix():
    rng = np.random.default_rng(0)
    env = np.exp(-(np.arange(CHUNK * 2) % 4000) / 600.0)
    return (0.2 * env * rng.standard_normal((2, CHUNK * 2))).astype(np.float32)


def separate(model, mix):
    return Runner(model, CHUNK, num_overlap=2, batch_size=2, device="cpu", progress=False).separate(mix)


def test_uniform_prune_is_a_plain_msst_model(parent, tmp_path):
    x = torch.randn(2, 2, CHUNK)
    pruned = prune_(copy.deepcopy(parent), PruneConfig("uniform", ratio=0.5, bottleneck_factor=8))
    m = pruned.spec.model
    assert (m.num_channels, m.growth, m.bottleneck_factor) == (4, 4, 8)
    with torch.no_grad():
        assert pruned(x).shape == parent(x).shape == (2, 5, 2, CHUNK)
    # widths halve everywhere: convs (params and FLOPs) drop to about a quarter
    assert count_params(pruned) < 0.45 * count_params(parent)
    assert chunk_gflop(pruned) < 0.4 * chunk_gflop(parent)
    ckpt, cfg = save_model(pruned, tmp_path / "uniform.ckpt")
    data = yaml.safe_load(cfg.read_text())
    assert "drumsep_lab" not in data and data["model"]["num_channels"] == 4  # plain MSST YAML
    reloaded = load_model(ckpt)
    assert type(reloaded) is TFC_TDF_net and reloaded.spec.model.growth == 4
    with torch.no_grad():
        assert null_db(reloaded(x), pruned(x)) == float("-inf")
    # the pruned weights do not fit the parent's widths: one clear CheckpointError
    with pytest.raises(CheckpointError, match="num_channels"):
        load_model(ckpt, parent.spec)


def test_free_prune_with_taylor_reloads_without_original(parent, mix, tmp_path):
    x = torch.from_numpy(crops_from_audio(mix, CHUNK, 2).numpy())
    config = PruneConfig("free", ratio=0.4, importance="taylor", tdf_ratio=0.5, iterative_steps=2)
    pruned = prune_(copy.deepcopy(parent), config, calibration=[x])
    assert pruned.spec.model.num_channels == 8  # the spec stays; widths live in layer_shapes
    widths = {pruned.get_submodule(f"encoder_blocks.{i}.tfc_tdf.blocks.0.tfc1.2").out_channels for i in range(2)}
    assert widths != {8, 16}
    # global pruning removes exactly 40 % of the prunable channels, spread by importance
    assert sum(group_widths(pruned)) == round(0.6 * sum(group_widths(parent)))
    assert count_params(pruned) < 0.8 * count_params(parent) and chunk_gflop(pruned) < 0.8 * chunk_gflop(parent)
    ckpt, cfg = save_model(pruned, tmp_path / "free.ckpt")
    assert yaml.safe_load(cfg.read_text())["drumsep_lab"]["layer_shapes"]
    reloaded = load_model(ckpt)
    with torch.no_grad():
        assert null_db(reloaded(x), pruned(x)) == float("-inf")
    with pytest.raises(CheckpointError):
        load_model(ckpt, parent.spec)


def test_prune_errors_before_any_work(parent, monkeypatch):
    import compress.prune.graph as prune

    def no_work(*a, **k):
        raise AssertionError("pruning started")

    monkeypatch.setattr(prune, "_prune_step", no_work)
    with pytest.raises(UserError, match="0 channels"):
        prune_(parent, PruneConfig("uniform", ratio=0.95))
    with pytest.raises(UserError, match="ratio"):
        PruneConfig("free", ratio=1.0)
    with pytest.raises(UserError, match="taylor needs calibration"):
        prune_(parent, PruneConfig("uniform", importance="taylor"))
    with pytest.raises(UserError, match="TFC_TDF_net"):
        prune_(torch.nn.Conv2d(2, 2, 1), PruneConfig())
    weird = copy.deepcopy(parent)
    weird.final_conv[1] = torch.nn.SiLU()
    with pytest.raises(UserError, match="SiLU"):
        prune_(weird, PruneConfig())
    assert count_params(parent) == count_params(TFC_TDF_net(parent.spec))  # untouched


def test_iterative_prune_finetunes_by_distillation(parent, mix):
    from compress.finetune import distill_finetuner

    batch = crops_from_audio(mix, CHUNK, 2)
    teacher = copy.deepcopy(parent)
    calls = []
    tune = distill_finetuner(teacher, [batch], steps=2, lr=1e-3)

    def finetune(model, step):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        model = tune(model, step)
        calls.append(any(not torch.equal(before[k], v) for k, v in model.state_dict().items()))
        return model

    config = PruneConfig("uniform", ratio=0.5, iterative_steps=2, finetune_steps=2)
    pruned = prune_(copy.deepcopy(parent), config, finetune=finetune)
    assert calls == [True, True] and pruned.spec.model.num_channels == 4


def test_prune_entry_point(tiny_checkpoint, tmp_path):
    from hydra import compose, initialize_config_dir

    from compress.prune.cli import prune_run
    from conftest import ROOT

    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("compress/prune", overrides=[
            "+config=[free,test_tiny]", f"teacher.checkpoint={tiny_checkpoint}", "prune.ratio=0.25",
            f"output_dir={tmp_path}/run"])
    report = prune_run(cfg)
    assert report["after"]["params"] < report["before"]["params"]
    assert report["flop_ratio"] < 1 and json.loads((tmp_path / "run" / "pruned.prune.json").read_text())
    assert load_model(report["checkpoint"]).spec.model.num_channels == 4


@pytest.mark.parametrize("flavour", ["weight_only", "dynamic", "static"])
def test_int8_through_runner(parent, mix, flavour, tmp_path):
    from compress.quantize import QuantConfig, load_quantized, quantize_model, save_quantized

    calibration = list(crops_from_audio(mix, CHUNK, 2).split(1))
    config = QuantConfig(flavour, compile=False)
    q = quantize_model(parent, config, calibration)
    reference = separate(parent, mix)
    out = separate(q, mix)
    assert out.shape == reference.shape and null_db(out, reference) < -20
    if flavour == "dynamic":  # the recipe reloads to the same int8 model
        recipe = save_quantized(parent, config, tmp_path / "m.int8.json", calibration)
        assert null_db(separate(load_quantized(recipe), mix), out) == float("-inf")


def test_int8_errors(parent, monkeypatch):
    import compress.quantize as quantize

    with pytest.raises(UserError, match="calibration"):
        quantize.quantize_model(parent, quantize.QuantConfig("static"))
    with pytest.raises(UserError, match="flavour"):
        quantize.QuantConfig("int4")
    monkeypatch.setattr(quantize, "int8_backend", lambda: (False, "the CPU is arm64"))
    with pytest.raises(UserError, match="fallback=True"):
        quantize.quantize_model(parent, quantize.QuantConfig("dynamic"))
    assert quantize.quantize_model(parent, quantize.QuantConfig("weight_only", fallback=True)) is not None


def test_onnx_parity_and_loaders(parent, mix, tmp_path):
    from compress.eval_hooks import load_int8, load_onnx, load_pruned
    from separation.onnx_backend import OnnxSeparator, export_onnx

    reference = separate(parent, mix)
    path = export_onnx(parent, tmp_path / "parent.onnx")
    assert path.with_suffix(".yaml").is_file()
    sep = OnnxSeparator(path, threads=1)
    assert null_db(separate(sep, mix), reference) <= -60
    # a free-pruned model exports too, and the eval.tables.pareto loaders build every kind
    pruned = prune_(copy.deepcopy(parent), PruneConfig("free", ratio=0.3))
    save_model(pruned, tmp_path / "free.ckpt")
    onnx_sep = load_onnx({"name": "o", "model": str(tmp_path / "free.ckpt"), "onnx": str(tmp_path / "free.onnx")})
    assert null_db(separate(onnx_sep, mix), separate(pruned, mix)) <= -60
    save_model(parent, tmp_path / "parent.ckpt")
    on_the_fly = load_pruned({"name": "p", "model": str(tmp_path / "parent.ckpt"), "prune": {"ratio": 0.5}})
    assert on_the_fly.spec.model.num_channels == 4
    assert load_int8({"name": "q", "model": str(tmp_path / "parent.ckpt"), "quant": {"flavour": "dynamic"}})
    with pytest.raises(UserError, match="does not exist"):
        OnnxSeparator(tmp_path / "missing.onnx")

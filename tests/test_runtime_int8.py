"""Static int8 through ONNX Runtime (quantize_static, QDQ) and OpenVINO (NNCF), run by the one Runner.

The fidelity checks run the bundled demo teacher (a trained net: a random tiny one amplifies
rounding through its InstanceNorms), calibrated on drums rendered here, on a short clip."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import tiny_spec
from separation.errors import UserError
from separation.runner import Runner

import compress.int8_calibration as cal
import compress.int8_inspect as inspect_int8
import compress.int8_quantize as quant
import compress.runtime_int8 as rq


def null_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    err = np.square(estimate.astype(np.float64) - reference).sum()
    return -np.inf if err == 0 else 10 * np.log10(err / np.square(reference.astype(np.float64)).sum())


def render(seconds: float, seed: int) -> np.ndarray:
    from drumdata.mixer import mix, render_clip
    from drumdata.synth import synth_kit

    clip = render_clip(synth_kit("synthetic-B"), seconds, np.random.default_rng(seed))
    assert clip is not None
    return mix(clip[0])


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    """A folder of <track>/mixture.wav, rendered here (data/ is not in the repository)."""
    root = tmp_path_factory.mktemp("calib")
    for k in range(3):
        (root / f"track{k}").mkdir()
        sf.write(root / f"track{k}" / "mixture.wav", render(2.0, k).T, 44100)
    return root


@pytest.fixture(scope="module")
def teacher():
    from separation import load_any

    return load_any("drumsep-demo-teacher").eval()


@pytest.fixture(scope="module")
def exported(teacher, calib_dir, tmp_path_factory):
    from separation.onnx_backend import export_onnx

    work = tmp_path_factory.mktemp("int8")
    fp32 = export_onnx(teacher, work / "fp32.onnx")
    mixtures = cal.calibration_mixtures(calib_dir, teacher.spec.audio.chunk_size, crops=2)
    return work, fp32, cal.calibration_spectra(teacher.spec, mixtures)


@pytest.fixture(scope="module")
def clip(teacher):
    from drumdata.mixer import mix, render_clip
    from drumdata.synth import synth_kit

    stems, _ = render_clip(synth_kit("synthetic-A"), 1.5, np.random.default_rng(0))
    return mix(stems)


@pytest.mark.parametrize("runtime", quant.RUNTIMES)
def test_int8_runs_through_the_runner_close_to_fp32(teacher, exported, clip, runtime):
    work, fp32, spectra = exported
    assert spectra[0].shape == (1, 4, teacher.spec.audio.dim_f, teacher.spec.audio.num_frames)
    if runtime == "onnx":
        path = quant.quantize_onnx_static(fp32, spectra, work / "int8_ort.onnx")
        assert (work / "int8_ort.yaml").is_file()
    else:
        path = quant.quantize_openvino(fp32, spectra, work / "int8_openvino.xml")
        assert path.with_suffix(".bin").is_file() and path.with_suffix(".yaml").is_file()
    assert not [p for p in os.listdir(work) if p.startswith(".")]  # no temporary left behind
    chunk = teacher.spec.audio.chunk_size
    reference = Runner(teacher, chunk, num_overlap=2, progress=False).separate(clip)
    separator = quant.load_int8_separator(path, threads=1)
    out = Runner(separator, chunk, num_overlap=2, batch_size=2, progress=False).separate(clip)
    assert out.shape == reference.shape == (5, 2, clip.shape[-1])
    null = null_db(out, reference)
    assert -100 < null < -20, null  # really quantized (not fp32), yet close to fp32
    assert separator.size_mb < 0.5 * fp32.stat().st_size / 2**20  # int8 weights on disk
    ops = inspect_int8.op_coverage(path, runtime, threads=1)
    if runtime == "onnx":  # ONNX Runtime fused the QDQ convolutions into int8 kernels
        assert ops["optimized_graph_ops"]["QLinearConv"] >= 50
    else:  # OpenVINO runs most convolutions with u8 activations
        int8_convs = sum(v for k, v in ops["execution_graph_layers"].items() if k.startswith("Convolution:u8"))
        assert int8_convs >= 50


def test_fp32_layers_and_calibration_rules(tmp_path, exported, calib_dir):
    work, fp32, _ = exported
    nodes = quant.compute_nodes(fp32)
    modules = [m for _, _, m in nodes]
    assert modules[0] == "first_conv" and modules[-1] == "final_conv.2"
    assert modules.count("encoder_blocks.0.tfc_tdf.blocks.0.tdf") == 2  # the TDF matmuls found their block
    keep = quant.keep_fp32_nodes(fp32)
    assert len(keep) == 1 + 5 + 2  # first conv, first block (shortcut, tfc1, 2 matmuls, tfc2), final convs
    with pytest.raises(UserError, match="no convolution"):
        quant.keep_fp32_nodes(fp32, ["decoder_blocks.9"])
    # calibration: test splits refused, empty folders named, dataset roots use train/
    (tmp_path / "test" / "t0").mkdir(parents=True)
    with pytest.raises(UserError, match="held-out"):
        cal.calibration_files(tmp_path / "test")
    with pytest.raises(UserError, match="no <track>/mixture.wav"):
        cal.calibration_files(tmp_path / "test" / "t0")
    (tmp_path / "root" / "train").mkdir(parents=True)
    os.symlink(calib_dir / "track0", tmp_path / "root" / "train" / "track0")
    assert [p.parent.name for p in cal.calibration_files(tmp_path / "root")] == ["track0"]


def test_failures_leave_nothing_half_written(exported, monkeypatch, tmp_path):
    work, fp32, spectra = exported
    with pytest.raises(UserError, match="does not fit"):
        quant.quantize_onnx_static(fp32, [np.zeros((1, 4, 10, 10), np.float32)], tmp_path / "bad.onnx")
    with pytest.raises(UserError, match="calibration spectra"):
        quant.quantize_openvino(fp32, [], tmp_path / "bad.xml")

    import onnxruntime.quantization as ortq
    import openvino as ov

    def half_then_fail(model_input, model_output, *args, **kwargs):
        open(model_output, "wb").write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(ortq, "quantize_static", half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        quant.quantize_onnx_static(fp32, spectra[:1], tmp_path / "m.onnx")

    def save_then_fail(model, path, compress_to_fp16=True):
        open(path, "w").write("<net/>")
        raise RuntimeError("disk full")

    (tmp_path / "m.xml").write_text("old model")  # a model already there stays whole
    monkeypatch.setattr(ov, "save_model", save_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        quant.quantize_openvino(fp32, spectra[:1], tmp_path / "m.xml")
    assert sorted(os.listdir(tmp_path)) == ["m.xml"] and (tmp_path / "m.xml").read_text() == "old model"


def test_cli_writes_json_rows(tmp_path, calib_dir):
    config = tmp_path / "tiny.yaml"
    tiny_spec(num_channels=8, growth=8).to_yaml(config)
    out = tmp_path / "q.json"
    report = rq.main(["--config", str(config), "--calibration", str(calib_dir), "--crops", "2", "--seconds", "0.5",
                      "--threads", "1", "--num-overlap", "2", "--keep-fp32", "none", "--out-json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    rows = report["rows"]
    assert [(r["runtime"], r["precision"]) for r in rows] == [
        ("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8")]
    assert rows[0]["speed_ratio_vs_torch_fp32"] == 1.0 and rows[0]["null_db_vs_torch_fp32"] is None
    for row in rows[1:]:
        assert row["seconds"] > 0 and row["speed_ratio_vs_torch_fp32"] > 0 and row["size_mb"] > 0
        assert row["null_db_vs_torch_fp32"] < (-60 if row["precision"] == "fp32" else 0)
        assert row["build"] == ("export" if row["precision"] == "fp32" else "quantization") and row["build_seconds"] > 0
        assert row["cpu"] == report["int8_support"]["cpu"]
    assert rows[2]["null_db_vs_runtime_fp32"] is not None and rows[2]["size_mb"] < rows[1]["size_mb"]
    assert report["calibration"]["crops"] == 2 and report["quantized"]["keep_fp32"] == []
    assert report["int8_support"]["onnxruntime"]["weight_type"] == "QInt8"
    (tmp_path / "test").mkdir()
    with pytest.raises(SystemExit):  # a test split is refused before any work
        rq.main(["--config", str(config), "--calibration", str(tmp_path / "test"), "--seconds", "0.5"])


def test_openvino_bf16_rows_beside_int8(tmp_path, calib_dir):
    """--bf16: OpenVINO's bf16 of the fp32 graph, and the int8 graph with its float layers in bf16, in the same run."""
    config = tmp_path / "tiny.yaml"
    tiny_spec(num_channels=8, growth=8).to_yaml(config)
    report = rq.main(["--config", str(config), "--calibration", str(calib_dir), "--crops", "2", "--seconds", "0.5",
                      "--threads", "1", "--num-overlap", "2", "--keep-fp32", "none", "--runtimes", "openvino", "--bf16"])
    rows = report["rows"]
    assert [(r["runtime"], r["precision"]) for r in rows] == [
        ("torch", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"), ("openvino", "int8+bf16")]
    bf16, int8, int8_bf16 = rows[2], rows[3], rows[4]
    assert bf16["build"] == "export" and int8_bf16["build"] == "quantization"
    from compress.int8_calibration import cpu_int8_support
    if "BF16" in cpu_int8_support()["openvino"]["optimization_capabilities"]:
        assert -60 < bf16["null_db_vs_runtime_fp32"] < -10   # bf16 rounding: measurably off, not broken
        assert "note" not in bf16
    else:  # an AVX2-only CPU: OpenVINO runs the bf16 hint in fp32, bit for bit, and the row says so
        assert bf16["null_db_vs_runtime_fp32"] is None and "no BF16" in bf16["note"] and "no BF16" in int8_bf16["note"]
    assert int8_bf16["null_db_vs_torch_fp32"] < 0 and int8_bf16["size_mb"] == int8["size_mb"]
    with pytest.raises(UserError, match="only OpenVINO"):
        rq.load_int8_separator(tmp_path / "x.onnx", rest="bf16")
    with pytest.raises(SystemExit):  # --bf16 without openvino would be silently ignored: refused before any work
        rq.main(["--config", str(config), "--calibration", str(calib_dir), "--runtimes", "onnx", "--bf16"])


def test_pareto_loader_quantizes_students(tmp_path, calib_dir):
    from compress.eval_hooks import load_int8

    config = tmp_path / "tiny.yaml"
    spec = tiny_spec(num_channels=8, growth=8)
    spec.to_yaml(config)
    entry = {"name": "s-ov", "kind": "int8", "model": "random", "config": str(config), "threads": 1,
             "quant": {"runtime": "openvino", "keep_fp32": []}, "out": str(tmp_path / "s"),
             "calibration": {"root": str(calib_dir), "crops": 2}}
    separator = load_int8(entry)
    x = torch.from_numpy(render(0.2, 5)[None, :, : spec.audio.chunk_size].copy())
    out = separator(x)
    assert out.shape == (1, 5, 2, spec.audio.chunk_size) and torch.isfinite(out).all()
    assert separator.num_params > 0
    again = load_int8({**entry, "model": str(tmp_path / "s" / "int8_openvino.xml")})  # the file it wrote
    assert torch.equal(again(x), out)
    with pytest.raises(UserError, match="calibration"):
        load_int8({**entry, "quant": {"runtime": "onnx"}, "calibration": None})
    with pytest.raises(UserError, match="runtime"):
        load_int8({**entry, "quant": {"runtime": "tensorrt"}})
    with pytest.raises(UserError, match="not onnx int8 options"):
        load_int8({**entry, "quant": {"runtime": "onnx", "preset": "mixed"}})

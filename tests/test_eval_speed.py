"""eval.timing.speed reports the GUIDE's fields on a tiny model (no speed targets here)."""
import json
import sys

import pytest
import torch

from eval.timing.benchlib import synthetic_mix
from eval.timing.measure import benchmark_variants
from eval.timing.speed import main
from eval.timing.synthetic import tiny_spec
from separation import TFC_TDF_net

FIELDS = ["variant", "params", "gflop_per_audio_second", "size_mb", "seconds_per_audio_minute", "rtf",
          "peak_rss_mb", "num_overlap", "batch_size", "precision", "device", "achieved_gflops",
          "matmul_peak_gflops", "machine", "command"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_speed_cli_json_fields(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    tiny_spec().to_yaml(config)
    out = tmp_path / "speed.json"
    main(["--config", str(config), "--seconds", "0.5", "--sample-rate", "22050", "--channels", "1",
          "--out", str(out)])
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report
    for field in FIELDS:
        assert report.get(field) is not None, field
    assert report["params"] == sum(p.numel() for p in TFC_TDF_net(tiny_spec()).parameters())
    assert report["machine"]["torch"] == torch.__version__ and report["machine"]["cores"] >= 1
    ref = report["reference_impl"]
    assert ref["max_abs_diff_vs_runner"] < 1e-4 and report["speed_ratio_vs_reference_impl"] > 0
    assert 1 <= report["num_chunks"] <= report["msst_chunks"]
    assert report["audio"] == {"seconds": 0.5, "sample_rate": 22050, "channels": 1}
    assert report["preprocess_seconds"] > 0 and report["seconds"] >= report["runner_seconds"]
    # the allocator setting the separate CLI uses, named in the report (glibc on Linux)
    assert report["allocator"] == ("glibc, freed memory kept (mallopt)" if sys.platform == "linux" else "default")


def test_benchmark_variants_ratio_to_teacher():
    torch.manual_seed(0)
    teacher = TFC_TDF_net(tiny_spec())
    student = TFC_TDF_net(tiny_spec().replace(model={"num_channels": 2, "growth": 2}))
    rows = benchmark_variants({"teacher": teacher, "student": student}, synthetic_mix(0.3),
                              {"num_overlap": 2, "batch_size": 2})
    assert [r["variant"] for r in rows] == ["teacher", "student"]
    assert rows[0]["speed_ratio_vs_teacher"] == pytest.approx(1.0)
    assert rows[1]["speed_ratio_vs_teacher"] > 0 and rows[1]["params"] < rows[0]["params"]
    assert all(r["batch_size"] == 2 and r["num_overlap"] == 2 for r in rows)


def test_seed_cases_preset_smoke(tmp_path):
    config = tmp_path / "tiny.yaml"
    tiny_spec().to_yaml(config)
    out = tmp_path / "seed.json"
    main(["--preset", "seed_cases", "--config", str(config), "--durations", "0.1", "--out", str(out)])
    report = json.loads(out.read_text())
    assert len(report["cases"]) == 6  # 3 sample rates x mono/stereo
    assert {c["audio"]["sample_rate"] for c in report["cases"]} == {22050, 44100, 48000}
    assert all(c["seconds"] >= c["preprocess_seconds"] for c in report["cases"])
    table = out.with_suffix(".md").read_text().splitlines()
    assert table[0].startswith("| case") and "peak RSS MB" in table[0] and len(table) == 2 + 6
    assert table[2].startswith("| 0.1s 22.05kHz mono |")


def test_runner_memory_benchmark_reports_both_ways(capsys):
    from eval.timing.runner_memory import main as memory_main
    memory_main(["--seconds", "3", "--chunk-size", "8192"])
    report = json.loads(capsys.readouterr().out)
    assert [r["way"] for r in report["rows"]] == ["preallocated", "concatenate"]
    assert report["rows"][0]["output_mb"] == report["rows"][1]["output_mb"] == pytest.approx(5 * 2 * 3 * 44100 * 4 / 2**20)
    assert report["peak_rss_ratio_concatenate_vs_preallocated"] > 0


def test_default_config_is_the_bundled_drumsep_yaml():
    from eval.timing.benchlib import DEFAULT_CONFIG, REPO_ROOT
    assert DEFAULT_CONFIG.is_file() and (REPO_ROOT / "pyproject.toml").is_file()


def test_gpu_sweep_runs_its_settings_on_cpu_and_nulls_against_the_first_row(tmp_path):
    """The GPU sweep's own logic (settings parsing, warm-up, null, JSON) on CPU with a tiny model;
    CI has no GPU, so this is what keeps ``python -m eval.gpu_speed`` working between lent GPUs."""
    from eval.timing.gpu_speed import main as gpu_main, parse_settings

    config = tmp_path / "tiny.yaml"
    tiny_spec().to_yaml(config)
    out = tmp_path / "rows.json"
    rows = gpu_main(["--config", str(config), "--seconds", "0.5", "--device", "cpu", "--out", str(out),
                 "--settings", "torch:fp32:1,torch:fp32:3,torch:bf16:2"])
    assert [(r["backend"], r["precision"], r["batch_size"]) for r in rows] == parse_settings(
        "torch:fp32:1,torch:fp32:3,torch:bf16:2")
    assert rows[0]["null_db_vs_first_row"] <= -299        # the reference against itself
    assert rows[1]["null_db_vs_first_row"] < -80           # batching changes rounding only
    assert -60 < rows[2]["null_db_vs_first_row"] < -10     # bf16 is measurably off, not broken
    assert all(r["seconds"] > 0 and r["tflops"] > 0 for r in rows)
    assert json.loads(out.read_text()) == rows
    with pytest.raises(SystemExit, match="BACKEND:PRECISION:BATCH"):
        parse_settings("torch:int4:8")


def speed_cli(tmp_path, *args: str) -> dict:
    """``python -m eval.speed --config <tiny> ARGS --out <json>`` in ``tmp_path``; the report it wrote."""
    config = tmp_path / "tiny.yaml"
    if not config.exists():
        tiny_spec().to_yaml(config)
    out = tmp_path / "report.json"
    main(["--config", str(config), *args, "--out", str(out)])
    return json.loads(out.read_text())


def test_backend_table_repeats_report_medians_of_interleaved_rounds(tmp_path):
    """--repeats 3: every backend and the reference timed three times; the row's seconds and its ratio
    to the reference are medians (the ratio's of the per-round pairs), consistent with the samples."""
    from statistics import median

    report = speed_cli(tmp_path, "--seconds", "0.4", "--num-overlap", "2", "--backends", "torch,winograd", "--repeats", "3")
    ref = report["reference_impl"]
    assert report["repeats"] == 3 and len(ref["seconds_samples"]) == 3 and ref["seconds"] == median(ref["seconds_samples"])
    for row in report["backends"]:
        times, ratios = row["seconds_samples"], row["speed_ratio_vs_reference_impl_samples"]
        assert len(times) == 3 and row["seconds"] == median(times)
        assert ratios == pytest.approx([r / t for r, t in zip(ref["seconds_samples"], times)])
        assert row["speed_ratio_vs_reference_impl"] == pytest.approx(median(ratios))
        assert row["seconds_per_audio_minute"] == pytest.approx(row["seconds"] / row["audio_seconds"] * 60)
    torch_row, wino_row = report["backends"]
    assert wino_row["speed_ratio_vs_teacher"] == pytest.approx(torch_row["seconds"] / wino_row["seconds"])
    assert wino_row["null_db_vs_torch_fp32"] < -60
    with pytest.raises(SystemExit):
        speed_cli(tmp_path, "--backends", "torch", "--repeats", "0")


def test_backend_table_without_torch_nulls_against_the_reference_impl(tmp_path):
    """A run without the torch row (too slow on the 109 M model) still gives each row its null:
    against the reference implementation's torch fp32 output, and says so."""
    (row,) = speed_cli(tmp_path, "--seconds", "0.4", "--num-overlap", "2", "--backends", "winograd")["backends"]
    assert row["null_base"] == "reference implementation (torch fp32)" and row["null_db_vs_torch_fp32"] < -60
    (row,) = speed_cli(tmp_path, "--seconds", "0.4", "--backends", "winograd", "--no-reference")["backends"]
    assert row["null_base"] is None and row["null_db_vs_torch_fp32"] is None


def test_null_floor_measures_each_row_against_the_model_in_float64(tmp_path, capsys):
    """--null-floor runs the model once in float64: torch fp32 then differs from it by a finite,
    tiny amount (its rounding floor; identical would mean the float64 pass never ran in float64),
    and every row carries its own distance to that near-exact output."""
    report = speed_cli(tmp_path, "--seconds", "0.4", "--num-overlap", "2", "--backends", "torch,winograd",
                       "--no-reference", "--null-floor")
    floor = report["float64_floor"]
    assert -200 < floor["torch_null_db_vs_fp64"] < -100 and floor["torch_source"] == "torch backend at fp32"
    torch_row, wino_row = report["backends"]
    assert torch_row["null_db_vs_fp64"] == floor["torch_null_db_vs_fp64"]
    # Winograd rounds differently from the direct convolution: its own finite distance, not torch's
    assert -200 < wino_row["null_db_vs_fp64"] < -60 and wino_row["null_db_vs_fp64"] != torch_row["null_db_vs_fp64"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        speed_cli(tmp_path, "--null-floor")
    assert "--null-floor compares backends" in capsys.readouterr().err


def test_profile_groups_cpu_ops_and_gpu_kernels(tiny_model):
    """eval.profile's CPU path on a tiny model, and the kernel names a GPU profile groups (CI has no GPU)."""
    from eval.timing.profile import kernel_class, profile_chunk

    report = profile_chunk(tiny_model, tiny_model.spec.audio.chunk_size)
    assert report["wall_seconds"] > 0
    assert abs(sum(report["share_by_class"].values()) - 1) < 0.01
    assert report["seconds_by_class"]["convolution"] > 0
    assert kernel_class("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc") == "convolution"
    assert kernel_class("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64") == "gemm"
    assert kernel_class("void at::native::batch_norm_collect_statistics_kernel<float>") == "instance_norm"
    assert kernel_class("void at::native::vectorized_elementwise_kernel<4, GeluCUDAKernelImpl>") == "gelu"
    assert kernel_class("void at::native::vectorized_elementwise_kernel<4, CUDAFunctor_add<float>>") == "elementwise"
    assert kernel_class("regular_fft_kernel") == "fft"


def test_profile_channels_last_keeps_the_output(tiny_model, tmp_path):
    """--channels-last: NHWC weights give the NCHW model's stems (to rounding), and the report says which ran."""
    import copy

    from eval.timing.profile import main as profile_main

    x = torch.randn(1, 2, tiny_model.spec.audio.chunk_size) * 0.1
    nhwc = copy.deepcopy(tiny_model).to(memory_format=torch.channels_last)
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for p in nhwc.parameters())
    with torch.no_grad():
        torch.testing.assert_close(nhwc(x), tiny_model(x), rtol=1e-4, atol=1e-5)
    config = tmp_path / "tiny.yaml"
    tiny_model.spec.to_yaml(config)
    report = profile_main(["--config", str(config), "--channels-last", "--threads", "1", "--out", str(tmp_path / "p.json")])
    assert report["channels_last"] is True and json.loads((tmp_path / "p.json").read_text())["wall_seconds"] > 0


def test_a_backend_row_may_name_its_own_precision(tmp_path):
    """``torch:bf16`` beside ``torch``: the row runs under the Runner's bf16 autocast (measurably off the
    fp32 row, not broken), in every interleaved round; OpenVINO's bf16 is its own, so its Runner stays fp32."""
    report = speed_cli(tmp_path, "--seconds", "0.4", "--num-overlap", "2", "--backends", "torch,torch:bf16,openvino:bf16",
                       "--repeats", "2", "--no-reference")
    rows = {row["variant"]: row for row in report["backends"]}
    assert rows["torch"]["precision"] == "fp32" and rows["torch"]["null_db_vs_torch_fp32"] == float("-inf")
    assert rows["torch:bf16"]["precision"] == "bf16" and -60 < rows["torch:bf16"]["null_db_vs_torch_fp32"] < -10
    # the row names the precision OpenVINO ran at, though its Runner's autocast stays fp32
    assert rows["openvino:bf16"]["precision"] == "bf16" and rows["openvino:bf16"]["null_db_vs_torch_fp32"] < -10
    assert all(len(row["seconds_samples"]) == 2 for row in rows.values())

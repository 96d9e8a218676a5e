"""eval.ladder_speed times a grid of random-init student shapes beside the teacher, in one process."""
import json

import pytest

from eval.timing.ladder import ladder_models, main
from separation import TFC_TDF_net


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_ladder_builds_every_shape_of_the_grid(tmp_path):
    from conftest import tiny_spec
    config = tmp_path / "tiny.yaml"
    tiny_spec().to_yaml(config)
    models = ladder_models(config, [2, 4], [1, 2], [1, 2])
    assert sorted(models) == sorted(f"c{w}_s{s}_b{b}" for w in (2, 4) for s in (1, 2) for b in (1, 2))
    spec = models["c2_s1_b2"].spec
    assert (spec.model.num_channels, spec.model.growth, spec.model.num_scales, spec.model.num_blocks_per_scale) == (2, 2, 1, 2)
    assert spec.audio == tiny_spec().audio  # the student's front-end and chunk are kept
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    assert params["c2_s2_b1"] < params["c4_s2_b1"] and params["c4_s1_b1"] < params["c4_s1_b2"]


def test_ladder_rows_beside_the_teacher(tmp_path, tiny_checkpoint, capsys):
    from conftest import tiny_spec
    config = tmp_path / "tiny.yaml"
    tiny_spec().to_yaml(config)
    out = tmp_path / "ladder" / "tiny.json"
    report = main(["--config", str(config), "--widths", "2,4", "--scales", "1,2", "--blocks", "1",
                   "--teacher", str(tiny_checkpoint), "--backend", "openvino:bf16", "--seconds", "0.5",
                   "--threads", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == report == json.loads(capsys.readouterr().out)
    rows = {r["variant"]: r for r in report["rows"]}
    assert list(rows) == ["teacher", "c2_s1_b1", "c2_s2_b1", "c4_s1_b1", "c4_s2_b1"]
    teacher = rows.pop("teacher")
    assert teacher["speed_ratio_vs_teacher"] == pytest.approx(1.0)
    assert teacher["num_overlap"] == 4 and teacher["backend"] == "torch" and teacher["precision"] == "fp32"
    for name, row in rows.items():
        spec = tiny_spec().replace(model={"num_channels": row["width"], "growth": row["width"],
                                          "num_scales": row["num_scales"], "num_blocks_per_scale": 1})
        assert row["params"] == sum(p.numel() for p in TFC_TDF_net(spec).parameters()), name
        assert row["num_overlap"] == 1 and row["backend"] == "openvino" and row["backend_precision"] == "bf16"
        assert row["speed_ratio_vs_teacher"] > 0 and row["gflop_per_audio_second"] > 0
    assert rows["c2_s2_b1"]["gflop_per_audio_second"] < rows["c4_s2_b1"]["gflop_per_audio_second"]
    table = out.with_suffix(".md").read_text()
    assert table.count("\n") == 2 + 5 and "| c4_s2_b1 |" in table


@pytest.mark.parametrize("flag,value,message", [("--widths", "16,x", "comma-separated whole numbers"),
                                                 ("--scales", "0", ">= 1"),
                                                 ("--config", "missing.yaml", "does not exist")])
def test_ladder_refuses_bad_input_in_one_sentence(tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exc:
        main([flag, value, "--out", str(tmp_path / "x.json")])
    assert exc.value.code != 0 and message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()

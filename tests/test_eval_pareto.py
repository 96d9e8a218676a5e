"""eval.tables.pareto end to end on two tiny random-weight variants, the overlap study, the notebooks."""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from eval.tables.overlap_study import chunk_sizes, run_overlap_study, write_study
from eval.tables.pareto import main as pareto_main
from eval.tables.pareto import register_loader, run_pareto
from eval.timing.synthetic import make_dataset, make_variants
from separation import load_any
from separation.errors import UserError

REPO = Path(__file__).resolve().parents[1]
GUIDE_FIELDS = ["variant", "params", "gflop_per_audio_second", "size_mb", "seconds_per_audio_minute", "rtf",
                "peak_rss_mb", "num_overlap", "batch_size", "precision", "device", "sdr",
                "delta_sdr_vs_teacher", "machine", "command"]


class Wrapped(torch.nn.Module):
    """What a plugin loader may return: any (B, 2, chunk) -> (B, S, 2, chunk) module, no .spec."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Two OpenMP threads on two busy cores make tiny models ~10x slower (spin-waiting).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pareto_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pareto")
    make_dataset(tmp / "data", tracks=2, seconds=2.0, split="test", silent=("toms",))
    models = make_variants(tmp / "models")
    register_loader("wrapped", lambda entry: Wrapped(load_any(entry["model"])))
    cfg = {"dataset": {"root": str(tmp / "data"), "split": "test", "max_seconds": 1.0},
           "out_dir": str(tmp / "out"), "threads": 1, "museval": {"jobs": 2},
           "variants": [
               {"name": "teacher", "kind": "teacher", "model": str(models["teacher"]),
                "runner": {"num_overlap": 2}},
               {"name": "student", "kind": "wrapped", "model": str(models["student_c2"]),
                "runner": {"num_overlap": 2, "batch_size": 2, "chunk_size": 3584, "window": "hann"}},
               {"name": "teacher_onnx", "kind": "other", "model": str(models["teacher"]), "backend": "onnx",
                "runner": {"num_overlap": 2}}]}
    return cfg, run_pareto(cfg), tmp


def test_pareto_rows_and_files(pareto_run):
    cfg, rows, tmp = pareto_run
    out = Path(cfg["out_dir"])
    assert [r["variant"] for r in rows] == ["teacher", "student", "teacher_onnx"]
    for row in rows:
        for field in GUIDE_FIELDS:
            assert field in row, field
        assert row["excluded"]["toms"] == 2 and row["sdr"]["toms"] is None  # silent in every track
        assert set(row["sdr"]) == {"kick", "snare", "toms", "hh", "cymbals", "mean"}
    assert rows[0]["speed_ratio_vs_teacher"] == pytest.approx(1.0)
    teacher_file = Path(cfg["variants"][0]["model"])
    assert rows[0]["file_mb"] == pytest.approx(teacher_file.stat().st_size / 2**20)
    assert rows[0]["delta_sdr_vs_teacher"]["kick"] == pytest.approx(0.0)
    assert rows[1]["delta_sdr_vs_teacher"]["kick"] == pytest.approx(rows[1]["sdr"]["kick"] - rows[0]["sdr"]["kick"])
    assert rows[1]["fidelity_sdr"]["mean"] is not None and "fidelity_sdr" not in rows[0]
    assert rows[1]["window"] == "hann" and rows[1]["batch_size"] == 2
    # intervals over the 2 tracks; the teacher's paired Δ against itself is exactly 0 (zero width)
    assert rows[0]["num_tracks"] == 2 and rows[0]["sdr_ci"]["kick"]["n"] == 2
    assert rows[0]["delta_sdr_ci"]["mean"] == {"mean": 0.0, "ci": 0.0, "lo": 0.0, "hi": 0.0, "n": 2}
    assert rows[1]["delta_sdr_ci"]["kick"]["mean"] == pytest.approx(rows[1]["delta_sdr_vs_teacher"]["kick"])
    # the same weights through ONNX Runtime: counted like the torch model, the same output
    onnx_row = rows[2]
    assert onnx_row["params"] == rows[0]["params"] and onnx_row["gflop_per_audio_second"] is not None
    assert onnx_row["fidelity_sdr"]["mean"] > 30
    for track in ("track_00", "track_01"):
        for stem in ("kick", "snare", "toms", "hh", "cymbals"):
            assert (out / "estimates" / "student" / track / f"{stem}.wav").is_file()
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["machine"]["cpu"] and data["meta"]["ground_truth"] is True
    csv = pd.read_csv(out / "results.csv")
    assert {"sdr_kick", "delta_sdr_vs_teacher_snare", "fidelity_sdr_mean", "sdr_ci_kick", "delta_sdr_ci_mean"} \
        <= set(csv.columns)
    md = (out / "results.md").read_text()
    assert md.startswith("| variant") and "| student |" in md
    assert (out / "pareto.png").stat().st_size > 1000


def test_pareto_resumes_and_cli(pareto_run, capsys):
    cfg, rows, tmp = pareto_run
    import yaml
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    pareto_main([str(path)])  # everything on disk: separation resumes, museval comes from the cache
    assert "| teacher |" in capsys.readouterr().out
    data = json.loads((Path(cfg["out_dir"]) / "results.json").read_text())
    assert all(r["tracks_resumed"] == 2 for r in data["variants"])
    assert " ± " in (Path(cfg["out_dir"]) / "results.md").read_text()
    assert data["meta"]["command"].startswith("python")
    # --only keeps the named variants and the teacher, in a separate output directory
    pareto_main([str(path), "--only", "student", "--out-dir", str(tmp / "out_only")])
    data = json.loads((tmp / "out_only" / "results.json").read_text())
    assert [r["variant"] for r in data["variants"]] == ["teacher", "student"]
    with pytest.raises(SystemExit):
        pareto_main([str(path), "--only", "no_such_variant"])


def test_pareto_timing_rounds_pair_each_round_with_the_teacher(pareto_run):
    cfg, _, tmp = pareto_run
    cfg = {**cfg, "variants": cfg["variants"][:2], "out_dir": str(tmp / "out_rounds"), "timing_rounds": 3}
    rows = run_pareto(cfg)  # a fresh folder: round 1 is timed here too, then two interleaved rounds
    teacher, student = rows
    assert len(teacher["seconds_rounds"]) == len(student["seconds_rounds"]) == 3
    assert teacher["speed_ratio_rounds"] == [1.0, 1.0, 1.0] and teacher["speed_ratio_vs_teacher"] == 1.0
    ratios = [t / s for t, s in zip(teacher["seconds_rounds"], student["seconds_rounds"])]
    assert student["speed_ratio_rounds"] == pytest.approx(ratios)
    assert student["speed_ratio_vs_teacher"] == pytest.approx(sorted(ratios)[1])  # the median, paired per round
    assert student["seconds"] == pytest.approx(sorted(student["seconds_rounds"])[1])
    assert f"({min(ratios):.2f}–{max(ratios):.2f})" in (Path(cfg["out_dir"]) / "results.md").read_text()
    rows = run_pareto({**cfg, "timing_rounds": 2})  # resumed from disk: only this process's round counts
    assert [len(r["seconds_rounds"]) for r in rows] == [1, 1]
    with pytest.raises(UserError, match="timing_rounds"):
        run_pareto({**cfg, "timing_rounds": 0})


def test_pareto_without_ground_truth_is_fidelity_only(pareto_run):
    cfg, _, tmp = pareto_run
    folder = tmp / "user_tracks"
    make_dataset(folder, tracks=1, seconds=1.0, write_stems=False)  # mixtures only
    cfg = {**cfg, "dataset": {"folder": str(folder)}, "out_dir": str(tmp / "out_nogt")}
    rows = run_pareto(cfg)
    assert "sdr" not in rows[1] and rows[1]["fidelity_sdr"]["mean"] is not None


def test_pareto_plot_keeps_labels_of_coincident_points_apart():
    """Two variants at the same speed and SDR (fp32 and bf16 of one model) get labels on separate lines."""
    from eval.tables.plots import plot_pareto
    rows = [{"variant": name, "seconds_per_audio_minute": 2.5, "sdr": {"mean": 8.0}} for name in ("b1_fp32", "b1_bf16")]
    rows.append({"variant": "teacher", "seconds_per_audio_minute": 47.0, "sdr": {"mean": 10.1}})
    fig = plot_pareto(rows)
    texts = {t.get_text(): t for t in fig.axes[0].texts}
    assert set(texts) == {"b1_fp32", "b1_bf16", "teacher"}
    fig.canvas.draw()
    box = {name: texts[name].get_window_extent() for name in texts}
    assert not box["b1_fp32"].overlaps(box["b1_bf16"])
    ticks = [label.get_text() for label in fig.axes[0].get_xticklabels() if label.get_text()]
    assert ticks and all(float(t) > 0 for t in ticks)  # plain numbers, not 3x10^0-style labels
    fig.set_size_inches(10, 7)  # the labels are placed in points from their points: a new size keeps them apart
    fig.canvas.draw()
    assert not texts["b1_fp32"].get_window_extent().overlaps(texts["b1_bf16"].get_window_extent())
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_pareto_user_errors(pareto_run, monkeypatch):
    from eval.tables import pareto
    cfg, _, tmp = pareto_run
    monkeypatch.delitem(pareto.LOADERS, "onnx", raising=False)  # compress.eval_hooks may have registered it
    with pytest.raises(UserError, match="no teacher"):
        run_pareto({**cfg, "variants": [{**cfg["variants"][0], "kind": "student"}]})
    out = tmp / "out_noloader"  # the missing plug-in is found before the teacher is separated
    with pytest.raises(UserError, match="no loader is registered"):
        run_pareto({**cfg, "out_dir": str(out), "variants": [cfg["variants"][0], {**cfg["variants"][1], "kind": "onnx"}]})
    assert not out.exists()


def test_overlap_study_tiny(pareto_run):
    cfg, _, tmp = pareto_run
    torch.manual_seed(0)
    model = load_any(str(tmp / "models" / "teacher.ckpt"))
    study = run_overlap_study(model, {**cfg["dataset"], "max_tracks": 1}, tmp / "overlap", overlaps=(1, 2, 4),
                              metric="usdr")
    sizes = chunk_sizes(model)
    assert list(sizes)[:2] == ["training", "jarredou"] and sizes["jarredou"] == 523_776
    assert len(study["rows"]) == 3 * len(sizes) * 2 and study["baseline"] == "training_msst_o4"
    settings = {r["setting"]: r for r in study["rows"]}
    assert set(study["best"]) == {"0.1", "1.0"} and set(study["best"].values()) <= set(settings)
    base = settings["training_msst_o4"]
    assert base["delta"]["mean"]["mean"] == 0.0 and base["speed_ratio"] == 1.0
    # the paired interval is computed from the tracks both settings scored
    assert all(r["delta"]["mean"]["n"] == 1 for r in study["rows"])
    write_study(study, tmp / "overlap")
    assert (tmp / "overlap" / "overlap_study.png").is_file()


@pytest.mark.parametrize("notebook,params", [
    ("sdr_vs_speed.ipynb", lambda tmp, cfg: {"results_dir": cfg["out_dir"]}),
    ("listen.ipynb", lambda tmp, cfg: {"results_dir": cfg["out_dir"], "student": None, "stems": ["kick", "toms"]}),
    ("overlap_study.ipynb", lambda tmp, cfg: {"study_dir": str(tmp / "overlap")}),
])
def test_notebooks_execute(pareto_run, notebook, params, tmp_path):
    import papermill

    cfg, _, tmp = pareto_run
    if notebook == "overlap_study.ipynb" and not (tmp / "overlap" / "overlap_study.json").is_file():
        test_overlap_study_tiny(pareto_run)  # the notebook reads that study; run it when this test runs alone
    source = REPO / "notebooks" / notebook
    assert all(not c.get("outputs") for c in json.loads(source.read_text())["cells"]), "commit notebooks clean"
    papermill.execute_notebook(str(source), str(tmp_path / notebook), parameters=params(tmp, cfg),
                               cwd=str(REPO / "notebooks"), kernel_name="python3", progress_bar=False)


PLUGIN = '''
"""A loader plug-in as a user would write one: registers a kind with eval.tables.pareto on import and
returns a plain callable (no nn.Module, no .spec), which the runner accepts too."""
from pathlib import Path

from eval.tables.pareto import register_loader
from separation import load_any


def load(entry):
    Path(entry["marker"]).write_text(entry["name"])
    net = load_any(entry["model"])
    return lambda mix: net(mix)


register_loader("cli_plugin", load)
'''


def _run_pareto_cli(cfg: dict, tmp: Path):
    import os
    import subprocess
    import sys

    import yaml
    path = tmp / f"{Path(cfg['out_dir']).name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp / "plugins"), str(REPO)]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "eval.tables.pareto", str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_pareto_cli_with_imported_plugin(pareto_run):
    """`python -m eval.tables.pareto` (the __main__ path) must use the loaders that modules under
    `imports:` register: they register with `eval.tables.pareto`, not with a second `__main__` copy."""
    cfg, _, tmp = pareto_run
    (tmp / "plugins").mkdir(exist_ok=True)
    (tmp / "plugins" / "my_loader_plugin.py").write_text(PLUGIN)
    marker = tmp / "plugin_was_called"
    teacher, student = cfg["variants"][:2]
    cli_cfg = {**cfg, "out_dir": str(tmp / "out_cli"), "imports": ["my_loader_plugin"],
               "variants": [teacher, {**student, "name": "plugged", "kind": "cli_plugin", "marker": str(marker)}]}
    proc = _run_pareto_cli(cli_cfg, tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert marker.read_text() == "plugged"
    assert "| plugged |" in proc.stdout
    data = json.loads((tmp / "out_cli" / "results.json").read_text())
    assert [r["variant"] for r in data["variants"]] == ["teacher", "plugged"]
    assert data["variants"][1]["fidelity_sdr"]["mean"] is not None

    bad = {**cli_cfg, "out_dir": str(tmp / "out_cli_bad"), "imports": ["no_such_plugin_module"]}
    proc = _run_pareto_cli(bad, tmp)
    assert proc.returncode == 2
    assert "no_such_plugin_module" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp / "out_cli_bad" / "results.json").exists()


def test_a_retrained_bundled_model_is_not_served_from_stale_estimates(tmp_path, monkeypatch):
    """A variant naming a registry model (``drumsep-demo-teacher``) keys its stored estimates on
    the checkpoint that name resolves to, so replacing the bundled weights re-separates."""
    import eval.tables.pareto as pareto

    ckpt = tmp_path / "demo.ckpt"
    ckpt.write_bytes(b"v1")
    monkeypatch.setattr(pareto, "resolve", lambda name, allow_download=True: (ckpt, None))
    entry = {"name": "teacher", "kind": "teacher", "model": "drumsep-demo-teacher"}
    before = pareto._settings_key(entry, 10)
    assert pareto._settings_key(entry, 10) == before
    ckpt.write_bytes(b"v2, retrained")
    assert pareto._settings_key(entry, 10) != before


def test_listen_finds_a_relative_dataset_root_from_a_notebooks_working_directory(tmp_path, monkeypatch):
    """eval.pareto stores the dataset root as given (relative to the repository root); a notebook
    runs in notebooks/, so the listen helper looks for the root above the results directory."""
    from eval.tables.report import _dataset_root
    (tmp_path / "repo" / "data" / "heldout").mkdir(parents=True)
    results = tmp_path / "repo" / "results" / "study"
    results.mkdir(parents=True)
    (tmp_path / "repo" / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "repo" / "notebooks")
    assert _dataset_root("data/heldout", results) == tmp_path / "repo" / "data" / "heldout"
    assert _dataset_root("data/missing", results) == Path("data/missing")

"""Training entry points on tiny configs: real Hydra composition, real Lightning Trainer."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir

from conftest import ROOT

CONFIGS = str(ROOT / "configs")


def cfg_for(name, *overrides):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from drumdata.render import ensure_rendered
    root = tmp_path_factory.mktemp("data") / "rendered"
    ensure_rendered(root, hours=0.006, seed=0, clip_seconds=2.0)
    return root


@pytest.fixture(scope="module")
def tiny_teacher(tiny_data, tmp_path_factory):
    """A 2-step teacher trained through the real entry-point function (also the export test)."""
    from train.teacher import train_teacher
    out = tmp_path_factory.mktemp("teacher")
    cfg = cfg_for("teacher", "+config=test_tiny", f"data.root={tiny_data}", f"output_dir={out}",
                  "logger=csv", "export.evaluate=false")
    paths = train_teacher(cfg)
    return paths, out


@pytest.mark.parametrize("size,width", [("tiny", 8), ("small", 16), ("medium", 24)])
def test_student_sizes_compose(size, width):
    cfg = cfg_for("distill", f"+config={size}")
    assert cfg.student.model.num_channels == width == cfg.student.model.growth
    assert cfg.teacher.checkpoint == "drumsep-demo-teacher" and cfg.logger.wandb.offline is True


def test_jarredou_teacher_group_composes():
    cfg = cfg_for("distill", "+config=small", "teacher=jarredou", "teacher.weights=/x/model.ckpt")
    assert cfg.teacher.checkpoint == "drumsep-5stem-jarredou" and cfg.teacher.weights == "/x/model.ckpt"


def test_teacher_training_exports_a_strictly_loadable_pair(tiny_teacher):
    from separation.checkpoint import load_model
    from train.export import model_from_lightning
    paths, out = tiny_teacher
    exported = load_model(paths["checkpoint"])  # strict, weights_only, YAML beside it
    in_memory = model_from_lightning(out / "checkpoints" / "last.ckpt")
    x = torch.randn(1, 2, exported.spec.audio.chunk_size)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), in_memory(x))
    assert "num_channels: 4" in Path(paths["config"]).read_text()
    card = Path(paths["card"]).read_text()
    assert '"steps": 2' in card and '"command"' in card and '"machine"' in card


def test_resume_continues_from_last_checkpoint_step(tiny_data, tiny_teacher, tmp_path):
    import shutil
    from train.teacher import train_teacher
    _, out = tiny_teacher
    shutil.copytree(out / "checkpoints", tmp_path / "checkpoints")
    cfg = cfg_for("teacher", "+config=test_tiny", f"data.root={tiny_data}", f"output_dir={tmp_path}",
                  "logger=csv", "export.enabled=false", "trainer.max_steps=4")
    train_teacher(cfg)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert state["global_step"] == 4  # 2 restored + 2 new, not 4 from scratch on top
    assert state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"] == 4


def test_label_free_distillation_with_cached_teacher(tiny_teacher, tmp_path):
    from train.distill import distill
    paths, _ = tiny_teacher
    mixtures = tmp_path / "mixtures"
    mixtures.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(mixtures / f"take{i}.wav", rng.uniform(-0.3, 0.3, (44100, 2)).astype(np.float32), 44100)
    cfg = cfg_for("distill", "+config=test_tiny", f"teacher.checkpoint={paths['checkpoint']}",
                  "data=mixtures", f"data.root={mixtures}", f"output_dir={tmp_path / 'run'}", "logger=csv",
                  "distill.teacher_outputs=cached", "distill.cache_crops=4", "distill.feature_weight=0.1",
                  "export.evaluate=false")
    result = distill(cfg)
    assert Path(result["checkpoint"]).is_file()
    assert any((tmp_path / "run" / "teacher_cache").iterdir())  # teacher outputs stored via datasets


def test_distillation_with_wandb_offline_and_ground_truth_term(tiny_data, tiny_teacher, tmp_path):
    from train.distill import distill
    paths, _ = tiny_teacher
    cfg = cfg_for("distill", "+config=test_tiny", f"teacher.checkpoint={paths['checkpoint']}",
                  f"data.root={tiny_data}", f"output_dir={tmp_path}", "distill.alpha=0.5", "export.evaluate=false")
    distill(cfg)
    assert list((tmp_path / "wandb").glob("offline-run-*"))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_iterative_taylor_pruning_distils_after_each_step_on_its_own_crops(tiny_data, tiny_teacher, tmp_path):
    """compress.prune +config=taylor_iterative through the Hydra entry point: Taylor scores from drum
    crops, a distillation run after each of the 3 steps (one output dir each), crops of
    distill.crop_samples rather than the teacher's chunk, and a strictly loadable narrower model."""
    from compress.prune.cli import prune_run
    from separation.checkpoint import load_model

    paths, _ = tiny_teacher
    teacher = load_model(paths["checkpoint"])
    hop = teacher.spec.audio.hop_length
    crop = (2 * (teacher.spec.audio.chunk_size // hop + 1) - 1) * hop  # twice the frames
    cfg = cfg_for("compress/prune", "+config=[taylor_iterative,test_tiny]", f"teacher.checkpoint={paths['checkpoint']}",
                  f"data.root={tiny_data}", f"output_dir={tmp_path}", "prune.finetune_steps=1", "prune.round_to=1",
                  f"distill.crop_samples={crop}", "logger=csv")
    report = prune_run(cfg)
    assert report["crop_samples"] == crop != teacher.spec.audio.chunk_size
    assert [p.name for p in sorted(tmp_path.glob("step*"))] == ["step1", "step2", "step3"]
    assert all((tmp_path / f"step{k}" / "checkpoints" / "last.ckpt").is_file() for k in (1, 2, 3))
    pruned = load_model(report["checkpoint"])
    assert pruned.spec.model.num_channels < teacher.spec.model.num_channels


def test_nan_loss_names_step_and_batch():
    from conftest import tiny_spec
    from separation.errors import UserError
    from train.modules import SupervisedModule
    module = SupervisedModule(tiny_spec())
    chunk = module.model.spec.audio.chunk_size
    batch = {"mixture": torch.full((1, 2, chunk), float("nan")), "stems": torch.zeros(1, 5, 2, chunk)}
    with pytest.raises(UserError, match=r"global step 0 \(batch 7"):
        module.training_step(batch, 7)


def test_mismatched_teacher_gives_loader_error(tiny_teacher, tmp_path):
    from conftest import tiny_spec
    from omegaconf import OmegaConf
    from separation.errors import CheckpointError
    from train.common import load_teacher
    paths, _ = tiny_teacher
    wrong = tmp_path / "wrong.yaml"
    tiny_spec(num_channels=8, growth=8).to_yaml(wrong)
    with pytest.raises(CheckpointError, match="does not match its config"):
        load_teacher(OmegaConf.create({"checkpoint": str(paths["checkpoint"]), "config": str(wrong)}))


def test_ddp_on_cpu_with_two_processes(tiny_data, tmp_path):
    cmd = [sys.executable, "-m", "train.teacher", "+config=test_tiny", f"data.root={tiny_data}",
           f"output_dir={tmp_path}", "logger=csv", "export.evaluate=false", "trainer=ddp",
           "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32", "data.num_workers=0"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world_size: 2" in proc.stderr + proc.stdout or "distributed_backend=gloo" in proc.stderr + proc.stdout
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_trainer_precision_auto_is_measured_and_bf16_mixed_trains_on_the_cpu(tiny_data, tiny_teacher, tmp_path):
    """trainer.precision=auto (the CPU default) times DistillModule.training_step both ways and names a
    Lightning precision; bf16-mixed, which auto picks on a CPU with AMX, trains and exports on any CPU."""
    from train.distill import distill
    from train.modules import DistillModule
    from train.precision import lightning_precision
    from separation import load_any

    paths, _ = tiny_teacher
    teacher = load_any(paths["checkpoint"])
    module = DistillModule(teacher.spec, teacher, alpha=0.5, feature_weight=0.0, lr=1e-3, warmup_steps=1, loss="mse")
    chosen, why = lightning_precision("auto", module, batch_size=2, num_stems=len(teacher.spec.stems))
    assert chosen in ("32-true", "bf16-mixed") and "fp32" in why and "bf16" in why
    assert all(p.grad is None for p in module.parameters())
    assert lightning_precision("bf16-mixed", module, 2, 5) == ("bf16-mixed", "trainer.precision bf16-mixed as configured")
    assert lightning_precision("auto", module, 2, 5, accelerator="gpu")[0] == "bf16-mixed"  # no CPU timing for a GPU run
    cfg = cfg_for("distill", "+config=test_tiny", f"teacher.checkpoint={paths['checkpoint']}", f"data.root={tiny_data}",
                  f"output_dir={tmp_path}", "logger=csv", "trainer.precision=bf16-mixed", "export.evaluate=false")
    result = distill(cfg)
    student = load_any(result["checkpoint"])  # strict load of what bf16-mixed training exported
    assert student.spec.model.num_channels == cfg.student.model.num_channels
    assert all(torch.isfinite(v).all() for v in student.state_dict().values())

"""The selectable training losses (train.losses) and a short supervised run that must learn."""
from __future__ import annotations

import json
import re

import lightning as L
import numpy as np
import pytest
import torch

from drumdata import STEMS
from drumdata.bank import draw_batch, render_bank
from eval.scoring.metrics import utterance_sdr
from train.losses import LOSSES, make_loss

SHAPE = (2, 5, 2, 4096)


def sparse_target(seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(*SHAPE, generator=g) * 0.1
    target[:, 2] = 0.0  # a silent stem, as toms are in most crops
    return target


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_loss_is_finite_prefers_the_target_and_has_gradients(name):
    target = sparse_target()
    mixture = target.sum(1)
    loss = make_loss(name)
    noisy = (target + 0.05 * torch.randn_like(target)).requires_grad_(True)
    value = loss(noisy, target, mixture)
    assert torch.isfinite(value)
    value.backward()
    assert noisy.grad is not None and noisy.grad.abs().sum() > 0
    perfect = loss(target, target, mixture)
    assert perfect < value  # the exact answer beats a noisy one
    silence = loss(torch.zeros_like(target), target, mixture)
    assert perfect < silence  # and silence is not an optimum


def test_snr_floor_bounds_the_cost_of_a_silent_target():
    target = sparse_target()
    mixture = target.sum(1)
    estimate = target.clone()
    estimate[:, 2] = 0.1 * torch.randn_like(estimate[:, 2])  # output where the reference is silent
    value = make_loss("snr_floor")(estimate, target, mixture)
    assert torch.isfinite(value) and value.abs() < 100  # dB: bounded, no 10*log10(x / 0)


def test_weighted_sum_and_unknown_names():
    target = sparse_target()
    mixture, est = target.sum(1), target + 0.01
    combined = make_loss("mse + 0.5*mse_stft")(est, target, mixture)
    expected = LOSSES["mse"](est, target, mixture) + 0.5 * LOSSES["mse_stft"](est, target, mixture)
    assert torch.allclose(combined, expected)
    with pytest.raises(ValueError, match="choose from"):
        make_loss("mse+sdr_magic")


def test_supervised_run_learns_and_is_not_silent(tmp_path):
    """A tiny TFC_TDF_net on real rendered drums (synthetic kits, no files): the loss falls and the
    estimate leaves silence (the L1 recipe's failure), under a real Lightning Trainer."""
    from conftest import tiny_spec
    from train.modules import SupervisedModule

    L.seed_everything(0)
    spec = tiny_spec(num_channels=8, growth=8).replace(audio={"chunk_size": 512 * 31, "dim_t": 32})
    crop = spec.audio.chunk_size
    bank = render_bank(["synthetic-A", "synthetic-B"], hours=16 * 2.0 / 3600, clip_seconds=2.0, workers=1)
    mixture, stems = draw_batch(bank, 4, crop, torch.Generator().manual_seed(0), remix_p=0.0)
    batches = [{"mixture": mixture, "stems": stems}] * 60
    module = SupervisedModule(spec, lr=3e-3, warmup_steps=1, loss="mse_stft")
    active = stems.pow(2).mean((-2, -1)) > 1e-8
    with torch.no_grad():
        sdr_before = utterance_sdr(stems, module.model.eval()(mixture))[active]
    losses = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = L.Trainer(max_steps=60, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Record()],
                        default_root_dir=tmp_path)
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5])
    with torch.no_grad():
        estimate = module.model.eval()(mixture)
    rms_ratio = (estimate.pow(2).mean((-2, -1)) / stems.pow(2).mean((-2, -1)).clamp_min(1e-12)).sqrt()
    assert (rms_ratio[active] > 0.1).float().mean() > 0.5  # most active stems are heard
    sdr_after = utterance_sdr(stems, estimate)[active]
    assert sdr_after.mean() > sdr_before.mean() + 1.0 and sdr_after.max() > 5.0


def test_onthefly_teacher_writes_a_loadable_best_and_resumes(tmp_path):
    from separation.checkpoint import load_model
    from train.onthefly_teacher import main

    args = ["--out", str(tmp_path / "state"), "--export-dir", str(tmp_path / "export"), "--minutes", "0.05",
            "--width", "4", "--scales", "2", "--crop-frames", "32", "--batch-size", "2", "--bank-hours", "0.002",
            "--clip-seconds", "1.0", "--val-clips", "2", "--eval-every", "1", "--workers", "1",
            "--kits-dir", str(tmp_path / "no-kits"), "--select", "fsdr"]  # synthetic kits only: fast
    first = main(args)
    curve = json.loads((tmp_path / "export" / "curve.json").read_text())
    assert first["steps"] > 0 and len(curve["curve"]) >= 2
    model = load_model(tmp_path / "export" / "best.ckpt")  # strict, weights-only, with its YAML
    assert model.spec.model.num_channels == 4
    from train.loss_study import report_curves
    report_curves([f"run={tmp_path / 'export' / 'curve.json'}"], tmp_path / "report", metric="fsdr")
    last = curve["curve"][-1]
    table = (tmp_path / "report" / "learning_curve_fsdr.md").read_text()
    assert f"| {last['fsdr']:.2f} | {last['fsdr_kick']:.2f} |" in table  # the frame-median column, not utterance SDR
    assert (tmp_path / "report" / "learning_curve_fsdr.png").stat().st_size > 0
    assert curve["select"] == "fsdr" and curve["precision"] in ("fp32", "bf16")  # auto measured one on this CPU
    # a larger budget resumes from last.pt: larger than what the first run really used, which on a loaded
    # machine can exceed its own 0.05 min (its one step and validations finish before it stops)
    used_minutes = curve["curve"][-1]["seconds"] / 60
    again = main(args[:5] + [f"{used_minutes + 0.05:.4f}"] + args[6:])
    assert again["steps"] > first["steps"]
    steps = [row["step"] for row in json.loads((tmp_path / "export" / "curve.json").read_text())["curve"]]
    assert steps == sorted(set(steps))  # the resume did not validate the same step twice
    assert main(args[:5] + ["0.1"] + args[6:])["steps"] == again["steps"]  # nothing left: no step, no new row
    assert len(json.loads((tmp_path / "export" / "curve.json").read_text())["curve"]) == len(steps)
    with pytest.raises(SystemExit, match="--select fsdr"):  # a best fsdr is no best sdr: refuse to mix them
        main(args[:-1] + ["sdr"])


def test_auto_training_precision_is_measured_on_a_cpu_and_leaves_the_weights_alone():
    from separation.config import ModelSpec
    from separation.model import TFC_TDF_net
    from separation.pretrained import MODELS_DIR
    from train.precision import choose_precision

    spec = ModelSpec.from_yaml(MODELS_DIR / "demo_teacher.yaml").replace(
        model={"num_channels": 4, "growth": 4, "num_scales": 2}, audio={"chunk_size": 512 * 31, "dim_t": 32})
    model = TFC_TDF_net(spec)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stems = 0.1 * torch.randn(2, 5, 2, spec.audio.chunk_size, generator=torch.Generator().manual_seed(0))
    loss = make_loss("mse")
    chosen, why = choose_precision("auto", torch.device("cpu"), model, lambda: loss(model(stems.sum(1)).float(), stems, stems.sum(1)))
    assert chosen in ("fp32", "bf16") and "fp32" in why and "bf16" in why and len(re.findall(r"\d\.\d\d s", why)) == 2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert choose_precision("fp32", torch.device("cpu"), model, None) == ("fp32", "precision fp32 as configured")
    with pytest.raises(ValueError, match="fp16"):
        choose_precision("fp16", torch.device("cpu"), model, None)


def test_onthefly_distillation_learns_from_a_teacher_and_refuses_a_mismatched_one(tmp_path):
    """--teacher: the targets are a frozen model's estimates. A student with a smaller FFT learns from them, warm-started
    from the teacher's weights pooled onto its frequency axis; a student with another hop is refused."""
    from separation.checkpoint import read_state_dict
    from separation.config import ModelSpec
    from separation.errors import UserError
    from separation.pretrained import MODELS_DIR
    from train.onthefly_teacher import main

    common = ["--minutes", "0.03", "--scales", "2", "--crop-frames", "32", "--batch-size", "2",
              "--bank-hours", "0.002", "--clip-seconds", "1.0", "--val-clips", "2", "--eval-every", "1",
              "--workers", "1", "--kits-dir", str(tmp_path / "no-kits")]
    main(["--out", str(tmp_path / "teacher"), "--width", "8", *common])
    taught = main(["--out", str(tmp_path / "student"), "--width", "4", "--teacher", str(tmp_path / "teacher" / "best.ckpt"),
                   "--alpha", "0.5", *common])
    curve = json.loads((tmp_path / "student" / "curve.json").read_text())
    assert taught["steps"] > 0 and curve["teacher"].endswith("best.ckpt") and curve["alpha"] == 0.5
    teacher = str(tmp_path / "teacher" / "best.ckpt")
    half = main(["--out", str(tmp_path / "half"), "--width", "8", "--teacher", teacher, "--init", teacher,
                 "--n-fft", "1024", "--dim-f", "512", *common])
    student = read_state_dict(tmp_path / "half" / "best.ckpt")
    first_tdf = next(k for k, v in student.items() if "tdf" in k and v.dim() == 2)
    assert half["steps"] > 0 and read_state_dict(teacher)[first_tdf].shape[1] == 2 * student[first_tdf].shape[1]
    other = ModelSpec.from_yaml(MODELS_DIR / "demo_teacher.yaml").replace(audio={"hop_length": 256, "chunk_size": 256 * 255})
    other.to_yaml(tmp_path / "other_hop.yaml")
    with pytest.raises(UserError, match="audio.hop_length"):
        main(["--out", str(tmp_path / "bad"), "--width", "4", "--teacher", teacher,
              "--base-config", str(tmp_path / "other_hop.yaml"), *common])
    assert not (tmp_path / "bad" / "last.pt").exists()
    with pytest.raises(UserError, match="cannot start this model"):  # a narrower checkpoint cannot be pooled up
        main(["--out", str(tmp_path / "bad"), "--width", "8", "--init", str(tmp_path / "half" / "best.ckpt"), *common])


def test_pooling_a_tdf_linear_keeps_its_response_to_a_signal_constant_over_each_bin_pair():
    """A student bin stands for two teacher bins: for inputs equal across each pair, the pooled linear gives the
    mean of the teacher's outputs over each output pair, exactly."""
    from train.warm_start import pooled_state_dict

    g = torch.Generator().manual_seed(0)
    wide, narrow = torch.nn.Linear(8, 4, bias=False), torch.nn.Linear(4, 2, bias=False)
    wide.weight.data = torch.randn(4, 8, generator=g)
    narrow.load_state_dict(pooled_state_dict(wide.state_dict(), narrow))
    x = torch.randn(3, 4, generator=g)
    expected = wide(x.repeat_interleave(2, dim=1)).reshape(3, 2, 2).mean(2)
    assert torch.allclose(narrow(x), expected, atol=1e-6)
    with pytest.raises(ValueError, match="whole multiple"):
        pooled_state_dict(wide.state_dict(), torch.nn.Linear(3, 2, bias=False))


def test_segmental_snr_counts_a_quiet_segment_as_much_as_a_loud_one():
    """Leakage into the quiet second of a stem costs seg_snr_floor far more than snr_floor,
    whose one SNR over the crop is dominated by the loud second."""
    g = torch.Generator().manual_seed(1)
    target = torch.zeros(1, 5, 2, 88200)
    target[..., :44100] = torch.randn(1, 5, 2, 44100, generator=g)           # loud first second
    target[..., 44100:] = 0.01 * torch.randn(1, 5, 2, 44100, generator=g)    # quiet tail
    mixture = target.sum(1)
    leaky = target.clone()
    leaky[..., 44100:] += 0.05 * torch.randn(1, 5, 2, 44100, generator=g)   # leakage into the tail
    whole = make_loss("snr_floor")(leaky, target, mixture) - make_loss("snr_floor")(target, target, mixture)
    seg = make_loss("seg_snr_floor")(leaky, target, mixture) - make_loss("seg_snr_floor")(target, target, mixture)
    assert seg > 2 * whole > 0


def test_seg_sdr_sees_leakage_into_a_tail_far_under_the_mixture_that_the_floored_loss_ignores():
    """A cymbal tail 40 dB under the kit: hi-hat leakage 10 dB over the tail barely moves
    seg_snr_floor (its floor is tied to the mixture) but costs seg_sdr several dB, as it costs museval.
    Exactly silent segments are left out, as museval leaves them out."""
    g = torch.Generator().manual_seed(2)
    target = 0.1 * torch.randn(1, 5, 2, 88200, generator=g)
    target[:, 4, :, 44100:] *= 1e-3                                     # the cymbal's tail: -60 dB
    mixture = target.sum(1)
    leaky = target.clone()
    leaky[:, 4, :, 44100:] += 3e-4 * torch.randn(1, 2, 44100, generator=g)  # leakage 10 dB over the tail
    cost = {name: float(make_loss(name)(leaky, target, mixture) - make_loss(name)(target, target, mixture))
            for name in ("seg_snr_floor", "seg_sdr")}
    assert cost["seg_sdr"] > 3 and cost["seg_snr_floor"] < 0.5, cost
    silent = target.clone()
    silent[:, 2] = 0.0                                                 # toms digitally silent in this crop
    output_there = silent.clone()
    output_there[:, 2] = 1e-3
    assert float(make_loss("seg_sdr")(output_there, silent, silent.sum(1))) == pytest.approx(
        float(make_loss("seg_sdr")(silent, silent, silent.sum(1))), abs=1e-4)


def test_frame_sdrs_scores_whole_one_second_frames_and_leaves_silent_ones_out():
    from eval.scoring.metrics import frame_sdrs

    g = torch.Generator().manual_seed(0)
    reference = torch.randn(3, 2, int(2.5 * 44100), generator=g) * 0.1  # 3 stems, stereo, 2.5 s
    reference[1, :, 44100:] = 0.0                                         # stem 1 falls silent after 1 s
    noise = torch.randn(reference.shape, generator=g)
    noise = noise / noise[..., :88200].pow(2).mean().sqrt()
    gains = torch.tensor([0.1, 0.01, 0.001])[:, None, None]  # error 20, 40 and 60 dB under each stem
    estimate = reference + noise * gains * 0.1
    sdr, scored = frame_sdrs(reference, estimate)
    assert sdr.shape == scored.shape == (3, 2)  # the half frame at the end is dropped, as museval frames
    assert scored.tolist() == [[True, True], [True, False], [True, True]]
    expected = torch.tensor([20.0, 40.0, 60.0])[:, None].expand(3, 2)
    assert torch.allclose(sdr[scored], expected[scored], atol=0.3), sdr


def test_learning_curve_table_reports_the_metric_asked_for():
    from train.loss_study import markdown

    row = {"step": 10, "seconds": 60.0, "sdr": 5.0, "fsdr": 3.0,
           **{f"sdr_{s}": 5.0 + i for i, s in enumerate(STEMS)}, **{f"fsdr_{s}": 1.0 + i for i, s in enumerate(STEMS)}}
    assert "| run | 10 | 1.0 | 3.00 | 1.00 | 2.00 |" in markdown({"run": [row]}, "fsdr")
    assert "| run | 10 | 1.0 | 5.00 | 5.00 | 6.00 |" in markdown({"run": [row]})

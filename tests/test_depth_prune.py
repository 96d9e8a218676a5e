"""Depth pruning (compress.prune.depth): blocks dropped per stack, a linear stand-in folded into the last kept block."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import tiny_spec
from separation.checkpoint import load_model, save_model
from separation.errors import UserError
from separation.model import TFC_TDF_net

from compress.prune import depth


def deep_model(blocks: int = 2) -> TFC_TDF_net:
    torch.manual_seed(0)
    return TFC_TDF_net(tiny_spec(num_blocks_per_scale=blocks)).eval()


def waves(n: int, seed: int = 1) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [0.3 * torch.randn(1, 2, 512 * 7, generator=gen) for _ in range(n)]


def linear_tails(model: TFC_TDF_net, keep: int) -> None:
    """Zero the residual branch of every block after ``keep``: the dropped tail is then its shortcuts, exactly."""
    with torch.no_grad():
        for stack in depth.stacks(model):
            for block in stack.blocks[keep:]:
                block.tfc2[-1].weight.zero_()


@pytest.mark.parametrize("calibrate", [False, True])
def test_a_linear_tail_is_folded_exactly(calibrate):
    model = deep_model(3)
    linear_tails(model, keep=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cut = depth.drop_blocks(model, keep=1, calibration=waves(3) if calibrate else None, ridge=1e-9)
    x = waves(1, seed=9)[0]
    with torch.no_grad():
        ref, est = model(x), cut(x)
    snr = 10 * torch.log10(ref.pow(2).sum() / (ref - est).pow(2).sum())
    assert snr > 60, f"a tail of shortcuts only should fold exactly, got {snr:.1f} dB"
    # the original is untouched, and the cut one is a plain 1-block model of the same spec otherwise
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert cut.spec.model.num_blocks_per_scale == 1 and model.spec.model.num_blocks_per_scale == 3
    TFC_TDF_net(cut.spec).load_state_dict(cut.state_dict(), strict=True)


def test_least_squares_beats_the_shortcut_stand_in_on_its_own_data():
    model = deep_model(2)
    fit = waves(4)
    by_shortcut = depth.drop_blocks(model, keep=1)
    by_lsq = depth.drop_blocks(model, keep=1, calibration=fit)
    with torch.no_grad():
        ref = torch.cat([model(w) for w in fit])
        err = {name: (ref - torch.cat([m(w) for w in fit])).pow(2).sum().item()
               for name, m in (("shortcut", by_shortcut), ("lsq", by_lsq))}
    assert err["lsq"] < err["shortcut"], err


@pytest.mark.parametrize("keep", [0, 2, 1.0, True])
def test_bad_keep_is_refused(keep):
    with pytest.raises(UserError, match="keep must be an integer from 1 to 1"):
        depth.drop_blocks(deep_model(2), keep=keep)


def test_cli_writes_a_checkpoint_that_loads_strictly(tmp_path):
    ckpt, _ = save_model(deep_model(2), tmp_path / "deep.ckpt")
    calib = tmp_path / "calib"
    rng = np.random.default_rng(0)
    for k in range(2):
        (calib / f"track{k}").mkdir(parents=True)
        sf.write(calib / f"track{k}" / "mixture.wav", 0.2 * rng.standard_normal((44100, 2)), 44100)
    out = tmp_path / "cut" / "shallow.ckpt"
    report = depth.main(["--model", str(ckpt), "--keep", "1", "--calibration", str(calib), "--crops", "2",
                         "--out", str(out)])
    assert report["params_cut"] < report["params"] and np.isfinite(report["snr_to_original_db"])
    cut = load_model(out)
    assert cut.spec.model.num_blocks_per_scale == 1
    assert cut.spec.extras["drumsep_lab"]["depth_keep"] == 1
    # --fit lsq without audio is refused before anything is written
    with pytest.raises(UserError, match="needs --calibration"):
        depth.main(["--model", str(ckpt), "--out", str(tmp_path / "never" / "x.ckpt")])
    assert not (tmp_path / "never").exists()
    json.dumps(report)

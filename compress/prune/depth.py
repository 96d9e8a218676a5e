"""Depth pruning: keep the first ``keep`` residual blocks of every TFC_TDF stack and fold a linear stand-in for the
dropped ones into the last kept block.

    shallow = drop_blocks(model, keep=1, calibration=waves)   # a new TFC_TDF_net with num_blocks_per_scale = keep

Channel pruning (:mod:`.graph`) narrows the layers; the speed ladder (``eval.ladder_speed``) shows that at the
student's width the blocks per scale, not the channels, are what time buys. So this removes whole blocks.

What replaces the dropped tail of a stack. Every block ends ``y = tfc2(...) + shortcut(x)``, both convolutions
without bias, so a ``c x c`` matrix ``M`` applied after the last kept block folds into its ``tfc2`` convolution and its
shortcut exactly. ``M`` is the best linear map, in least squares over the channels, from the tail's input to the
tail's output, fitted on ``calibration`` audio (ridge ``ridge`` x the mean input energy). The stacks are fitted in
forward order on the model as it is being cut, so each fit sees the inputs the cut model will give it. Without
calibration ``M`` is the product of the dropped blocks' shortcut convolutions (their linear path). Either way the
result is an initialisation for distillation, not a finished student.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from separation.errors import UserError
from separation.model import TFC_TDF, TFC_TDF_net


def stacks(model: TFC_TDF_net) -> list[TFC_TDF]:
    """The TFC_TDF stacks in forward order: encoder levels, bottleneck, decoder levels."""
    return ([b.tfc_tdf for b in model.encoder_blocks] + [model.bottleneck_block]
            + [b.tfc_tdf for b in model.decoder_blocks])


def _fold(block: nn.Module, m: torch.Tensor) -> None:
    """Left-multiply the block's output by ``m`` (``c x c``): fold it into tfc2's conv and the shortcut."""
    with torch.no_grad():
        for conv in (block.tfc2[-1], block.shortcut):
            w = conv.weight
            conv.weight.copy_(torch.einsum("oc,cikl->oikl", m.to(torch.float64), w.to(torch.float64)).to(w.dtype))


def _shortcut_product(tail: list[nn.Module]) -> torch.Tensor:
    m = None
    for block in tail:
        s = block.shortcut.weight[:, :, 0, 0].to(torch.float64)
        m = s if m is None else s @ m
    return m


@torch.no_grad()
def _least_squares(model: TFC_TDF_net, stack: TFC_TDF, keep: int, waves: list[torch.Tensor],
                   ridge: float) -> torch.Tensor:
    """``M`` minimising ||tail(y) - M y||^2 over every (time, bin) position of the calibration audio."""
    sums, tail_input = {}, []

    def flat(x):
        return x.transpose(0, 1).reshape(x.shape[1], -1).to(torch.float64)

    def capture_input(module, inputs):  # the first dropped block's shortcut sees exactly the tail's input
        tail_input.append(inputs[0])

    def accumulate(module, inputs, output):
        y, z = flat(tail_input.pop()), flat(output)
        sums["yy"] = sums.get("yy", 0) + y @ y.T
        sums["zy"] = sums.get("zy", 0) + z @ y.T

    handles = [stack.blocks[keep].shortcut.register_forward_pre_hook(capture_input),
               stack.register_forward_hook(accumulate)]
    try:
        for wave in waves:
            model(wave)
    finally:
        for handle in handles:
            handle.remove()
    yy, zy = sums["yy"], sums["zy"]
    lam = ridge * torch.trace(yy) / yy.shape[0]
    return torch.linalg.solve(yy + lam * torch.eye(yy.shape[0], dtype=yy.dtype), zy.T).T


def drop_blocks(model: TFC_TDF_net, keep: int = 1, calibration: list[torch.Tensor] | None = None,
                ridge: float = 1e-4) -> TFC_TDF_net:
    """A copy of ``model`` with ``keep`` blocks per stack (``spec.model.num_blocks_per_scale = keep``); ``model`` is
    not changed. ``calibration``: mixtures ``(B, channels, samples)`` whose length the model accepts."""
    if not isinstance(model, TFC_TDF_net):
        raise UserError(f"depth pruning needs a TFC_TDF_net, got {type(model).__name__}.")
    have = model.spec.model.num_blocks_per_scale
    if not isinstance(keep, int) or isinstance(keep, bool) or not 1 <= keep < have:
        raise UserError(f"keep must be an integer from 1 to {have - 1} (the model has {have} blocks per scale), "
                        f"got {keep!r}.")
    cut = copy.deepcopy(model).eval()
    for stack in stacks(cut):
        tail = list(stack.blocks[keep:])
        m = (_least_squares(cut, stack, keep, calibration, ridge) if calibration
             else _shortcut_product(tail))
        stack.blocks = stack.blocks[:keep]
        _fold(stack.blocks[-1], m)
    cut.spec = model.spec.replace(model={"num_blocks_per_scale": keep})
    return cut


__all__ = ["drop_blocks", "stacks"]


def _parse(argv=None):
    import argparse

    p = argparse.ArgumentParser(prog="python -m compress.prune.depth", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="drumsep-demo-student", help="registry name or checkpoint path (YAML beside)")
    p.add_argument("--keep", type=int, default=1, help="blocks per scale to keep")
    p.add_argument("--calibration", default=None,
                   help="folder of <track>/mixture.wav (or a dataset root with train/) to fit the stand-ins on; "
                        "without it the dropped blocks' shortcut convolutions stand in")
    p.add_argument("--fit", default="lsq", choices=["lsq", "shortcut"],
                   help="lsq: least-squares stand-ins fitted on --calibration; shortcut: the dropped blocks' shortcuts")
    p.add_argument("--crops", type=int, default=16, help="calibration chunks to fit on (as many more are held back "
                                                         "to score the cut model against the original)")
    p.add_argument("--ridge", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="checkpoint to write (MSST format, YAML beside)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Cut, save, and print how close the cut model's stems stay to the original's on held-back calibration crops."""
    import json
    from pathlib import Path

    from separation import load_any
    from separation.checkpoint import save_model

    from ..common import count_params, null_db
    from ..int8_calibration import calibration_files, calibration_mixtures

    args = _parse(argv)
    if args.calibration:
        calibration_files(args.calibration)  # a bad folder fails here, before any work
    elif args.fit == "lsq":
        raise UserError("--fit lsq needs --calibration (a folder of <track>/mixture.wav); or pass --fit shortcut.")
    model = load_any(args.model).eval()
    chunk = model.spec.audio.chunk_size
    waves = (list(calibration_mixtures(args.calibration, chunk, 2 * args.crops, args.seed)[:, None])
             if args.calibration else [])
    fit, check = waves[:args.crops], waves[args.crops:]
    cut = drop_blocks(model, args.keep, calibration=fit if args.fit == "lsq" else None, ridge=args.ridge)
    report = {"model": args.model, "keep": args.keep, "fit": args.fit,
              "fitted_on_crops": len(fit) if args.fit == "lsq" else 0,
              "params": count_params(model), "params_cut": count_params(cut)}
    if check:
        with torch.no_grad():
            ref = torch.cat([model(w) for w in check])
            est = torch.cat([cut(w) for w in check])
        report["snr_to_original_db"] = round(-null_db(est, ref), 2)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(cut, out, extra_meta={"depth_pruned_from": str(args.model), "depth_keep": args.keep})
    report["out"] = str(out)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    from separation.errors import exit_on_user_error

    exit_on_user_error(main)()

"""Which autocast precision to train in, measured on this machine rather than assumed.

On a CPU with AMX tiles (Intel Sapphire Rapids and later) bf16 autocast runs the convolutions several
times faster than fp32: a training step of the c = 32 teacher took 3.14 s against 8.73 s (session 17).
On a CPU without those tiles bf16 may only add casts (expected, not measured in session 17), which is why
the choice is timed. CUDA keeps bf16, the recipe of every GPU run.
"""
from __future__ import annotations

import time
import warnings
from typing import Callable

import torch

PRECISIONS = ("fp32", "bf16")
LIGHTNING = {"fp32": "32-true", "bf16": "bf16-mixed"}  # the same choice, as Lightning's Trainer names it


def autocast_settings(precision: str, device: torch.device) -> dict:
    """``torch.autocast`` keyword arguments for ``precision`` on ``device`` (fp32: disabled)."""
    return {"device_type": device.type, "dtype": torch.bfloat16, "enabled": precision == "bf16"}


def time_step(module: torch.nn.Module, loss_of_step: Callable[[], torch.Tensor], autocast: dict) -> float:
    """Seconds of one forward (``loss_of_step()``) + backward under ``autocast``; the gradients are
    dropped, so ``module``'s weights and any optimiser are untouched."""
    start = time.perf_counter()
    with torch.autocast(**autocast):
        loss = loss_of_step()
    loss.float().backward()
    module.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def choose_precision(requested: str, device: torch.device, module: torch.nn.Module,
                     loss_of_step: Callable[[], torch.Tensor]) -> tuple[str, str]:
    """The precision to train in, and why. ``auto``: bf16 on CUDA; on a CPU each precision is called once
    untimed (oneDNN builds its kernels), then twice interleaved with the other, and the faster of its two
    is kept, so a burst of other work on the machine does not decide."""
    if requested != "auto":
        if requested not in PRECISIONS:
            raise ValueError(f"precision {requested!r}: use auto, {' or '.join(PRECISIONS)}.")
        return requested, f"precision {requested} as configured"
    if device.type == "cuda":
        return "bf16", "auto on CUDA: bf16 autocast"
    settings = {p: autocast_settings(p, device) for p in PRECISIONS}
    with warnings.catch_warnings():  # a LightningModule's self.log outside a Trainer only warns
        warnings.simplefilter("ignore")
        for autocast in settings.values():
            time_step(module, loss_of_step, autocast)
        times = {p: float("inf") for p in settings}
        for _ in range(2):
            for p, autocast in settings.items():
                times[p] = min(times[p], time_step(module, loss_of_step, autocast))
    best = min(times, key=times.get)
    return best, "auto on this CPU, best of two training steps: " + ", ".join(f"{p} {t:.2f} s" for p, t in times.items())


def lightning_precision(requested: str, module, batch_size: int, num_stems: int,
                        accelerator: str = "cpu") -> tuple[str, str]:
    """Lightning's ``Trainer(precision=...)`` for the configured one; ``auto`` on a CPU measures
    ``module.training_step`` on a batch of noise of the training shape (its time does not depend on the
    audio), on a GPU accelerator it is bf16-mixed. Lightning's own names (``32``, ``bf16-mixed``, ...) pass through."""
    if requested != "auto":
        return requested, f"trainer.precision {requested} as configured"
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return LIGHTNING["bf16"], "auto on a GPU accelerator: bf16-mixed"
    chunk = module.model.spec.audio.chunk_size
    g = torch.Generator().manual_seed(0)
    batch = {"mixture": 0.1 * torch.randn(batch_size, 2, chunk, generator=g),
             "stems": 0.02 * torch.randn(batch_size, num_stems, 2, chunk, generator=g)}
    was_training = module.training
    module.train()
    chosen, why = choose_precision("auto", torch.device("cpu"), module, lambda: module.training_step(batch, 0))
    module.train(was_training)
    return LIGHTNING[chosen], why

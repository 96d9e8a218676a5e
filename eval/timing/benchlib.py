"""Measurement helpers shared by eval.timing.speed, eval.tables.pareto and eval.tables.overlap_study: the machine,
peak RSS during a call, FLOPs of one chunk, a matmul peak, model size, test audio."""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from separation import ModelSpec, Runner, TFC_TDF_net, load_any
from separation.errors import UserError
from separation.machine import REPORTED_SIMD_FLAGS, cpu_family_model, cpu_model_and_flags, present_flags

REPO_ROOT = Path(__file__).resolve().parents[2]  # eval/timing/benchlib.py -> the repository
DEFAULT_CONFIG = REPO_ROOT / "separation" / "models" / "drumsep_5stems.yaml"

FLOP_NOTE = ("gflop_per_audio_second = FLOPs of one chunk forward (torch.utils.flop_counter, convolutions "
             "and matmuls; the STFT is not counted) x sample_rate / step, step = chunk_size // num_overlap; "
             "achieved_gflops counts the chunks the runner really ran (incl. border padding).")


def command_string(module: str, argv: list[str] | None = None) -> str:
    """The command line of a benchmark as a user would type it (``python -m eval.speed ...``),
    recorded in every report."""
    return " ".join([Path(sys.executable).name, "-m", module, *(argv or sys.argv[1:])])


def parse_cli(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse a benchmark command line and apply ``--threads`` before any model is built."""
    args = parser.parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return args


def build_model(config: str | None = None, model: str | None = None, width: int | None = None,
                seed: int = 0, weights: str | None = None):
    """The one way eval/ builds a model: a registry name or checkpoint (``model``, with
    ``config``/``weights`` if given), else ``config`` (default: the drumsep YAML) with random
    weights seeded by ``seed``, optionally width-scaled (``num_channels = growth = width``).
    Timing does not depend on the weights' values."""
    if model:
        return load_any(model, config, weights)
    spec = ModelSpec.from_yaml(config or DEFAULT_CONFIG)
    if width:
        spec = spec.replace(model={"num_channels": width, "growth": width})
    torch.manual_seed(seed)
    return TFC_TDF_net(spec).eval()


def machine_info() -> dict:
    """CPU model, cores and library versions: every report carries the machine it ran on."""
    cpu, flags = cpu_model_and_flags()
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:
        available = os.cpu_count()
    info = {"cpu": cpu, "cpu_family_model": cpu_family_model(), "cores": os.cpu_count(), "cores_available": available,
            "torch_threads": torch.get_num_threads(), "torch": str(torch.__version__),
            "numpy": np.__version__, "python": platform.python_version(), "platform": platform.platform()}
    if flags:
        info["simd"] = present_flags(REPORTED_SIMD_FLAGS)
    if hasattr(os, "getloadavg"):  # other jobs on the machine distort timings: say how busy it was
        info["loadavg_1min"] = round(os.getloadavg()[0], 2)
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


class PeakRSS:
    """Resident memory inside a ``with`` block: ``peak_mb`` is the peak *growth* over the RSS at
    entry (what the separation itself needs: the number compared between variants, reported as
    ``peak_rss_mb``), ``total_mb`` the absolute peak of the process (``peak_rss_total_mb``: add
    the interpreter, torch and whatever earlier variants left allocated).

    ``VmHWM``/``ru_maxrss`` are process-lifetime maxima, useless for the second of two variants
    timed in one process, so a daemon thread samples the current RSS every ``interval`` s."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak_mb, self.total_mb = interval, 0.0, 0.0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._proc = os.path.exists("/proc/self/statm")

    def _rss(self) -> int:
        if self._proc:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * self._page
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # lifetime max: an upper bound
        return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB elsewhere

    def _sample(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, self._rss())
            time.sleep(self.interval)

    def __enter__(self):
        self._base = self._peak = self._rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._rss())
        self.peak_mb = (self._peak - self._base) / 2**20
        self.total_mb = self._peak / 2**20
        return False


def time_call(fn) -> tuple[object, float, PeakRSS]:
    """Run ``fn()``; returns (result, seconds, the :class:`PeakRSS` of the call)."""
    with PeakRSS() as rss:
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
    return result, seconds, rss


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 ``n x n`` matmul GFLOP/s: the machine's practical ceiling in this run."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def count_chunk_flops(model, chunk_size: int, channels: int = 2, device="cpu") -> float | None:
    """FLOPs of one ``(1, channels, chunk_size)`` forward; None for modules the counter cannot see
    (an ONNX session, a compiled graph)."""
    from torch.utils.flop_counter import FlopCounterMode

    if not isinstance(model, torch.nn.Module):
        return None
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, channels, chunk_size, device=device))
    except Exception:  # an exotic kernel the counter does not support: report no FLOPs
        return None
    return float(counter.get_total_flops()) or None


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a tensor really stores; for torchao's int8 tensor subclasses, those of their int8
    data and scales (``numel * element_size`` would report the original float size)."""
    if hasattr(t, "__tensor_flatten__") and type(t) is not torch.Tensor and not isinstance(t, torch.nn.Parameter):
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    if isinstance(t, torch.nn.Parameter) and type(t.data) is not torch.Tensor:
        return tensor_bytes(t.data)
    return t.numel() * t.element_size()


def model_size_mb(model: torch.nn.Module) -> float:
    """MiB of parameters and buffers as stored (int8 where quantized)."""
    return sum(tensor_bytes(t) for t in [*model.parameters(), *model.buffers()]) / 2**20


def warm_up(runner: Runner, channels: int = 2) -> None:
    """One untimed batch through exactly what the runner will call (compiled graph, autocast,
    device), so first-call costs (torch.compile, ONNX session set-up, allocator growth) stay
    out of the timings. The input is made outside inference mode, as the runner makes its batch:
    an inference tensor has another dispatch-key set, and torch.compile's guards would then
    recompile on the first timed call (seen on the full model: 163 s instead of ~20 s).

    A runner with the Wiener post-filter also waits here for its background load of the compiled kernels: on a
    machine's first use numba compiles them (~9 s), which would otherwise land inside the first timed track.
    (Loading them a second time from this thread instead made numba's TBB pool warn at museval's forks.)"""
    if runner.wiener_preload is not None:
        runner.wiener_preload.join()
    chunk = torch.zeros(runner.batch_size, channels, runner.chunk_size, device=runner.device)
    with torch.inference_mode(), runner._autocast():
        runner.model(chunk)


def model_stats(model, chunk_size: int, num_overlap: int, sample_rate: int = 44100, device="cpu") -> dict:
    """``params``, ``size_mb`` (tensor bytes), ``gflop_per_chunk`` and ``gflop_per_audio_second``.

    Non-``nn.Module`` callables (ONNX) may expose ``num_params`` / ``size_mb`` attributes."""
    if isinstance(model, torch.nn.Module):
        params = sum(p.numel() for p in model.parameters())
        size_mb = model_size_mb(model)
    else:
        params, size_mb = getattr(model, "num_params", None), getattr(model, "size_mb", None)
    flops = count_chunk_flops(model, chunk_size, device=device)
    step = chunk_size // num_overlap
    return {"params": params, "size_mb": size_mb,
            "gflop_per_chunk": flops / 1e9 if flops else None,
            "gflop_per_audio_second": flops / 1e9 * sample_rate / step if flops else None}


def check_chunk_size(model, chunk_size: int) -> None:
    """Refuse a chunk whose STFT frame count the U-Net cannot halve ``num_scales`` times."""
    spec = getattr(model, "spec", None)
    if spec is None:
        return
    frames, factor = chunk_size // spec.audio.hop_length + 1, spec.model.scale[0] ** spec.model.num_scales
    if frames % factor:
        raise UserError(f"chunk_size={chunk_size} gives {frames} STFT frames, not divisible by {factor}; "
                        f"use hop_length * (k * {factor} - 1), e.g. {spec.audio.hop_length * (256 - 1)}.")


def runner_for(model, kwargs: dict, progress: bool = False) -> Runner:
    """A :class:`Runner` for ``model``; ``chunk_size`` defaults to the model's training chunk."""
    kwargs = {k: v for k, v in dict(kwargs).items() if v is not None}
    if "chunk_size" not in kwargs:
        spec = getattr(model, "spec", None)
        if spec is None:
            raise UserError("this model carries no config (no .spec): give its runner a chunk_size.")
        kwargs["chunk_size"] = spec.audio.chunk_size
    check_chunk_size(model, kwargs["chunk_size"])
    kwargs.setdefault("device", "cpu")
    try:
        return Runner(model, progress=progress, **kwargs)
    except (ValueError, TypeError) as err:
        raise UserError(f"invalid runner settings {kwargs}: {err}.") from None


def synthetic_mix(seconds: float, sample_rate: int = 44100, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Drum-like ``(channels, samples)`` float32: decaying noise hits on a grid plus a low sine.

    For timing only (speed does not depend on content); deterministic so runs compare."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n, dtype=np.float32) / sample_rate
    audio = 0.05 * np.sin(2 * np.pi * 55 * t, dtype=np.float32) * np.exp(-((t * 2) % 1) * 8, dtype=np.float32)
    hit = int(0.125 * sample_rate)
    env = np.exp(-np.arange(hit, dtype=np.float32) / (0.02 * sample_rate))
    out = np.repeat(audio[None], channels, 0)
    for start in range(0, n, hit):
        seg = min(hit, n - start)
        noise = rng.standard_normal((channels, seg), dtype=np.float32)
        out[:, start:start + seg] += 0.2 * rng.random() * env[:seg] * noise
    return out.astype(np.float32)

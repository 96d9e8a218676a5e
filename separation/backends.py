"""Inference backends for the one runner: ``torch``, ``winograd``, ``compile``, ``onnx``, ``onnx-winograd``,
``openvino``, ``openvino-winograd``, ``auto``.

    separator, why = prepare_backend(model, "auto")        # what Runner(separator, ...) runs
    Runner(separator, chunk_size=model.spec.audio.chunk_size).separate(mix)

Every variant (teacher, student, pruned) goes through the same export: the spectral core is
written to ONNX once (:func:`separation.onnx_backend.export_onnx`) and cached under
``~/.cache/drumsep-lab/exports`` by the SHA-256 of its weights + config + backend version, so a
second run loads the file. ``auto`` times one chunk on every backend that loads here, keeps the
fastest, and caches that choice per machine (CPU model, flags, threads) and model; the JSON it
writes says why. A backend that cannot load never falls back silently: it raises one
:class:`UserError` that says how to install it (``auto`` reports it in ``why`` and skips it).
``winograd`` is torch eager with every 3x3 convolution computed by Winograd F(4x4, 3x3)
(:mod:`separation.winograd`: 4x fewer multiplies, the same output to rounding). ``openvino-winograd``
is OpenVINO running an export in which the 3x3 convolutions of at least
:data:`WINOGRAD_MIN_CHANNELS` input channels are Winograd graphs (where OpenVINO's direct convolution
loses to them; :mod:`eval.timing.winograd_probe`). ``onnx-winograd`` is ONNX Runtime running an export in
which the 3x3 convolutions of at least :data:`ONNX_WINOGRAD_MIN_CHANNELS` input and output channels are
Winograd F(4x4, 3x3) written as convolutions and batched MatMuls
(:func:`separation.winograd.onnx_winograd_conv`), which ONNX Runtime runs in its own tuned kernels.
``onnx-streams`` and ``onnx-winograd-streams`` run the same exports with one single-thread ONNX Runtime call
per core, each on its own chunk of the Runner's batch (:class:`separation.onnx_backend.OnnxSeparator`'s
``streams``): on the full model, onnx-winograd-streams ran 1.11-1.17x onnx-winograd through the runner, bit for
bit the same output (Zen 4 EPYC, ``results/backends/full_cpu_30s_o4_streams_zen4_s31.json``).
"""
from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from .atomic_io import atomic_write_text
from .errors import UserError
from .machine import allocator_setting, cpu_model_and_flags
from .pretrained import cache_dir
from .runner import autocast_for

BACKENDS = ("torch", "winograd", "compile", "onnx", "onnx-winograd", "onnx-streams", "onnx-winograd-streams",
            "openvino", "openvino-winograd")
RUNTIME_MODULE = {"onnx": "onnxruntime", "onnx-winograd": "onnxruntime", "onnx-streams": "onnxruntime",
                  "onnx-winograd-streams": "onnxruntime", "openvino": "openvino", "openvino-winograd": "openvino"}
STREAMS = "-streams"  # onnx(-winograd)-streams: the same export, one single-thread run per core on its own chunk
# From this many input channels up the 3x3 convs are Winograd graphs. One TFC block (AVX2 EPYC,
# results/backends/winograd_openvino_probe.json): 0.76x direct at 128 channels, 1.17x at 256, 1.53x at 384; the
# whole model's core in OpenVINO (11.8-s chunk, an ad-hoc script): 17.75 s direct, 16.62 s from 384 up, 16.32 s from 512 up
# and, single rounds through the runner, 22.1 against 20.2 s direct from 256 up, 22.1 against 17.5 s from 512 up
# (results/backends/full_cpu_openvino_winograd_o1.json); 3 interleaved rounds: see CANDIDATES below.
WINOGRAD_MIN_CHANNELS = 512
# onnx-winograd: the 3x3 convs with at least this many input and output channels, i.e. every 3x3 conv of the full
# model. Session 32 (Zen 4 EPYC, results/backends/zen4_s32_profile/): the scale-0 convs (128 channels, 1024 x 256
# frames x bins) alone in ONNX Runtime on one thread took 0.50 s as folded Winograd against 0.71 s direct
# (256 -> 128: 0.88 against 1.44 s); one chunk of the core in steady state on one thread 14.2 s from 128 up
# against 17.2 s from 256 up, and on two threads, both with NCHWc, 1.05x (4 interleaved rounds; weights of two
# different random draws). The earlier threshold of 256 came from per-block timings at scale 0 on two threads with
# the NCHWc rewrite (0.4-1.5x per block, the layout reorders counted against Winograd; see ONNX_NCHWC below).
ONNX_WINOGRAD_MIN_CHANNELS = 128
# Whether each ONNX backend's session keeps ONNX Runtime's NCHWc layout rewrite (graph level ALL) or stops at
# EXTENDED. The Winograd export's transforms reshape and transpose between its convs, so NCHWc wraps them in
# layout reorders (1.7 s of 14.2 s on one chunk): without it the same export ran 1.047x faster on one thread and
# 1.064x on two (4 interleaved rounds each, null between the two -77 dB; zen4_s32_profile/interleave_*.log).
# Plain onnx keeps NCHWc, where its direct convs run blocked.
ONNX_NCHWC = {"onnx": True, "onnx-winograd": False}


def onnx_winograd_convs(model) -> int:
    """How many of ``model``'s 3x3 convolutions ``onnx-winograd`` exports as Winograd graphs."""
    from .winograd import is_target

    return sum(is_target(mod, ONNX_WINOGRAD_MIN_CHANNELS, ONNX_WINOGRAD_MIN_CHANNELS) for mod in model.modules())


def cache_root() -> Path:
    return cache_dir().parent  # ~/.cache/drumsep-lab (or $DRUMSEP_CACHE), beside checkpoints/


def backend_version(backend: str) -> str:
    if backend.startswith("onnx"):
        import onnxruntime
        return f"onnxruntime-{onnxruntime.__version__}"
    if backend.startswith("openvino"):
        import openvino
        return f"openvino-{openvino.__version__}"
    return f"torch-{torch.__version__}"


def model_key(model, backend: str) -> str:
    """SHA-256 of the weights, the config and the backend's version (what an export depends on)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(model.spec.to_yaml().encode())
    digest.update(backend.encode())  # the export's graph differs per backend (e.g. its Winograd form)
    digest.update(backend_version(backend).encode())
    digest.update(torch.__version__.encode())  # the exporter
    return digest.hexdigest()[:24]


def _require(backend: str) -> None:
    module = RUNTIME_MODULE.get(backend)
    if module is None:
        return
    try:
        __import__(module)
        __import__("onnx")
    except ImportError:
        raise UserError(f"backend {backend} needs {module}, which is not installed: pip install {module} onnx") from None


def exported_onnx(model, backend: str, log: Callable[[str], None] = print) -> Path:
    """The cached ONNX file of ``model``'s spectral core (exported on first use; a ``-streams``
    backend shares its base backend's file)."""
    from .onnx_backend import export_onnx

    backend = backend.removesuffix(STREAMS)
    path = cache_root() / "exports" / f"{model_key(model, backend)}.onnx"
    if not path.is_file():
        log(f"exporting the model to ONNX for {backend} (once; cached as {path})")
        export_onnx(model.cpu().eval(), path)
    return path


def sized_for_chunk(model, chunk_size: int | None):
    """``model`` with its config's chunk set to ``chunk_size`` (same weights, shared modules), for
    an export that takes that chunk: the exported graph's frame count is fixed, the network itself
    is convolutional in time. An invalid chunk fails in the config's own check, in one sentence."""
    audio = model.spec.audio
    if not chunk_size or chunk_size == audio.chunk_size:
        return model
    sized = copy.copy(model)  # a shallow copy: the same submodules and parameters
    sized.spec = model.spec.replace(audio={"chunk_size": chunk_size, "dim_t": chunk_size // audio.hop_length + 1})
    return sized


def prepare_backend(model, backend: str = "torch", threads: int | None = None, device: str = "cpu",
                    log: Callable[[str], None] = print, precision: str = "fp32", chunk_size: int | None = None):
    """A callable ``(B, C, L) -> (B, S, C, L)`` running ``model`` on ``backend`` (not ``auto``).

    ``precision`` matters to ``openvino`` only (``bf16``: its own bf16 inference); the torch
    backends take the precision from the Runner's autocast. ``chunk_size`` is the Runner's: the
    exported runtimes are exported (and cached) for it, where it differs from the config's."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)} or auto.")
    if backend == "torch":
        return model
    if backend == "winograd":
        from .winograd import winograd_model
        return winograd_model(model)
    if backend == "compile":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # folds the eval-mode weights into the graph as constants
        return torch.compile(model.eval())
    _require(backend)
    streams, base = backend.endswith(STREAMS), backend.removesuffix(STREAMS)
    model = sized_for_chunk(model, chunk_size)
    if base == "openvino-winograd":
        from .winograd import winograd_model
        model = winograd_model(model, min_channels=WINOGRAD_MIN_CHANNELS, graph="openvino")
    if base == "onnx-winograd":
        from .winograd import winograd_model
        model = winograd_model(model, min_channels=ONNX_WINOGRAD_MIN_CHANNELS,
                               min_out_channels=ONNX_WINOGRAD_MIN_CHANNELS, graph="onnx")
    path = exported_onnx(model, base, log)
    threads = threads or torch.get_num_threads()
    if base.startswith("onnx"):
        from .onnx_backend import OnnxSeparator
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else None
        return OnnxSeparator(path, model.spec, threads=threads, providers=providers,
                             streams=threads if streams else 1, nchwc=ONNX_NCHWC[base])
    from .onnx_backend import OpenVinoSeparator
    return OpenVinoSeparator(path, model.spec, threads=threads, precision=precision)


def machine_key(threads: int) -> tuple[str, str]:
    cpu, flags = cpu_model_and_flags()
    return hashlib.sha256(f"{cpu}|{flags}|{threads}".encode()).hexdigest()[:16], cpu


# What each precision can run on (CPU). OpenVINO runs bf16 itself; the torch backends through autocast.
# openvino-winograd is not a candidate: on the full model it measured level with openvino (median of 3
# interleaved rounds 1.69x against 1.76x the reference, results/backends/full_cpu_o1_repeats3.json), and on
# models narrower than WINOGRAD_MIN_CHANNELS it is the same graph, so auto would only pay a second export.
# onnx-winograd is one: on the full model it ran 1.28x plain onnx (median of 5 interleaved rounds, 2.05x against 1.59x
# the reference, results/backends/full_cpu_o1_onnx_winograd_repeats5.json); on a model with no 3x3 conv that wide
# (every student, the demo teacher) its graph is plain onnx's, so auto skips it there instead of exporting twice.
CANDIDATES = {"fp32": ("torch", "winograd", "compile", "onnx", "onnx-winograd", "onnx-streams", "onnx-winograd-streams",
                       "openvino"),
              "bf16": ("torch", "compile", "openvino"),
              "fp16": ("torch",)}


def runner_precision(backend: str, precision: str) -> str:
    """The precision the Runner's autocast applies around ``backend``: OpenVINO runs bf16 itself
    (set when it is prepared), so its Runner stays fp32; the torch backends use autocast."""
    return "fp32" if backend.startswith("openvino") else precision


def time_chunk(separator, chunk: torch.Tensor, repeats: int = 2, precision: str = "fp32") -> tuple[float, float]:
    """(first call, best of ``repeats`` later calls) in seconds per chunk, under the Runner's autocast
    for ``precision``: the first call pays compile and caches. A separator with ``streams`` gets that
    many chunks per call, as the Runner gives it, and its time is divided by them."""
    streams = getattr(separator, "streams", 1)
    batch = chunk.expand(streams, *chunk.shape[1:]).contiguous() if streams > 1 else chunk
    with torch.no_grad(), autocast_for(precision, "cpu"):
        start = time.perf_counter()
        separator(batch)
        first = time.perf_counter() - start
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            separator(batch)
            best = min(best, time.perf_counter() - start)
    return first, best / streams


def choose_backend(model, candidates=None, threads: int | None = None, precision: str = "fp32",
                   log: Callable[[str], None] = print, refresh: bool = False) -> tuple[str, dict]:
    """The fastest backend for ``model`` at ``precision`` on this machine, measured once and cached; and why.

    Ranked by the steady per-chunk time. The first call's cost (export, or compile for ``compile``,
    which every new process pays again) is recorded beside it as ``first_call_seconds``. Below fp32
    the winner is timed in fp32 as well (``fp32_seconds_per_chunk``), and ``advice`` says so where the
    lower precision buys no speed on this CPU (:func:`_against_fp32`). The choice is cached per machine,
    thread count, precision, model and malloc setting (:func:`~separation.machine.keep_freed_memory`:
    the CLIs keep freed memory, a notebook's process does not, and torch eager times differently)."""
    if precision not in CANDIDATES:
        raise UserError(f"unknown precision {precision!r}; choose from {', '.join(CANDIDATES)}.")
    candidates = tuple(candidates or CANDIDATES[precision])
    threads = threads or torch.get_num_threads()
    mkey, cpu = machine_key(threads)
    allocator = allocator_setting()  # torch eager timed 26.9 against 18.5 s a chunk without kept memory (Zen 3)
    alloc_key = "kept" if allocator != "default" else "default"
    record_path = cache_root() / "auto" / f"{mkey}-{precision}-{alloc_key}-{model_key(model, 'torch')}.json"
    # Build the input outside inference mode, as the Runner does: compile guards on it.
    chunk = torch.randn(1, model.spec.audio.num_channels, model.spec.audio.chunk_size) * 0.1
    if record_path.is_file() and not refresh:
        record = json.loads(record_path.read_text())
        if set(record["seconds_per_chunk"]) | set(record["skipped"]) >= set(candidates):
            if precision != "fp32" and not {"fp32_seconds_per_chunk", "fp32_skipped"} & set(record):
                # a record from before the fp32 comparison: add it, keep the rest
                best = record["backend"]
                record.update(_against_fp32(model, best, record["seconds_per_chunk"][best], precision, threads,
                                            chunk, log))
                atomic_write_text(record_path, json.dumps(record, indent=1))
            return record["backend"], record
    seconds, first_call, skipped = {}, {}, {}
    for name in candidates:
        if name.startswith("onnx-winograd") and not onnx_winograd_convs(model):
            skipped[name] = (f"no 3x3 convolution with >= {ONNX_WINOGRAD_MIN_CHANNELS} input and output channels: "
                             "the same graph as onnx")
            continue
        if name.endswith(STREAMS) and threads < 2:
            skipped[name] = f"one thread: {name} would run as {name.removesuffix(STREAMS)}"
            continue
        try:
            separator = prepare_backend(model, name, threads, log=log, precision=precision)
            first, best = time_chunk(separator, chunk, precision=runner_precision(name, precision))
            first_call[name], seconds[name] = round(first, 4), round(best, 4)
            log(f"auto: {name} {precision} {best:.3f} s per chunk (first call {first:.1f} s)")
        except UserError as err:
            skipped[name] = str(err)
        separator = None  # free one backend's graph before the next is built
    best = min(seconds, key=seconds.get)
    record = {"backend": best, "precision": precision, "seconds_per_chunk": seconds,
              "first_call_seconds": first_call, "skipped": skipped, "cpu": cpu, "threads": threads,
              "allocator": allocator,
              "why": f"{best} was fastest at {precision} on one {model.spec.audio.chunk_size}-sample chunk of "
                     f"this model here (steady state; first_call_seconds holds each one's start-up)",
              "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_text(record_path, json.dumps(record, indent=1))  # kept even if the fp32 check below fails
    if precision != "fp32":
        record.update(_against_fp32(model, best, seconds[best], precision, threads, chunk, log))
        atomic_write_text(record_path, json.dumps(record, indent=1))
    return best, record


# fp32 must beat the lower precision by this factor before auto advises it: one best-of-2 timing of each
# swings by ~5 % on these VMs, and a near tie is no reason to switch.
FP32_ADVICE_MARGIN = 0.95


def _against_fp32(model, backend: str, seconds: float, precision: str, threads: int, chunk: torch.Tensor,
                  log: Callable[[str], None]) -> dict:
    """The chosen backend timed once more in fp32: whether the lower ``precision`` buys speed on this CPU
    at all. It need not: on a 2-core Intel Xeon (family 6 model 207, Emerald Rapids class) whose VM exposes
    AVX-512 BF16/FP16 but not AMX, OpenVINO's bf16 ran student b1 at 35-54 ms per chunk against 35-38 ms in
    fp32, and the full model at 16.5 s against 11.7 s, while on the Zen 5 EPYC bf16 ran 2-3x faster.
    ``advice`` is set where fp32 took at most :data:`FP32_ADVICE_MARGIN` of the lower precision's time."""
    try:
        separator = prepare_backend(model, backend, threads, log=log, precision="fp32")
        _, fp32 = time_chunk(separator, chunk, precision=runner_precision(backend, "fp32"))
        fp32 = round(fp32, 4)  # as the record keeps both times, so the advice agrees with them
    except UserError as err:
        return {"fp32_skipped": str(err)}
    log(f"auto: {backend} fp32 {1000 * fp32:.1f} ms per chunk (against {1000 * seconds:.1f} ms in {precision})")
    out = {"fp32_seconds_per_chunk": fp32}
    if fp32 <= FP32_ADVICE_MARGIN * seconds:
        out["advice"] = (f"{backend} ran {1000 * fp32:.1f} ms per chunk in fp32 against {1000 * seconds:.1f} ms in "
                         f"{precision} on this CPU ({seconds / fp32:.2f}x): {precision} buys no speed here, and "
                         f"--precision fp32, the reference precision, is faster.")
    return out


def main(argv=None) -> None:
    """``python -m separation.backends MODEL [--precision bf16] [--threads 2] [--refresh]``: what
    ``--backend auto`` picks for MODEL on this machine, and the timings behind it (JSON)."""
    import argparse

    from . import load_any

    p = argparse.ArgumentParser(prog="python -m separation.backends", description=main.__doc__)
    p.add_argument("model", help="registry name or checkpoint")
    p.add_argument("--config", default=None)
    p.add_argument("--precision", default="fp32", choices=list(CANDIDATES))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--refresh", action="store_true", help="measure again instead of reading the cached choice")
    args = p.parse_args(argv)
    from .machine import keep_freed_memory

    # the allocator `separate --backend auto` runs (and caches its choice) under, so this prints that choice
    keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        _, record = choose_backend(load_any(args.model, args.config), threads=args.threads,
                                   precision=args.precision, refresh=args.refresh,
                                   log=lambda msg: print(msg, file=sys.stderr))
    except UserError as err:
        raise SystemExit(f"error: {err}") from None
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()

"""``python -m compress.runtime_int8``: static int8 through the runtimes' own tools, timed.

    onnx = export_onnx(model, "work/fp32.onnx")                          # the spectral core, fp32
    spectra = calibration_spectra(model.spec, calibration_mixtures("data/rendered", chunk, 8))
    quantize_onnx_static(onnx, spectra, "work/int8_ort.onnx")          # -> OnnxSeparator
    quantize_openvino(onnx, spectra, "work/int8_openvino.xml")         # -> OpenVinoSeparator
    Runner(load_int8_separator("work/int8_openvino.xml"), chunk_size=chunk).separate(mix)

The mechanism lives in :mod:`compress.int8_calibration` (what this CPU allows, calibration input),
:mod:`compress.int8_quantize` (ONNX Runtime ``quantize_static``, OpenVINO NNCF, loaders) and
:mod:`compress.int8_inspect` (op coverage, per-op profile). This module is the command line: it
exports fp32 once, builds both int8 models, times everything through the Runner on the same audio
in one process and prints JSON::

    python -m compress.runtime_int8 --config separation/models/drumsep_5stems.yaml \\
        --runtimes onnx,openvino --calibration data/rendered --seconds 12 --threads 2 --out-json q.json
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from separation.atomic_io import atomic_write_text
from separation.errors import UserError, exit_on_user_error

from .int8_calibration import calibration_files, calibration_mixtures, calibration_spectra, cpu_int8_support
from .int8_inspect import op_coverage, profile_ops
from .int8_quantize import (DEFAULT_KEEP_FP32, ORT_OP_TYPES, OV_OP_TYPES, RUNTIMES, load_int8_separator,
                            quantize_onnx_static, quantize_openvino)

RUNTIME_NAMES = {"torch": "torch", "onnx": "onnxruntime", "openvino": "openvino"}


def _db(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 2)


def _log(msg: str) -> None:
    print(f"[runtime_int8] {msg}", file=sys.stderr, flush=True)


def drum_mix(seconds: float, sample_rate: int = 44100) -> tuple[np.ndarray, str]:
    """Deterministic real-sounding drums ``(2, n)`` rendered from drumdata's procedural kit
    (not one of the held-out kits, not the calibration audio)."""
    from drumdata.mixer import mix, render_clip
    from drumdata.synth import synth_kit

    for seed in range(10):
        clip = render_clip(synth_kit("synthetic-A"), seconds, np.random.default_rng(seed))
        if clip is not None:  # None: a silent clip
            audio = np.ascontiguousarray(mix(clip[0])[:, : int(round(seconds * sample_rate))], dtype=np.float32)
            return audio, f"drumdata render_clip(synth_kit('synthetic-A'), seed {seed})"
    raise UserError("could not render a non-silent drum clip; pass --audio FILE.")


def build_parser() -> argparse.ArgumentParser:
    from eval.timing.benchlib import DEFAULT_CONFIG

    p = argparse.ArgumentParser(prog="python -m compress.runtime_int8", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="MSST YAML of the model")
    p.add_argument("--weights", help="checkpoint or registry name (default: random weights, seeded; timing does not depend on them)")
    p.add_argument("--runtimes", default="onnx,openvino", help="comma-separated: onnx (ONNX Runtime), openvino")
    p.add_argument("--calibration", required=True, help="folder of <track>/mixture.wav, or a dataset root with train/")
    p.add_argument("--crops", type=int, default=8, help="calibration chunks (one per track where possible)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-fp32", default=",".join(DEFAULT_KEEP_FP32),
                   help="comma-separated module prefixes left in fp32 ('none': quantize every conv/matmul)")
    p.add_argument("--preset", default="mixed", choices=["mixed", "performance"], help="NNCF preset (OpenVINO)")
    p.add_argument("--seconds", type=float, default=12.0, help="length of the timed drum clip")
    p.add_argument("--audio", help="time this recording instead of the rendered drum clip")
    p.add_argument("--threads", type=int, default=2, help="torch, ONNX Runtime and OpenVINO threads")
    p.add_argument("--num-overlap", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--chunk-size", type=int, help="Runner chunk (default: the config's; the ONNX graph is fixed to it)")
    p.add_argument("--repeats", type=int, default=1, help="time each row this many times, keep the best (a shared CPU is noisy)")
    p.add_argument("--workdir", help="keep the fp32/int8 models here (default: a temporary folder, removed)")
    p.add_argument("--profile", action="store_true", help="also profile one spectral-core call per runtime row by op type")
    p.add_argument("--bf16", action="store_true",
                   help="openvino: also time its bf16 (the fp32 graph) and the int8 graph with its float layers in bf16")
    p.add_argument("--out-json", help="write the JSON here too (atomically)")
    return p


def _time_variant(name: str, separator, mix, runner_kwargs: dict, peak: float, outputs: dict,
                  repeats: int = 1) -> dict:
    """eval.timing's own measurement (one warm-up batch, then ``Runner.separate`` of ``mix``), best
    of ``repeats``; ``seconds_all`` keeps every run, ``loadavg_1min`` how busy the machine was."""
    from eval.timing.measure import benchmark_variants

    chunk = runner_kwargs["chunk_size"]
    stats = {(name, chunk, runner_kwargs["num_overlap"]): {"params": None, "size_mb": None, "gflop_per_chunk": None,
                                                           "gflop_per_audio_second": None}}
    runs = [benchmark_variants({name: separator}, mix, runner_kwargs, reference_variant=name, matmul_peak=peak,
                               stats=stats, outputs=outputs, warmup=k == 0)[0] for k in range(max(1, repeats))]
    best = min(runs, key=lambda r: r["seconds"])
    best["seconds_all"] = [round(r["seconds"], 3) for r in runs]
    best["loadavg_1min"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    return best


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    from separation import load_any
    from separation.audio import read_audio
    from separation.onnx_backend import OnnxSeparator, OpenVinoSeparator, export_onnx
    from eval.timing.benchlib import (build_model, command_string, machine_info, matmul_peak_gflops,
                                      model_size_mb, parse_cli)
    from eval.timing.measure import null_db

    args = parse_cli(build_parser(), argv)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    bad = [r for r in runtimes if r not in RUNTIMES]
    if bad or not runtimes:
        raise UserError(f"--runtimes {args.runtimes!r}: choose from {', '.join(RUNTIMES)}.")
    if args.seconds <= 0:
        raise UserError("--seconds must be positive.")
    if args.bf16 and "openvino" not in runtimes:
        raise UserError("--bf16 adds OpenVINO rows: add openvino to --runtimes.")
    keep = () if args.keep_fp32.strip().lower() in ("", "none") else tuple(k.strip() for k in args.keep_fp32.split(",") if k.strip())
    calibration_files(args.calibration)  # refuse a bad folder before any export
    torch.manual_seed(args.seed)
    model = load_any(args.weights, args.config) if args.weights else build_model(args.config, seed=args.seed)
    model = model.float().eval()
    spec = model.spec
    chunk = args.chunk_size or spec.audio.chunk_size
    if chunk != spec.audio.chunk_size:
        raise UserError(f"--chunk-size {chunk}: the exported graph takes chunks of {spec.audio.chunk_size} samples.")
    sr = spec.audio.sample_rate
    if args.audio:
        audio = read_audio(args.audio)[0]
        mix, source = np.ascontiguousarray(audio[:2, : int(args.seconds * sr)], dtype=np.float32), args.audio
    else:
        mix, source = drum_mix(args.seconds, sr)
    runner_kwargs = {"chunk_size": chunk, "num_overlap": args.num_overlap, "batch_size": args.batch_size,
                     "device": "cpu"}
    support = cpu_int8_support()
    cpu = support["cpu"]
    peak = matmul_peak_gflops()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="drumsep-runtime-int8-"))
    rows, outputs, extra = [], {}, {}

    def row_for(runtime: str, precision: str, timed: dict, build: str | None, build_seconds, size_mb,
                reference=None, runtime_fp32=None, path=None) -> tuple[dict, np.ndarray]:
        out = outputs.pop(f"{runtime}:{precision}")
        row = {"runtime": RUNTIME_NAMES[runtime], "precision": precision, "seconds": round(timed["seconds"], 3),
               "seconds_all": timed["seconds_all"],
               "seconds_per_audio_minute": round(timed["seconds_per_audio_minute"], 2), "rtf": round(timed["rtf"], 4),
               "speed_ratio_vs_torch_fp32": None, "null_db_vs_torch_fp32": None,
               "null_db_vs_runtime_fp32": None, "build": build,
               "build_seconds": None if build_seconds is None else round(build_seconds, 2),
               "size_mb": round(size_mb, 2), "peak_rss_mb": round(timed["peak_rss_mb"], 1),
               "loadavg_1min": timed["loadavg_1min"], "file": str(path) if path and args.workdir else None,
               "cpu": cpu, "cpu_flags": support["flags"]}
        if reference is not None:
            row["null_db_vs_torch_fp32"] = _db(null_db(out, reference))
        if runtime_fp32 is not None:
            row["null_db_vs_runtime_fp32"] = _db(null_db(out, runtime_fp32))
        _log(json.dumps({k: row[k] for k in ("runtime", "precision", "seconds", "null_db_vs_torch_fp32")}))
        return row, out

    def bf16_row(precision: str, sep, build: str, build_seconds: float, runtime_fp32, path) -> dict:
        """An OpenVINO row whose float layers run in bf16 (AMX tiles where the CPU has them)."""
        _log(f"openvino {precision}")
        timed = _time_variant(f"openvino:{precision}", sep, mix, runner_kwargs, peak, outputs, args.repeats)
        row = row_for("openvino", precision, timed, build, build_seconds, sep.size_mb, reference, runtime_fp32, path=path)[0]
        caps = support.get("openvino", {}).get("optimization_capabilities", [])
        if "BF16" not in caps:  # OpenVINO ignores the bf16 hint on such a CPU: say so beside the row
            row["note"] = (f"OpenVINO offers no BF16 on this CPU (capabilities {', '.join(caps)}): "
                           "its float layers ran in fp32")
        return row

    try:
        _log(f"torch fp32 eager on {mix.shape[-1] / sr:.1f} s of audio ({args.threads} threads)")
        timed = _time_variant("torch:fp32", model, mix, runner_kwargs, peak, outputs, args.repeats)
        row, reference = row_for("torch", "fp32", timed, None, None, model_size_mb(model))
        rows.append(row)

        start = time.perf_counter()
        fp32_onnx = export_onnx(model, workdir / "fp32.onnx")
        export_seconds = time.perf_counter() - start
        _log(f"exported the fp32 core in {export_seconds:.1f} s")
        mixtures = calibration_mixtures(args.calibration, chunk, args.crops, args.seed)
        spectra = calibration_spectra(spec, mixtures)
        extra["calibration"] = {"folder": args.calibration, "tracks": len(calibration_files(args.calibration)),
                                 "crops": len(spectra), "seed": args.seed, "chunk_size": chunk,
                                 "input_shape": list(spectra[0].shape)}
        del mixtures
        for runtime in runtimes:
            # fp32 on this runtime
            separator_class = OnnxSeparator if runtime == "onnx" else OpenVinoSeparator
            sep = separator_class(fp32_onnx, spec, threads=args.threads)
            _log(f"{runtime} fp32")
            timed = _time_variant(f"{runtime}:fp32", sep, mix, runner_kwargs, peak, outputs, args.repeats)
            row, runtime_fp32 = row_for(runtime, "fp32", timed, "export", export_seconds, sep.size_mb, reference,
                                        path=fp32_onnx)
            if args.profile:
                row["profile"] = profile_ops(fp32_onnx, runtime, spectra[0], args.threads)
            rows.append(row)
            del sep
            gc.collect()
            if args.bf16 and runtime == "openvino":
                rows.append(bf16_row("bf16", OpenVinoSeparator(fp32_onnx, spec, threads=args.threads, precision="bf16"),
                                     "export", export_seconds, runtime_fp32, fp32_onnx))
            # int8 on this runtime
            _log(f"{runtime} int8: calibrating on {len(spectra)} crops of {args.calibration}")
            start = time.perf_counter()
            if runtime == "onnx":
                path = quantize_onnx_static(fp32_onnx, spectra, workdir / "int8_ort.onnx", keep_fp32=keep)
            else:
                path = quantize_openvino(fp32_onnx, spectra, workdir / "int8_openvino.xml", keep_fp32=keep,
                                         preset=args.preset)
            quant_seconds = time.perf_counter() - start
            sep = load_int8_separator(path, args.threads, spec)
            timed = _time_variant(f"{runtime}:int8", sep, mix, runner_kwargs, peak, outputs, args.repeats)
            row, _ = row_for(runtime, "int8", timed, "quantization", quant_seconds, sep.size_mb, reference,
                             runtime_fp32, path=path)
            row["ops"] = op_coverage(path, runtime, args.threads)
            if args.profile:
                row["profile"] = profile_ops(path, runtime, spectra[0], args.threads)
            rows.append(row)
            del sep
            if args.bf16 and runtime == "openvino":  # the same int8 graph, its float layers in bf16
                rows.append(bf16_row("int8+bf16", load_int8_separator(path, args.threads, spec, rest="bf16"),
                                     "quantization", quant_seconds, runtime_fp32, path))
            del runtime_fp32
            gc.collect()
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    base = rows[0]["seconds"]
    for row in rows:
        row["speed_ratio_vs_torch_fp32"] = round(base / row["seconds"], 3)
    report = {"rows": rows, "int8_support": support, **extra,
              "quantized": {"onnxruntime": {"format": "QDQ", "op_types": list(ORT_OP_TYPES), "per_channel_weights": True,
                                            **{k: v for k, v in support["onnxruntime"].items() if k != "why"}},
                            "openvino": {"tool": "nncf", "preset": args.preset, "op_types": list(OV_OP_TYPES)},
                            "keep_fp32": list(keep), "calibration_method": "min/max"},
              "audio": {"seconds": round(mix.shape[-1] / sr, 3), "source": source},
              "model": {"config": args.config, "weights": args.weights or f"random (seed {args.seed})",
                        "params": sum(p.numel() for p in model.parameters()), "chunk_size": chunk},
              "runner": {k: v for k, v in runner_kwargs.items() if k != "device"}, "threads": args.threads,
              "null_note": "null_db = 10 log10(|out - ref|^2 / |ref|^2) over all stems (eval.timing.measure.null_db)",
              "machine": machine_info(), "command": command_string("compress.runtime_int8", argv)}
    text = json.dumps(report, indent=1)
    if args.out_json:
        atomic_write_text(args.out_json, text)
    print(text)
    return report


if __name__ == "__main__":
    main()

"""``python -m separation.separate INPUT... -o OUT``: write ``OUT/<track>/<stem>.wav``.

Every input is checked before any model work starts; each track's stems are written into a
hidden temporary folder that is renamed into place only when all stems are complete.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from .audio import SAMPLE_RATE, AtomicWavWriter, check_writable_dir, read_audio
from .errors import UserError, exit_on_user_error
from .backends import BACKENDS, choose_backend, prepare_backend, runner_precision
from .runner import PRECISIONS, Runner, pick_device

DEFAULT_MODEL = "drumsep-demo-teacher"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m separation.separate", description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+", type=Path, help="audio files (anything soundfile reads)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="registry name (drumsep-demo-teacher, drumsep-5stem-jarredou) or a checkpoint path")
    p.add_argument("--config", type=Path, default=None, help="MSST YAML (default: the YAML beside the checkpoint)")
    p.add_argument("--weights", type=Path, default=None, help="local file for a registry model, e.g. the jarredou .ckpt")
    p.add_argument("--num-overlap", type=int, default=None, help="default: the config's inference.num_overlap")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--chunk-size", type=int, default=None, help="default: the config's audio.chunk_size")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--window", default="msst", choices=["msst", "hann"])
    p.add_argument("--backend", default="auto", choices=["auto", *BACKENDS],
                   help="inference backend; auto times every backend that runs --precision here (torch, compile, onnx, onnx-winograd, their -streams forms, openvino) once per machine and model, and keeps the fastest (below fp32 it also times the winner in fp32, and says so where the lower precision buys no speed on this CPU)")
    p.add_argument("--compile", action="store_true", help="same as --backend compile")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--wiener", type=int, default=None, metavar="ITERATIONS",
                   help="multichannel Wiener post-filter with this many EM iterations (1 is usual; off by "
                        "default, as in MSST): gives back the energy an unsure model leaves out")
    p.add_argument("--wiener-hop", type=int, default=None, choices=[1024, 2048],
                   help="the filter's STFT hop (n_fft 4096): 1024 (default, Open-Unmix's) or 2048, half the "
                        "filter's cost for about -0.1 dB")
    p.add_argument("--wiener-grid", default="fixed", choices=["fixed", "model"],
                   help="the filter's STFT: fixed (n_fft 4096, --wiener-hop) or model: the model's own STFT, "
                        "with its masked spectrogram as the priors, which skips the model's inverse STFT and "
                        "the filter's STFT of the stems (needs --num-overlap 1 or chunk steps on the model's hop)")
    return p


def _write_block(writers: list[AtomicWavWriter], block) -> None:
    for writer, stem_block in zip(writers, block):
        writer.write(stem_block)


def write_track(runner: Runner, mix, stems: list[str], track_dir: Path) -> None:
    """Separate ``mix`` and stream each stem into ``track_dir/<stem>.wav``, all or nothing."""
    staging = Path(tempfile.mkdtemp(dir=track_dir.parent, prefix=f".{track_dir.name}.", suffix=".partial"))
    try:
        writers = [AtomicWavWriter(staging / f"{stem}.wav", SAMPLE_RATE, mix.shape[0]) for stem in stems]
        try:
            # One block is written in a thread while the next is computed (file writes were ~1.2 s of a
            # 3-minute separation); blocks are fresh arrays, and a write error surfaces at the next block.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wav-writer") as pool:
                pending = None
                for block in runner.iter_blocks(mix):
                    if block.shape[0] != len(stems):
                        raise UserError(f"the model returns {block.shape[0]} stems but its config names {len(stems)}.")
                    if pending is not None:
                        pending.result()
                    pending = pool.submit(_write_block, writers, block)
                if pending is not None:
                    pending.result()
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        for writer in writers:
            writer.commit()
        if track_dir.exists():
            shutil.rmtree(track_dir)
        staging.rename(track_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from . import load_any
    from .machine import keep_freed_memory

    keep_freed_memory()

    if args.threads:
        torch.set_num_threads(args.threads)
    names = [p.stem for p in args.inputs]
    if len(set(names)) != len(names):
        raise UserError("two inputs share a file name, so their output folders would collide; rename one.")
    for path in args.inputs:  # fail before any work on a bad input
        read_audio(path)
    out = check_writable_dir(args.out)
    model = load_any(args.model, args.config, args.weights)
    spec = model.spec
    device = pick_device(args.device)
    backend = "compile" if args.compile else args.backend
    if backend == "auto":  # exported runtimes are CPU paths here; on a GPU torch (with autocast) runs
        if device.type != "cpu":
            backend = "torch"
        else:
            backend, record = choose_backend(model, threads=args.threads, precision=args.precision)
            if record.get("advice"):
                print(f"note: {record['advice']}")
        print(f"backend: {backend} (--backend auto)")
    if (backend.startswith("onnx") and args.precision != "fp32") or (backend.startswith("openvino") and args.precision == "fp16"):
        raise UserError(f"--precision {args.precision} is not available with --backend {backend}; "
                        "use fp32 (or bf16 with openvino or the torch backends).")
    chunk_size = args.chunk_size or spec.audio.chunk_size
    runner = Runner(prepare_backend(model, backend, args.threads, device.type, precision=args.precision,
                                    chunk_size=chunk_size),
                    chunk_size=chunk_size,
                    num_overlap=args.num_overlap or spec.inference.num_overlap,
                    batch_size=args.batch_size, precision=runner_precision(backend, args.precision), device=str(device), window=args.window,
                    wiener=args.wiener, wiener_hop=args.wiener_hop, wiener_grid=args.wiener_grid)
    for path in args.inputs:
        mix, _ = read_audio(path)
        write_track(runner, mix, spec.stems, out / path.stem)
        print(f"{path} -> {out / path.stem}/{{{','.join(spec.stems)}}}.wav")


if __name__ == "__main__":
    main()

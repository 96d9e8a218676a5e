"""Memory of assembling a long track's stems, apart from any model: ``Runner.separate`` (one
preallocated output array) against collecting the streamed blocks and concatenating them.

A free stand-in model (five copies of the input) isolates the runner's own buffers, and each
way runs in a fresh subprocess so neither inherits the other's allocator state. Prints JSON::

    python -m eval.runner_memory --seconds 630
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from .benchlib import command_string, machine_info

WAYS = ("preallocated", "concatenate")


def measure(way: str, seconds: float, chunk_size: int, num_overlap: int) -> dict:
    """Run in this process: separate ``seconds`` of noise the given way."""
    import numpy as np
    import torch

    from separation.runner import Runner

    from .benchlib import time_call

    torch.set_num_threads(1)
    runner = Runner(lambda x: x[:, None].expand(-1, 5, -1, -1).clone(), chunk_size=chunk_size,
                    num_overlap=num_overlap, device="cpu", progress=False)
    mix = np.random.default_rng(0).standard_normal((2, int(seconds * 44100))).astype(np.float32)
    if way == "preallocated":
        fn = lambda: runner.separate(mix)  # noqa: E731
    else:
        fn = lambda: np.concatenate(list(runner.iter_blocks(mix)), axis=-1)  # noqa: E731
    out, took, rss = time_call(fn)
    return {"way": way, "audio_seconds": seconds, "output_mb": out.nbytes / 2**20, "seconds": took,
            "peak_rss_mb": rss.peak_mb, "peak_rss_total_mb": rss.total_mb}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m eval.runner_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=630.0)
    p.add_argument("--chunk-size", type=int, default=65024)
    p.add_argument("--num-overlap", type=int, default=4)
    p.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # the subprocess side
    args = p.parse_args(argv)
    if args.way:
        print(json.dumps(measure(args.way, args.seconds, args.chunk_size, args.num_overlap)))
        return
    rows = []
    for way in WAYS:
        cmd = [sys.executable, "-m", "eval.timing.runner_memory", "--way", way, "--seconds", str(args.seconds),
               "--chunk-size", str(args.chunk_size), "--num-overlap", str(args.num_overlap)]
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    report = {"rows": rows, "peak_rss_ratio_concatenate_vs_preallocated": rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"],
              "machine": machine_info(), "command": command_string("eval.runner_memory", argv)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

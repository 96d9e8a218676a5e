"""The Wiener filter's STFT passes on the host path against torch's, on 10 signals (5 stereo stems) x 60 s.

``python scripts/host_stft_bench.py [--seconds 60] [--repeats 5]`` prints JSON: the minimum of ``repeats`` timings
of ``separation.spectral.stft_tf`` / ``istft`` with ``host=False`` (torch.stft, the block-sum inverse) and
``host=True`` (numba framing and overlap-add, scipy.fft), their ratio, and the largest difference between the two.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from eval.timing.benchlib import machine_info  # noqa: E402
from separation.spectral import istft, stft_tf  # noqa: E402
from separation.spectral_kernels import preload  # noqa: E402


def best_of(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    preload()
    wave = torch.randn(10, int(args.seconds * 44100), generator=torch.Generator().manual_seed(0))
    rows = []
    for n_fft, hop in ((4096, 2048), (4096, 1024)):
        window = torch.hann_window(n_fft)
        spec = {host: stft_tf(wave, n_fft, hop, window, host=host) for host in (False, True)}
        back = {host: istft(spec[host], n_fft, hop, window, wave.shape[-1], host=host) for host in (False, True)}
        row = {"n_fft": n_fft, "hop": hop}
        for name, fn in (("stft", lambda host: stft_tf(wave, n_fft, hop, window, host=host)),
                         ("istft", lambda host: istft(spec[True], n_fft, hop, window, wave.shape[-1], host=host))):
            torch_s, host_s = best_of(lambda: fn(False), args.repeats), best_of(lambda: fn(True), args.repeats)
            row[name] = {"torch_s": round(torch_s, 4), "host_s": round(host_s, 4), "speedup": round(torch_s / host_s, 2)}
        row["stft_max_abs_diff"] = float((spec[True] - spec[False]).abs().max())
        row["istft_max_abs_diff"] = float((back[True] - back[False]).abs().max())
        rows.append(row)
    print(json.dumps({"signals": 10, "seconds": args.seconds, "rows": rows, "machine": machine_info(),
                      "command": " ".join(["python", *sys.argv])}, indent=1))


if __name__ == "__main__":
    main()

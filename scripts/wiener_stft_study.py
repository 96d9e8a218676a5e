"""The Wiener post-filter's STFT size and hop against held-out SDR and its cost.

The bundled student's raw ``num_overlap`` 1 outputs (torch) on the study's 21 held-out clips x 10 s,
filtered with one EM iteration at each (n_fft, hop); museval per stem, mean over tracks.
``python scripts/wiener_stft_study.py`` (~15 min on 2 cores) -> ``results/wiener_fused/stft_study.json``.
"""
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from eval.scoring.museval_sdr import evaluate_track  # noqa: E402
from separation import Runner, load_any  # noqa: E402
from separation.audio import read_audio  # noqa: E402
from separation.wiener import refine  # noqa: E402

STEMS = ["kick", "snare", "toms", "hh", "cymbals"]
SETTINGS = [(4096, 1024), (4096, 2048), (2048, 512), (2048, 1024), (8192, 2048)]
DATA = Path("data/heldout_test/test")
OUT = Path("results/wiener_fused/stft_study.json")
SECONDS = 10


def score(pair):
    refs, est = pair
    torch.set_num_threads(1)
    return evaluate_track(refs, est, STEMS)


def summary(per_track: list[dict]) -> dict:
    def sdr(p, stem):
        return p[stem]["SDR"] if p[stem] and p[stem].get("SDR") is not None else None

    stems = {s: float(np.mean([v for p in per_track if (v := sdr(p, s)) is not None])) for s in STEMS}
    mean = float(np.mean([np.mean([v for s in STEMS if (v := sdr(p, s)) is not None]) for p in per_track]))
    return {"mean": mean, **stems}


def main() -> None:
    torch.set_num_threads(2)
    tracks = sorted(d for d in DATA.iterdir() if (d / "mixture.wav").is_file())[:21]
    model = load_any("drumsep-demo-student")
    runner = Runner(model, chunk_size=model.spec.audio.chunk_size, num_overlap=1, device="cpu", progress=False)
    jobs = {s: [] for s in [None, *SETTINGS]}
    seconds = {s: 0.0 for s in SETTINGS}
    for folder in tracks:
        n = SECONDS * 44100
        mix = read_audio(folder / "mixture.wav")[0][:, :n]
        refs = np.stack([read_audio(folder / f"{s}.wav")[0][:, :n] if (folder / f"{s}.wav").exists()
                         else np.zeros_like(mix) for s in STEMS])
        est = runner.separate(mix)
        jobs[None].append((refs, est))
        for n_fft, hop in SETTINGS:
            t0 = time.perf_counter()
            jobs[(n_fft, hop)].append((refs, refine(mix, est, 1, n_fft=n_fft, hop=hop)))
            seconds[(n_fft, hop)] += time.perf_counter() - t0
    results = {}
    with Pool(2) as pool:
        for setting, pairs in jobs.items():
            results[str(setting)] = {**summary(pool.map(score, pairs)), "refine_s": seconds.get(setting)}
            print(setting, json.dumps(results[str(setting)]), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

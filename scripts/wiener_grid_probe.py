"""Where the Wiener filter on the model's own grid loses its 0.18 dB, for student b1-half (n_fft 1024, hop 512).

b1-half in OpenVINO bf16 at ``num_overlap`` 1 on the 21 held-out clips x 10 s (the rows of
``configs/eval/amx_s27_grid.yaml``), filtered four ways: the fixed 4096/2048 grid; the waveform filter at the
model's own 1024/512 (so only the grid changes); and the model grid with the model's spectrogram as the priors
(the runner's ``wiener_grid="model"``), each at 1-3 EM iterations where it is asked. museval per stem, mean over
tracks. ``python scripts/wiener_grid_probe.py`` (~8 min on 2 cores) -> ``results/amx_s27_grid/grid_probe.json``.
"""
import json
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from eval.timing.benchlib import machine_info  # noqa: E402
from separation import Runner, load_any  # noqa: E402
from separation.audio import read_audio  # noqa: E402
from separation.backends import prepare_backend  # noqa: E402
from separation.wiener import refine  # noqa: E402
from wiener_stft_study import DATA, SECONDS, STEMS, score, summary  # noqa: E402

OUT = Path("results/amx_s27_grid/grid_probe.json")
# (label, runner settings) for the runner's own filter; the waveform refine at 1024/512 is added below
RUNNER_SETTINGS = [("fixed 4096/2048, 1 iteration", {"wiener": 1, "wiener_hop": 2048}),
                   ("fixed 4096/2048, 2 iterations", {"wiener": 2, "wiener_hop": 2048}),
                   ("model grid 1024/512, 1 iteration", {"wiener": 1, "wiener_grid": "model"}),
                   ("model grid 1024/512, 2 iterations", {"wiener": 2, "wiener_grid": "model"}),
                   ("model grid 1024/512, 3 iterations", {"wiener": 3, "wiener_grid": "model"})]
WAVEFORM_1024 = "waveform filter 1024/512, 1 iteration"


def main() -> None:
    torch.set_num_threads(2)
    tracks = sorted(d for d in DATA.iterdir() if (d / "mixture.wav").is_file())[:21]
    model = load_any("drumsep-demo-student-b1-half")
    chunk = model.spec.audio.chunk_size
    separator = prepare_backend(model, "openvino", 2, "cpu", precision="bf16", chunk_size=chunk)

    def runner(**kw):
        return Runner(separator, chunk_size=chunk, num_overlap=1, device="cpu", progress=False, **kw)

    plain = runner()
    runners = {label: runner(**kw) for label, kw in RUNNER_SETTINGS}
    jobs = {label: [] for label in ["no filter", *runners, WAVEFORM_1024]}
    for folder in tracks:
        n = SECONDS * 44100
        mix = read_audio(folder / "mixture.wav")[0][:, :n]
        refs = np.stack([read_audio(folder / f"{s}.wav")[0][:, :n] if (folder / f"{s}.wav").exists()
                         else np.zeros_like(mix) for s in STEMS])
        est = plain.separate(mix)
        jobs["no filter"].append((refs, est))
        jobs[WAVEFORM_1024].append((refs, refine(mix, est, 1, n_fft=1024, hop=512)))
        for label, r in runners.items():
            jobs[label].append((refs, r.separate(mix)))
    results = {"machine": machine_info(), "command": "python scripts/wiener_grid_probe.py", "sdr": {}}
    with Pool(2) as pool:
        for label, pairs in jobs.items():
            row = summary(pool.map(score, pairs))
            row["mean_of_stems"] = float(np.mean([row[s] for s in STEMS]))  # the Pareto tables' "mean SDR"
            results["sdr"][label] = row
            print(label, json.dumps(results["sdr"][label]), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Inference backends through the one runner: parity with torch fp32, export cache, auto choice."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import separation.backends as backends
from compress.common import null_db
from separation import load_any
from separation.backends import BACKENDS, choose_backend, exported_onnx, prepare_backend
from separation.errors import UserError
from separation.runner import Runner


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DRUMSEP_CACHE", str(tmp_path / "cache"))


def drum_clip(seconds: float) -> np.ndarray:
    """Real drums: a clip rendered from a synthetic kit (the same everywhere), mixture ``(2, n)``."""
    from drumdata.mixer import mix, render_clip
    from drumdata.synth import synth_kit

    stems, _ = render_clip(synth_kit("synthetic-A"), seconds, np.random.default_rng(0))
    return mix(stems)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_matches_torch_fp32_through_the_runner(tiny_model, backend, monkeypatch):
    # The exported runtimes run the bundled teacher: a random tiny net amplifies rounding through its
    # InstanceNorms (OpenVINO's null is about -40 dB on a random c=8 net, -106 dB on the teacher).
    # torch.compile compiles the tiny net: the teacher would take minutes to compile here.
    from separation import load_any

    # On 2 CPU cores inductor needs ~2 min per input shape, so compile sees one: batch 1, one chunk.
    model = tiny_model if backend == "compile" else load_any("drumsep-demo-teacher")
    chunk = model.spec.audio.chunk_size
    mix = drum_clip(seconds=1.5)[:, : chunk if backend == "compile" else None]
    overlap, batch = (1, 1) if backend == "compile" else (2, 2)
    reference = Runner(model, chunk, num_overlap=overlap, progress=False).separate(mix)
    # the teacher is narrower than the threshold: make every 3x3 conv a Winograd graph instead
    monkeypatch.setattr(backends, "WINOGRAD_MIN_CHANNELS", 0)
    monkeypatch.setattr(backends, "ONNX_WINOGRAD_MIN_CHANNELS", 0)
    # a -streams backend runs one single-thread call per thread: give it two, so it really runs side by side
    separator = prepare_backend(model, backend, threads=2 if backend.endswith("-streams") else 1, log=lambda *_: None)
    out = Runner(separator, chunk, num_overlap=overlap, batch_size=batch, progress=False).separate(mix)
    assert out.shape == reference.shape
    assert null_db(out, reference) <= -60
    if "-winograd" in backend:  # the export really holds Winograd graphs, not 3x3 convs
        import onnx

        nodes = onnx.load(str(separator.path)).graph.node
        kernels = {tuple(a.ints) for n in nodes if n.op_type == "Conv" for a in n.attribute if a.name == "kernel_shape"}
        assert kernels and (3, 3) not in kernels and sum(n.op_type == "MatMul" for n in nodes) > 0


def test_streams_run_chunks_side_by_side_with_one_threads_output():
    """onnx-streams: the Runner hands it a chunk per stream even at batch_size 1, the chunks run on two
    threads at once, and the output is bit for bit that of one-thread ONNX Runtime on each chunk alone
    (the same kernels on the same input), so the streams change the speed, not the result."""
    import threading

    model = load_any("drumsep-demo-teacher")
    chunk = model.spec.audio.chunk_size
    mix = drum_clip(seconds=1.5)
    streams = prepare_backend(model, "onnx-streams", threads=2, log=lambda *_: None)
    assert streams.streams == 2
    seen = set()
    run = streams.session.run
    streams.session.run = lambda *a: (seen.add(threading.current_thread().name), run(*a))[1]
    runner = Runner(streams, chunk, num_overlap=2, batch_size=1, progress=False)
    assert runner.batch_size == 2
    out = runner.separate(mix)
    assert len(seen) == 2 and all(name.startswith("onnx-stream") for name in seen)
    single = Runner(prepare_backend(model, "onnx", threads=1, log=lambda *_: None), chunk, num_overlap=2,
                    batch_size=1, progress=False).separate(mix)
    assert np.array_equal(out, single)
    with pytest.raises(UserError, match="side by side"):
        prepare_backend(model, "onnx-streams", threads=2, device="cuda", log=lambda *_: None)


def test_auto_times_streams_per_chunk_and_skips_them_on_one_thread(tiny_model):
    name, record = choose_backend(tiny_model, candidates=("onnx", "onnx-streams"), threads=1, log=lambda *_: None)
    assert name == "onnx" and "one thread" in record["skipped"]["onnx-streams"]
    import time

    import torch

    calls = []

    class TwoStreams:  # takes 50 ms per call of two chunks: 25 ms per chunk
        streams = 2

        def __call__(self, batch):
            calls.append(batch.shape[0])
            time.sleep(0.05)

    _, per_chunk = backends.time_chunk(TwoStreams(), torch.zeros(1, 2, 64))
    assert calls == [2, 2, 2] and 0.024 < per_chunk < 0.045  # undivided it would be >= 0.05


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_exported_runtime_follows_the_runners_chunk(backend):
    """An exported graph has a fixed frame count: a Runner chunk other than the config's gets its own
    export (same weights), and matches torch at that chunk; a chunk the U-Net cannot take is refused."""
    from separation import load_any

    model = load_any("drumsep-demo-teacher")
    hop = model.spec.audio.hop_length
    chunk = hop * (2 * model.spec.audio.num_frames - 1)  # twice the frames of the config's chunk
    mix = drum_clip(seconds=1.5)
    reference = Runner(model, chunk, num_overlap=1, progress=False).separate(mix)
    separator = prepare_backend(model, backend, threads=1, log=lambda *_: None, chunk_size=chunk)
    out = Runner(separator, chunk, num_overlap=1, progress=False).separate(mix)
    assert null_db(out, reference) <= -60
    assert model.spec.audio.chunk_size != chunk  # the caller's model is left as it was
    with pytest.raises(UserError, match="not divisible"):
        prepare_backend(model, backend, threads=1, log=lambda *_: None, chunk_size=chunk + hop)


def test_export_is_cached_by_weights_and_config(tiny_model, tmp_path):
    messages = []
    first = exported_onnx(tiny_model, "onnx", log=messages.append)
    again = exported_onnx(tiny_model, "onnx", log=messages.append)
    assert first == again and len(messages) == 1  # exported once, with a message
    changed = type(tiny_model)(tiny_model.spec)
    assert exported_onnx(changed, "onnx", log=messages.append) != first  # other weights, other file


def test_auto_measures_once_and_records_why(tiny_model, monkeypatch):
    name, record = choose_backend(tiny_model, candidates=("torch", "onnx"), threads=1, log=lambda *_: None)
    assert name in ("torch", "onnx") and set(record["seconds_per_chunk"]) == {"torch", "onnx"}
    assert name in record["why"]
    import separation.backends as backends

    monkeypatch.setattr(backends, "time_chunk", lambda *a: pytest.fail("measured again"))
    assert choose_backend(tiny_model, candidates=("torch", "onnx"), threads=1)[0] == name  # cached choice


def test_auto_skips_onnx_winograd_where_its_graph_is_plain_onnx(tiny_model, monkeypatch):
    """auto measures onnx-winograd only on a model with a 3x3 conv wide enough to become Winograd; on a
    narrow one it says why it skipped it instead of exporting the same graph twice."""
    assert "onnx-winograd" in backends.CANDIDATES["fp32"]
    assert backends.onnx_winograd_convs(tiny_model) == 0
    name, record = choose_backend(tiny_model, candidates=("onnx", "onnx-winograd"), threads=1, log=lambda *_: None)
    assert name == "onnx" and "same graph as onnx" in record["skipped"]["onnx-winograd"]
    monkeypatch.setattr(backends, "ONNX_WINOGRAD_MIN_CHANNELS", 1)
    assert backends.onnx_winograd_convs(tiny_model) > 0
    name, record = choose_backend(tiny_model, candidates=("onnx", "onnx-winograd"), threads=1, log=lambda *_: None,
                                  refresh=True)
    assert set(record["seconds_per_chunk"]) == {"onnx", "onnx-winograd"} and not record["skipped"]


def test_missing_runtime_says_how_to_install(tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(UserError, match="pip install openvino"):
        prepare_backend(tiny_model, "openvino")
    name, record = choose_backend(tiny_model, candidates=("torch", "openvino"), threads=1, log=lambda *_: None)
    assert name == "torch" and "pip install openvino" in record["skipped"]["openvino"]
    with pytest.raises(UserError, match="unknown backend"):
        prepare_backend(tiny_model, "tensorrt")


def test_separate_cli_backend_auto(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import soundfile as sf

    import separation.backends as backends
    # the default list has compile too; its ~1-min compile of a tiny model is tested by the parity test
    monkeypatch.setitem(backends.CANDIDATES, "fp32", ("torch", "onnx", "openvino"))

    from separation.separate import main
    wav = tmp_path / "clip.wav"
    sf.write(wav, (np.random.default_rng(0).standard_normal((22050, 2)) * 0.1).astype(np.float32), 44100)
    main([str(wav), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint), "--threads", "1"])
    assert "backend:" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out" / "clip").iterdir())[0].endswith(".wav")
    path = next((tmp_path / "cache" / "auto").glob("*.json"))
    record = json.loads(path.read_text())
    assert record["backend"] in BACKENDS
    # measured under the CLI's kept-memory malloc, and cached apart from a choice measured without it
    from separation.machine import allocator_setting
    assert record["allocator"] == allocator_setting() == "glibc, freed memory kept (mallopt)"
    assert "-fp32-kept-" in path.name


def test_openvino_bf16_runs_and_bad_precisions_are_refused(tiny_model):
    import torch

    sep = prepare_backend(tiny_model, "openvino", threads=1, log=lambda *_: None, precision="bf16")
    x = torch.from_numpy(drum_clip(0.2)[None, :, : tiny_model.spec.audio.chunk_size].copy())
    out = sep(x)
    assert out.shape == (1, 5, 2, x.shape[-1]) and torch.isfinite(out).all()
    with pytest.raises(UserError, match="fp32 or bf16"):
        prepare_backend(tiny_model, "openvino", log=lambda *_: None, precision="int4")


def test_auto_ranks_the_backends_of_the_asked_precision(tiny_model):
    """bf16 is timed on the backends that run it (torch and compile under autocast, OpenVINO's own
    bf16), never on ONNX Runtime; the record says which precision it was chosen for."""
    import separation.backends as backends

    assert backends.CANDIDATES["bf16"] == ("torch", "compile", "openvino")
    assert "compile" in backends.CANDIDATES["fp32"]
    # compile is left out here only for time (a tiny model's compile takes ~1 min on 2 cores)
    name, record = choose_backend(tiny_model, ("torch", "openvino"), threads=1, precision="bf16", log=lambda *_: None)
    assert set(record["seconds_per_chunk"]) | set(record["skipped"]) == {"torch", "openvino"}
    assert record["precision"] == "bf16" and name in record["seconds_per_chunk"]
    assert all(record["first_call_seconds"][k] > 0 for k in record["seconds_per_chunk"])
    assert record["fp32_seconds_per_chunk"] > 0  # the winner timed again in fp32
    with pytest.raises(UserError, match="unknown precision"):
        choose_backend(tiny_model, precision="int4")


def test_auto_says_when_bf16_is_slower_than_fp32_here(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    """Where the CPU runs bf16 slower than fp32 (OpenVINO on a Xeon without AMX), --backend auto --precision bf16
    says so and names the faster, exact option; where bf16 wins it stays quiet."""
    import soundfile as sf

    from separation.separate import main

    def fake_times(bf16: float, fp32: float):
        def time_chunk(separator, chunk, repeats=2, precision="fp32"):
            lower = precision == "bf16" or getattr(separator, "precision", "fp32") == "bf16"
            return 0.5, bf16 if lower else fp32
        return time_chunk

    monkeypatch.setitem(backends.CANDIDATES, "bf16", ("torch", "openvino"))
    wav = tmp_path / "clip.wav"
    sf.write(wav, (np.random.default_rng(0).standard_normal((22050, 2)) * 0.1).astype(np.float32), 44100)
    args = [str(wav), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint), "--threads", "1", "--precision", "bf16"]
    monkeypatch.setattr(backends, "time_chunk", fake_times(bf16=0.2, fp32=0.1))
    main(args)
    out = capsys.readouterr().out
    assert "bf16 buys no speed here" in out and "--precision fp32" in out
    model = load_any(str(tiny_checkpoint))
    monkeypatch.setattr(backends, "time_chunk", fake_times(bf16=0.1, fp32=0.2))
    name, record = choose_backend(model, threads=1, precision="bf16", refresh=True, log=lambda *_: None)
    assert record["fp32_seconds_per_chunk"] == 0.2 and "advice" not in record
    monkeypatch.setattr(backends, "time_chunk", fake_times(bf16=0.1, fp32=0.098))  # a near tie: no advice
    assert "advice" not in choose_backend(model, threads=1, precision="bf16", refresh=True, log=lambda *_: None)[1]
    # a record cached before the fp32 comparison existed gains it on the next call, without re-timing bf16
    path = next((tmp_path / "cache" / "auto").glob("*-bf16-*.json"))
    old = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("fp32") and k != "advice"}
    path.write_text(json.dumps(old))
    monkeypatch.setattr(backends, "time_chunk", fake_times(bf16=0.5, fp32=0.05))
    record = choose_backend(model, threads=1, precision="bf16", log=lambda *_: None)[1]
    assert record["seconds_per_chunk"] == old["seconds_per_chunk"] and record["fp32_seconds_per_chunk"] == 0.05
    assert "advice" in record and "advice" in json.loads(path.read_text())


def test_backends_cli_prints_the_choice_and_refuses_a_missing_model(tiny_checkpoint, capsys):
    from separation.backends import main

    main([str(tiny_checkpoint), "--precision", "fp16", "--threads", "1"])
    record = json.loads(capsys.readouterr().out)
    assert record["backend"] == "torch" and record["precision"] == "fp16"
    with pytest.raises(SystemExit, match="error:"):
        main(["no-such-model.ckpt"])

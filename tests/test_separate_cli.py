"""The separate CLI: outputs per stem, and one clear line with exit code 2 for every bad input."""
import numpy as np
import pytest
import soundfile as sf

from separation.separate import main

STEMS = ["kick", "snare", "toms", "hh", "cymbals"]


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    return exit_info.value.code, err


def args_for(ckpt, inputs, out):
    return [str(a) for a in [*inputs, "-o", out, "--model", ckpt, "--num-overlap", "2"]]


def test_separates_mono_48k_file_into_stereo_stems(tmp_path, tiny_checkpoint, capsys):
    wav = tmp_path / "song.flac"
    sf.write(wav, np.random.default_rng(0).uniform(-0.5, 0.5, 48000).astype(np.float32), 48000)
    main(args_for(tiny_checkpoint, [wav], tmp_path / "out"))
    for stem in STEMS:
        audio, sr = sf.read(tmp_path / "out" / "song" / f"{stem}.wav")
        assert sr == 44100 and audio.shape == (44100, 2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["song"]  # no leftovers


def test_silence_is_not_an_error(tmp_path, tiny_checkpoint):
    wav = tmp_path / "quiet.wav"
    sf.write(wav, np.zeros((20000, 2), np.float32), 44100)
    main(args_for(tiny_checkpoint, [wav], tmp_path / "out"))
    audio, _ = sf.read(tmp_path / "out" / "quiet" / "kick.wav")
    assert np.isfinite(audio).all()


def _bad_inputs(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    zero = tmp_path / "zero.wav"
    sf.write(zero, np.zeros((0, 2), np.float32), 44100)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full((1000, 2), np.nan, np.float32), 44100, subtype="FLOAT")
    multi = tmp_path / "surround.wav"
    sf.write(multi, np.zeros((1000, 6), np.float32), 44100)
    return {"missing": (tmp_path / "nope.wav", "does not exist"), "empty": (empty, "empty"),
            "corrupt": (corrupt, "not a readable audio file"), "zero-length": (zero, "no samples"),
            "nan": (nan, "NaN"), "channels": (multi, "6 channels")}


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "zero-length", "nan", "channels"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_checkpoint, capsys, case):
    good = tmp_path / "good.wav"
    sf.write(good, np.zeros((5000, 2), np.float32), 44100)
    path, expected = _bad_inputs(tmp_path)[case]
    code, err = run(args_for(tiny_checkpoint, [good, path], tmp_path / "out"), capsys)
    assert code == 2 and expected in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing half-written


def test_unwritable_output_dir(tmp_path, tiny_checkpoint, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros((5000, 2), np.float32), 44100)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run(args_for(tiny_checkpoint, [wav], blocker / "out"), capsys)
    assert code == 2 and "cannot write to output directory" in err


def test_checkpoint_that_does_not_match_its_config(tmp_path, tiny_checkpoint, capsys):
    from conftest import tiny_spec
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros((5000, 2), np.float32), 44100)
    wrong = tmp_path / "wrong.yaml"
    tiny_spec(num_channels=8, growth=8).to_yaml(wrong)
    code, err = run([*args_for(tiny_checkpoint, [wav], tmp_path / "out"), "--config", str(wrong)], capsys)
    assert code == 2 and "does not match its config" in err and "model.num_channels" in err
    assert not (tmp_path / "out" / "a").exists()


def test_interrupted_separation_leaves_no_partial_track(tmp_path, tiny_checkpoint, monkeypatch):
    from separation import runner as runner_module
    from separation.separate import write_track
    from separation.checkpoint import load_model

    model = load_model(tiny_checkpoint)
    runner = runner_module.Runner(model, model.spec.audio.chunk_size, num_overlap=2, progress=False)
    original = runner_module.Runner.iter_blocks

    def explode(self, mix):
        gen = original(self, mix)
        yield next(gen)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner_module.Runner, "iter_blocks", explode)
    (tmp_path / "out").mkdir()
    with pytest.raises(KeyboardInterrupt):
        write_track(runner, np.zeros((2, 40000), np.float32), model.spec.stems, tmp_path / "out" / "t")
    assert list((tmp_path / "out").iterdir()) == []


def test_wiener_stems_add_up_to_the_input(tmp_path, tiny_checkpoint):
    rng = np.random.default_rng(1)
    mix = (0.3 * rng.standard_normal((30000, 2))).astype(np.float32)
    wav = tmp_path / "noise.wav"
    sf.write(wav, mix, 44100, subtype="FLOAT")
    main(args_for(tiny_checkpoint, [wav], tmp_path / "out") + ["--wiener", "1"])
    total = sum(sf.read(tmp_path / "out" / "noise" / f"{stem}.wav", dtype="float32")[0] for stem in STEMS)
    # the filtered stems partition the input
    err = 10 * np.log10(np.square(total - mix).sum() / np.square(mix).sum())
    assert err < -30, err
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros((20000, 2), np.float32), 44100)
    main(args_for(tiny_checkpoint, [quiet], tmp_path / "out") + ["--wiener", "1"])
    assert np.isfinite(sf.read(tmp_path / "out" / "quiet" / "kick.wav")[0]).all()
    # on the model's own STFT grid (its spectrogram as the priors) the stems partition the input too
    main(args_for(tiny_checkpoint, [wav], tmp_path / "grid") + ["--wiener", "1", "--wiener-grid", "model", "--num-overlap", "1"])
    total = sum(sf.read(tmp_path / "grid" / "noise" / f"{stem}.wav", dtype="float32")[0] for stem in STEMS)
    err = 10 * np.log10(np.square(total - mix).sum() / np.square(mix).sum())
    assert err < -30, err

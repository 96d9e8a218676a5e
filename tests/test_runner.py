"""The streaming batched runner equals the straightforward reference and ignores batch_size."""
import numpy as np
import pytest
import torch

from eval.timing.reference_runner import reference_separate
from separation.runner import ChunkPlan, Runner


def null_db(a, b):
    err = np.square(a.astype(np.float64) - b).sum()
    return -np.inf if err == 0 else 10 * np.log10(err / np.square(b.astype(np.float64)).sum())


CHUNK = 512 * 7  # 3584 samples; fade 358


class ChunkDependentModel(torch.nn.Module):
    """Cheap stand-in whose output depends on the whole chunk (like InstanceNorm in TFC_TDF_net),
    so wrong chunk boundaries, windows or padding change the result."""

    def __init__(self, stems: int = 5):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv1d(2, 2 * stems, 9, padding=4)
        self.stems = stems

    def forward(self, x):
        y = torch.tanh(self.conv(x - x.mean(-1, keepdim=True)) * (1 + x.std(-1).mean(-1)[:, None, None]))
        return y.reshape(x.shape[0], self.stems, 2, x.shape[-1])


@pytest.fixture
def chunk_model():
    return ChunkDependentModel().eval()


@pytest.mark.parametrize("num_overlap", [1, 2, 3, 4, 8])
def test_runner_matches_reference_for_all_lengths_and_batches(chunk_model, num_overlap):
    rng = np.random.default_rng(num_overlap)
    border = CHUNK - CHUNK // num_overlap
    lengths = [int(rng.integers(10, CHUNK // num_overlap)),  # shorter than one hop
               2 * border - 1, 2 * border, 2 * border + 1,  # around the reflect-padding threshold
               int(rng.integers(CHUNK // 2, CHUNK)),  # one partial chunk (reflect pad of the last chunk)
               int(rng.integers(8 * CHUNK, 12 * CHUNK))]  # many chunks
    for length in lengths:
        if length <= 0:
            continue
        mix = rng.standard_normal((2, length)).astype(np.float32)
        ref = reference_separate(chunk_model, mix, CHUNK, num_overlap)
        for batch_size in (1, 2, 3, 4):
            out = Runner(chunk_model, CHUNK, num_overlap, batch_size, progress=False).separate(mix)
            assert out.shape == ref.shape == (5, 2, length)
            assert np.isfinite(out).all()
            assert null_db(out, ref) <= -100, (length, batch_size)


def test_streaming_sink_gets_bounded_blocks_in_order(chunk_model, rng):
    mix = rng.standard_normal((2, 20 * CHUNK)).astype(np.float32)
    runner = Runner(chunk_model, CHUNK, num_overlap=4, batch_size=2, progress=False)
    blocks = []
    runner.separate(mix, sink=blocks.append)
    assert len(blocks) > 10  # streamed, not one whole-track array
    assert max(b.shape[-1] for b in blocks) <= CHUNK + 2 * (CHUNK // 4)
    np.testing.assert_array_equal(np.concatenate(blocks, -1), runner.separate(mix))


def test_any_module_with_the_chunk_contract_runs():
    """Not only TFC_TDF_net: any (B, C, chunk) -> (B, S, C, chunk) callable."""
    class Gains(torch.nn.Module):
        def forward(self, x):
            return torch.stack([x * 0.5, x * 0.25, x * 0.25], 1)

    mix = np.random.default_rng(1).standard_normal((2, 5000)).astype(np.float32)
    out = Runner(Gains(), 1024, num_overlap=4, batch_size=3, progress=False).separate(mix)
    np.testing.assert_allclose(out.sum(0), mix, atol=1e-5)


def test_tfc_tdf_net_through_runner_matches_reference(tiny_model, rng):
    mix = rng.standard_normal((2, 3 * CHUNK + 123)).astype(np.float32)
    ref = reference_separate(tiny_model, mix, CHUNK, 2)
    out = Runner(tiny_model, CHUNK, num_overlap=2, batch_size=3, progress=False).separate(mix)
    assert null_db(out, ref) <= -100


def test_silence_gives_silent_finite_stems(tiny_model):
    out = Runner(tiny_model, CHUNK, progress=False).separate(np.zeros((2, 3 * CHUNK), np.float32))
    assert np.isfinite(out).all()


def test_chunk_plan_matches_msst_semantics():
    plan = ChunkPlan(length=100_000, chunk_size=CHUNK, num_overlap=4)
    assert plan.step == CHUNK // 4 and plan.border == CHUNK - CHUNK // 4 and plan.pad == plan.border
    assert ChunkPlan(length=2 * plan.border, chunk_size=CHUNK, num_overlap=4).pad == 0


@pytest.mark.parametrize("num_overlap", [2, 4, 8])
def test_chunks_wholly_in_the_right_pad_are_not_computed(chunk_model, num_overlap):
    length = 9 * CHUNK + 123
    plan = ChunkPlan(length=length, chunk_size=CHUNK, num_overlap=num_overlap)
    assert plan.total_chunks - plan.num_chunks >= num_overlap - 1  # MSST's dead chunks
    assert plan.start(plan.num_chunks - 1) < plan.pad + length <= plan.start(plan.num_chunks)
    calls = []

    def counting(x):
        calls.append(x.shape[0])
        return chunk_model(x)

    mix = np.random.default_rng(1).standard_normal((2, length)).astype(np.float32)
    out = Runner(counting, CHUNK, num_overlap=num_overlap, progress=False).separate(mix)
    assert sum(calls) == plan.num_chunks
    # MSST computes them all; the cropped-away ones change no sample.
    np.testing.assert_array_equal(out, reference_separate(chunk_model, mix, CHUNK, num_overlap))


def test_bf16_cpu_autocast_stays_close(tiny_model, rng):
    mix = rng.standard_normal((2, 3 * CHUNK)).astype(np.float32)
    fp32 = Runner(tiny_model, CHUNK, progress=False).separate(mix)
    bf16 = Runner(tiny_model, CHUNK, precision="bf16", progress=False).separate(mix)
    assert null_db(bf16, fp32) < -15


def test_hann_window_option_runs_and_differs(tiny_model, rng):
    mix = rng.standard_normal((2, 6 * CHUNK)).astype(np.float32)
    a = Runner(tiny_model, CHUNK, window="msst", progress=False).separate(mix)
    b = Runner(tiny_model, CHUNK, window="hann", progress=False).separate(mix)
    assert a.shape == b.shape and np.isfinite(b).all() and not np.array_equal(a, b)

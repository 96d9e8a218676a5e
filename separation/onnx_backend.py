"""ONNX export of the spectral core, and ONNX Runtime / OpenVINO separators the Runner accepts.

    export_onnx(model, "student.onnx")          # writes student.onnx + student.yaml
    sep = OnnxSeparator("student.onnx")        # spec read from the YAML beside it
    Runner(sep, chunk_size=sep.spec.audio.chunk_size).separate(mix)

Only the spectral core ``(B, C*2, F, T) -> (B, S, C*2, F, T)`` is exported, with a dynamic batch
axis: ONNX has no inverse STFT that matches torch.istft, so the STFT/iSTFT run in torch around
the session (as in MSST's and UVR's ONNX paths). Works for any TFC_TDF_net, pruned ones included,
since the graph is traced from the module as it is. The YAML beside the ``.onnx`` (written by
:func:`separation.checkpoint.save_model`'s config writer, including per-layer widths of a
free-pruned model) says which STFT and stems go with the graph.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .atomic_io import atomic_file
from .config import ModelSpec
from .errors import UserError
from .model import STFT, TFC_TDF_net
from .widths import layer_shapes_if_nonuniform

EXPORTERS = ("torchscript", "dynamo")
INPUT, OUTPUT = "spectrogram", "stems"


def _example(model: TFC_TDF_net, batch: int = 2) -> torch.Tensor:
    """A batch of stacked-complex spectrograms of one chunk: ``(batch, C*2, dim_f, frames)``."""
    a = model.spec.audio
    return torch.randn(batch, a.num_channels * 2, a.dim_f, a.num_frames)


def export_onnx(model: TFC_TDF_net, path: str | os.PathLike, opset: int = 17,
                exporter: str = "torchscript") -> Path:
    """Write the spectral core of ``model`` to ``path`` (``.onnx``) and its config beside it.

    ``exporter``: ``torchscript`` (``torch.onnx.export(dynamo=False)``; InstanceNorm, GELU and
    ConvTranspose map to single ONNX ops) or ``dynamo`` (the torch.export-based exporter).
    The file is written atomically: an interrupted export leaves no half-written .onnx."""
    if not isinstance(model, TFC_TDF_net):
        raise UserError(f"ONNX export needs a TFC_TDF_net, got {type(model).__name__}.")
    path = Path(path)
    if path.suffix != ".onnx":
        raise UserError(f"{path}: the ONNX file name must end in .onnx.")
    if exporter not in EXPORTERS:
        raise UserError(f"exporter={exporter!r}; use one of {', '.join(EXPORTERS)}.")
    core = model.core().eval()
    example = _example(model)
    with atomic_file(path) as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if exporter == "torchscript":
                torch.onnx.export(core, (example,), str(tmp), input_names=[INPUT], output_names=[OUTPUT],
                                  dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=opset,
                                  dynamo=False)
            else:
                batch = torch.export.Dim("batch", min=1, max=1024)
                program = torch.onnx.export(core, (example,), input_names=[INPUT], output_names=[OUTPUT],
                                            dynamic_shapes=({0: batch},), opset_version=max(opset, 18),
                                            dynamo=True, external_data=False)
                program.save(str(tmp), external_data=False)
    spec = model.spec
    shapes = layer_shapes_if_nonuniform(model)
    if shapes:  # so the YAML alone describes the exported widths, as save_model's would
        data = spec.to_dict()
        data["drumsep_lab"] = {**(data.get("drumsep_lab") or {}), "layer_shapes": shapes}
        spec = ModelSpec.from_dict(data)
    spec.to_yaml(path.with_suffix(".yaml"))
    return path


class OnnxSeparator:
    """Waveform ``(B, C, L)`` -> stems ``(B, S, C, L)``: torch STFT, ONNX Runtime core, torch iSTFT.

    ``threads``: ONNX Runtime intra-op threads (``None``: its default, all cores);
    ``providers``: e.g. ``["CUDAExecutionProvider", "CPUExecutionProvider"]`` on a GPU.
    ``streams`` > 1 (CPU): the session runs on one thread per call, and a batch's chunks are run
    side by side, ``streams`` at a time, one per core, so the cores do not meet at a barrier after
    every node. ONNX Runtime's ``run`` may be called from several threads at once; each chunk's
    result is bit-identical to a one-thread run of it alone. The Runner gives such a separator at
    least ``streams`` chunks per batch (one more chunk's activations in memory per stream).
    ``nchwc``: ONNX Runtime's blocked-channel (NCHWc) layout rewrite of the convolutions, its graph level
    ALL; ``False`` stops at level EXTENDED (plain NCHW convolutions, no layout reorders between nodes)."""

    def __init__(self, onnx_path: str | os.PathLike, spec: ModelSpec | str | os.PathLike | None = None,
                 threads: int | None = None, providers: list[str] | None = None, streams: int = 1,
                 nchwc: bool = True):
        import onnxruntime as ort

        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise UserError(f"ONNX model {onnx_path} does not exist; export one with separation.onnx_backend.export_onnx.")
        if spec is None:
            spec = onnx_path.with_suffix(".yaml")
            if not spec.is_file():
                raise UserError(f"no config given and {spec} does not exist; pass spec= or the model's YAML.")
        self.spec = spec if isinstance(spec, ModelSpec) else ModelSpec.from_yaml(spec)
        if streams < 1:
            raise UserError(f"streams={streams}: use 1 or more.")
        if streams > 1 and providers and providers[0] != "CPUExecutionProvider":
            raise UserError(f"streams run chunks side by side on CPU cores; with {providers[0]} use one stream "
                            "and a larger --batch-size.")
        options = ort.SessionOptions()
        if threads or streams > 1:
            options.intra_op_num_threads = 1 if streams > 1 else int(threads)
            options.inter_op_num_threads = 1
        if streams > 1:
            # Two concurrent runs would each grow ONNX Runtime's arena to a chunk's peak; without the arena the
            # full model's two streams peaked at 7.9 GB against 12.5 GB. Later calls ran at the same speed within
            # one run's noise (19.6 against 19.1-23.6 s for two chunks), the first call slower (34.7 against 19.1 s;
            # results/backends/zen4_s32_profile/streams_memory.log, one process each).
            options.enable_cpu_mem_arena = False
        options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if nchwc
                                            else ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
        try:
            self.session = ort.InferenceSession(str(onnx_path), options,
                                                providers=providers or ["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
            raise UserError(f"ONNX Runtime cannot load {onnx_path} ({str(err).splitlines()[0]}).") from None
        a = self.spec.audio
        self.stft = STFT(a.n_fft, a.hop_length, a.dim_f)
        self.path = onnx_path
        self.size_mb = onnx_path.stat().st_size / 2**20
        self.num_params = self._count_params(onnx_path)
        self.streams = streams
        self._pool = None

    @staticmethod
    def _count_params(path: Path) -> int | None:
        try:
            import onnx

            graph = onnx.load(str(path), load_external_data=False).graph
            return int(sum(np.prod(t.dims) for t in graph.initializer if len(t.dims) > 1 or t.dims))
        except Exception:
            return None

    @property
    def stems(self) -> list[str]:
        return self.spec.stems

    def spectral_forward(self, spec: torch.Tensor) -> torch.Tensor:
        """``(B, C*2, F, T)`` -> ``(B, S, C*2, F, T)`` through the ONNX session."""
        array = spec.detach().float().cpu().contiguous().numpy()
        if self.streams == 1 or len(array) == 1:
            return torch.from_numpy(self.session.run([OUTPUT], {INPUT: array})[0])
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="onnx-stream")
        run_one = lambda chunk: self.session.run([OUTPUT], {INPUT: chunk[None]})[0][0]  # noqa: E731
        return torch.from_numpy(np.stack(list(self._pool.map(run_one, array))))

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        length = wave.shape[-1]
        with torch.no_grad():
            return self.stft.inverse(self.spectral_forward(self.stft(wave.float().cpu())))[..., :length]


def _openvino_cache() -> str | None:
    """``<drumsep cache>/openvino``, where OpenVINO keeps compiled models (keyed by the model, the
    device and the config, so any change recompiles); None when it cannot be created."""
    from .pretrained import cache_dir

    folder = cache_dir().parent / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return str(folder) if os.access(folder, os.W_OK) else None


class OpenVinoSeparator(OnnxSeparator):
    """The same exported core compiled by OpenVINO for the CPU (``pip install openvino``).

    ``onnx_path``: the exported ``.onnx``, or an OpenVINO IR ``.xml`` (its ``.bin`` beside it; e.g.
    the int8 model :func:`compress.int8_quantize.quantize_openvino` writes); the YAML beside either.
    ``precision``: ``fp32`` (identical output within rounding) or ``bf16`` (OpenVINO's bf16
    inference on CPUs with AVX-512 BF16 or AMX; faster, not bit-faithful). For an int8 IR it is the
    precision of the layers left unquantized."""

    def __init__(self, onnx_path: str | os.PathLike, spec: ModelSpec | str | os.PathLike | None = None,
                 threads: int | None = None, precision: str = "fp32"):
        try:
            import openvino as ov
        except ImportError:
            raise UserError("backend openvino needs the openvino package: pip install openvino") from None
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise UserError(f"model {onnx_path} does not exist; export one with separation.onnx_backend.export_onnx.")
        if onnx_path.suffix not in (".onnx", ".xml"):
            raise UserError(f"{onnx_path}: OpenVINO runs an exported .onnx or an OpenVINO IR .xml.")
        self.spec = spec if isinstance(spec, ModelSpec) else ModelSpec.from_yaml(spec or onnx_path.with_suffix(".yaml"))
        if precision not in ("fp32", "bf16"):
            raise UserError(f"OpenVINO precision {precision!r}: use fp32 or bf16.")
        hint = {"fp32": "f32", "bf16": "bf16"}[precision]
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint, **({"INFERENCE_NUM_THREADS": int(threads)} if threads else {})}
        compiled_cache = _openvino_cache()
        if compiled_cache:  # OpenVINO's own blob cache: a later process loads in ~0.1 s what took 0.7-9 s to compile
            config["CACHE_DIR"] = compiled_cache
        self.compiled = ov.Core().compile_model(str(onnx_path), "CPU", config)
        a = self.spec.audio
        self.stft = STFT(a.n_fft, a.hop_length, a.dim_f)
        self.path, self.precision = onnx_path, precision
        files = [onnx_path, onnx_path.with_suffix(".bin")] if onnx_path.suffix == ".xml" else [onnx_path]
        self.size_mb = sum(f.stat().st_size for f in files if f.is_file()) / 2**20
        self.num_params = self._count_params(onnx_path) if onnx_path.suffix == ".onnx" else None

    def spectral_forward(self, spec: torch.Tensor) -> torch.Tensor:
        out = self.compiled(spec.detach().float().cpu().contiguous().numpy())
        return torch.from_numpy(np.asarray(out[self.compiled.output(0)]))

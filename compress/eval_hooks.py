"""Loaders for ``eval.tables.pareto`` variant kinds ``pruned``, ``int8`` and ``onnx``.

List this module under ``imports:`` in a Pareto config; importing it registers the loaders::

    imports: [compress.eval_hooks]
    variants:
      - {name: c32-pruned, kind: pruned, model: runs/prune/pruned.ckpt}
      - {name: c32-half, kind: pruned, model: ckpt/c32.ckpt, prune: {mode: uniform, ratio: 0.5}}
      - {name: c32-int8, kind: int8, model: runs/q/c32.int8.json}
      - {name: c32-dyn, kind: int8, model: ckpt/c32.ckpt, quant: {flavour: dynamic}}
      - {name: c32-static, kind: int8, model: ckpt/c32.ckpt, quant: {flavour: static},
         calibration: {root: data/rendered, crops: 8}}
      - {name: c32-ov-int8, kind: int8, model: ckpt/c32.ckpt, quant: {runtime: openvino},
         calibration: {root: data/rendered, crops: 8}, out: runs/int8/c32}   # NNCF static int8
      - {name: c32-ort-int8, kind: int8, model: runs/int8/c32/int8_ort.onnx, quant: {runtime: onnx}}
      - {name: c32-onnx, kind: onnx, model: runs/onnx/c32.onnx, threads: 2}
      - {name: c32-onnx2, kind: onnx, model: ckpt/c32.ckpt, onnx: runs/onnx/c32.onnx}

``model`` may be a checkpoint path, a registry name, or ``random`` with ``config`` (as for the
default loader); ``prune`` / ``quant`` are :class:`PruneConfig` / :class:`QuantConfig` fields.
``quant: {runtime: onnx|openvino}`` quantizes with that runtime's own tool instead of torchao
(:mod:`compress.int8_quantize`: ONNX Runtime ``quantize_static`` / OpenVINO NNCF; ``model`` may
then also be a ready ``.onnx`` / ``.xml`` int8 file, and ``quant`` may add ``keep_fp32``/``preset``).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from separation import TFC_TDF_net
from separation.errors import UserError


def _base_model(entry: dict) -> TFC_TDF_net:
    """The float model an entry names: the same rules as eval.tables.pareto's default loader."""
    from eval.tables.pareto import load_checkpoint_or_random

    return load_checkpoint_or_random(entry)


def load_pruned(entry: dict):
    """A pruned checkpoint (uniform or free widths), or ``model`` pruned now with ``prune: {...}``."""
    from .prune import PruneConfig, prune_

    if not entry.get("prune"):
        return _base_model(entry)
    config = PruneConfig(**entry["prune"])
    if config.importance == "taylor" or config.finetune_steps:
        raise UserError(f"variant {entry.get('name')!r}: on-the-fly pruning supports magnitude importance without "
                        "fine-tuning; run python -m compress.prune for taylor/finetune and list the checkpoint.")
    return prune_(_base_model(entry), config)


def _calibration(entry: dict, chunk_size: int):
    cal = entry.get("calibration") or {}
    if not cal:
        return None
    from .common import rendered_calibration

    crops = rendered_calibration(cal["root"], chunk_size, int(cal.get("crops", 8)), int(cal.get("seed", 0)))
    return list(crops.split(int(cal.get("batch_size", 1))))


def load_int8(entry: dict):
    """An int8 recipe (``*.json`` from :func:`compress.quantize.save_quantized`), or ``model``
    quantized now with ``quant: {...}`` (static needs ``calibration: {root, crops}``)."""
    from .quantize import QuantConfig, load_quantized, quantize_model

    if (entry.get("quant") or {}).get("runtime") not in (None, "torch", "torchao"):
        from .int8_quantize import load_runtime_int8

        return load_runtime_int8(entry)
    entry = {**entry, "quant": {k: v for k, v in (entry.get("quant") or {}).items() if k != "runtime"}}
    model = str(entry.get("model"))
    if model.endswith(".json"):
        return load_quantized(model, **(entry.get("quant") or {}))
    base = _base_model(entry)
    config = QuantConfig(**(entry.get("quant") or {}))
    return quantize_model(base, config, _calibration(entry, base.spec.audio.chunk_size))


def load_onnx(entry: dict):
    """An exported ``.onnx`` (YAML beside it), or ``model`` exported now to ``onnx:`` (or a temp file)."""
    from separation.onnx_backend import OnnxSeparator, export_onnx

    model = str(entry.get("model"))
    threads = entry.get("threads")
    if model.endswith(".onnx"):
        return OnnxSeparator(model, entry.get("config"), threads=threads)
    target = entry.get("onnx") or str(Path(tempfile.mkdtemp(prefix="drumsep-onnx-")) / "model.onnx")
    return OnnxSeparator(export_onnx(_base_model(entry), target), threads=threads)


LOADERS = {"pruned": load_pruned, "int8": load_int8, "onnx": load_onnx}


def register() -> None:
    """Register the loaders with eval.tables.pareto (a no-op where eval is not installed)."""
    try:
        from eval.tables.pareto import register_loader
    except ImportError:
        return
    for kind, fn in LOADERS.items():
        register_loader(kind, fn)


register()

"""Compression of TFC_TDF_net in the style of torchao's ``quantize_(model, Config)``: a dataclass
config that validates itself, applied to a module. ONNX export and the ONNX Runtime/OpenVINO
separators are inference backends and live in :mod:`separation.onnx_backend`.

* :mod:`compress.prune` - structured channel pruning (torch-pruning): ``prune_(model, PruneConfig(...))``
* :mod:`compress.quantize` - torchao int8: ``quantize_model(model, QuantConfig(...))``
* :mod:`compress.eval_hooks` - loaders for ``eval.tables.pareto`` variant kinds ``pruned``, ``int8``, ``onnx``
* :mod:`compress.bench` - one-process speed comparison of all of them on this machine

Submodules import torch-pruning/torchao/onnxruntime lazily, so ``import compress`` is cheap.
"""

__all__ = ["PruneConfig", "prune_", "QuantConfig", "quantize_model"]


def __getattr__(name):
    if name in ("PruneConfig", "prune_"):
        from . import prune
        return getattr(prune, name)
    if name in ("QuantConfig", "quantize_model"):
        from . import quantize
        return getattr(quantize, name)
    raise AttributeError(name)

"""Winograd F(m x m, 3 x 3) convolutions: same output as nn.Conv2d, and a model-wide swap."""
import math

import pytest
import torch
from torch import nn

from separation.winograd import WinogradConv2d, winograd_model

TOLERANCE = {2: 1e-5, 4: 1e-4, 6: 1e-4}  # relative error ||y - y_ref|| / ||y_ref|| (fp32)


def null_db(a: torch.Tensor, b: torch.Tensor) -> float:
    """Energy of the difference relative to ``b``, in dB (-inf for identical tensors)."""
    num = (a - b).double().pow(2).sum().item()
    return 10 * math.log10(num / b.double().pow(2).sum().item()) if num else -math.inf


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("size", [(7, 9), (16, 32), (1, 5)])
def test_winograd_conv_matches_conv2d(m, bias, size):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 10, 3, 1, 1, bias=bias)
    x = torch.randn(2, 6, *size)
    wino = WinogradConv2d(conv, m, chunk_tiles=8)  # small chunks: several strips per call
    with torch.inference_mode():
        ref, y = conv(x), wino(x)
    assert y.shape == ref.shape and y.is_contiguous()
    rel = ((y - ref).norm() / ref.norm()).item()
    assert rel < TOLERANCE[m], f"m={m} size={size}: relative error {rel:.2e}, null {null_db(y, ref):.1f} dB"
    with torch.no_grad():
        assert torch.equal(wino(x), y)


def test_cook_toom_rebuilds_the_tabulated_transforms_and_folds_f6():
    """The generic Cook-Toom construction gives the tabulated F(4, 3) matrices exactly from the points
    0, +-1, +-2, and its F(6, 3) runs in the folded ONNX Runtime formulation as the same convolution."""
    from separation.winograd import _MATRICES, WinogradConv2dFold, cook_toom

    built = cook_toom((0.0, 1.0, -1.0, 2.0, -2.0))
    for name, table in _MATRICES[4].items():
        assert torch.equal(built[name], torch.tensor(table, dtype=torch.float64)), name
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 10, 3, 1, 1, bias=True)
    x = torch.randn(2, 6, 13, 20)  # neither side a multiple of 6: the last tiles are partial
    with torch.inference_mode():
        ref, y = conv(x), WinogradConv2dFold(conv, 6)(x)
    assert y.shape == ref.shape
    assert ((y - ref).norm() / ref.norm()).item() < TOLERANCE[6], f"F(6,3) fold: null {null_db(y, ref):.1f} dB"


def test_winograd_conv_refuses_other_convolutions():
    for conv in (nn.Conv2d(4, 4, 3, 2, 1), nn.Conv2d(4, 4, 3, 1, 0), nn.Conv2d(4, 4, 3, 1, 1, groups=2),
                 nn.Conv2d(4, 4, 3, 1, 2, dilation=2), nn.Conv2d(4, 4, 1)):
        with pytest.raises(ValueError):
            WinogradConv2d(conv)
    with pytest.raises(ValueError):
        WinogradConv2d(nn.Conv2d(4, 4, 3, 1, 1), m=3)


def test_winograd_model_matches_the_original_and_leaves_it_untouched():
    from separation.config import ModelSpec
    from separation.model import TFC_TDF_net
    from separation.pretrained import MODELS_DIR

    spec = ModelSpec.from_yaml(MODELS_DIR / "demo_teacher.yaml").replace(
        model={"num_channels": 8, "growth": 8, "num_scales": 2}, audio={"chunk_size": 512 * 31, "dim_t": 32})
    torch.manual_seed(0)
    model = TFC_TDF_net(spec).eval()
    n_conv3 = sum(1 for mod in model.modules() if isinstance(mod, nn.Conv2d) and mod.kernel_size == (3, 3))
    fast = winograd_model(model)

    assert n_conv3 > 0 and fast is not model and fast.spec == model.spec and not fast.training
    assert sum(isinstance(mod, WinogradConv2d) for mod in fast.modules()) == n_conv3
    assert not any(isinstance(mod, nn.Conv2d) and mod.kernel_size == (3, 3) for mod in fast.modules())
    assert not any(isinstance(mod, WinogradConv2d) for mod in model.modules())  # original unchanged
    assert sum(isinstance(mod, nn.Conv2d) for mod in fast.modules()) > 0      # 1x1 and strided convs stay

    wave = torch.randn(1, 2, 512 * 31)
    with torch.inference_mode():
        ref, out = model(wave), fast(wave)
    assert out.shape == ref.shape
    null = null_db(out, ref)
    assert null < -60, f"Winograd model null {null:.1f} dB"


@pytest.mark.parametrize("name", ["grouped_conv", "slices_matmul", "conv_fold"])
@pytest.mark.parametrize("size", [(7, 9), (8, 12)])
@pytest.mark.parametrize("bias", [False, True])
def test_export_formulations_compute_the_same_convolution(name, size, bias):
    """The export-friendly Winograd graphs (the ones eval.timing.winograd_probe times in OpenVINO and
    ONNX Runtime, and the backends export) are the same 3x3 convolution, bias included."""
    from eval.timing.winograd_probe import FORMULATIONS

    torch.manual_seed(0)
    conv = nn.Conv2d(6, 10, 3, 1, 1, bias=bias)
    x = torch.randn(2, 6, *size)
    with torch.inference_mode():
        ref, y = conv(x), FORMULATIONS[name](conv)(x)
    assert y.shape == ref.shape
    assert ((y - ref).norm() / ref.norm()).item() < TOLERANCE[4], f"{name}: null {null_db(y, ref):.1f} dB"


def test_onnx_winograd_export_takes_any_batch_and_picks_the_form_by_width(tmp_path):
    """The ONNX Runtime Winograd graph (folded convs below 512 input channels, the grouped form from
    512 up) exports with a dynamic batch axis and matches the direct convolutions at batch 1 and 3."""
    import onnxruntime as ort  # installed by the set-up: a missing runtime fails, not skips
    from separation.winograd import ONNX_GROUPED_MIN_CHANNELS, WinogradConv2dFold, WinogradConv2dGrouped

    torch.manual_seed(0)
    wide = ONNX_GROUPED_MIN_CHANNELS
    net = nn.Sequential(nn.Conv2d(4, wide, 3, 1, 1), nn.GELU(), nn.Conv2d(wide, 6, 3, 1, 1, bias=False)).eval()
    fast = winograd_model(net, graph="onnx")
    assert isinstance(fast[0], WinogradConv2dFold) and isinstance(fast[2], WinogradConv2dGrouped)
    path = tmp_path / "net.onnx"
    with torch.no_grad():
        torch.onnx.export(fast, (torch.randn(2, 4, 10, 13),), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = torch.randn(batch, 4, 10, 13)
        with torch.no_grad():
            ref = net(x)
        y = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
        assert y.shape == ref.shape
        assert null_db(y, ref) < -80, f"batch {batch}: null {null_db(y, ref):.1f} dB"

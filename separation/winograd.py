"""Inference-only Winograd F(m x m, 3 x 3) replacement for the 3x3 convolutions.

Why: on CPU the full-size TFC_TDF_net spends most of its time in its stride-1, padding-1
3x3 convolutions, which already run close to the fp32 matmul peak. The only way to make
them much faster is to do fewer multiplies. Winograd's minimal filtering (Lavin & Gray,
"Fast Algorithms for Convolutional Neural Networks", 2015) computes an m x m output tile
from an (m+2) x (m+2) input tile with (m+2)^2 instead of 9 m^2 multiplies per channel
pair: 2.25x fewer for m=2 and 4x fewer for m=4. The channel contraction becomes one
batched matmul over the (m+2)^2 tile positions, (P, Cout, Cin) @ (P, Cin, N).

F(6x6, 3x3) (m=6, matrices by :func:`cook_toom` from the points 0, +-1, +-2, +-1/2) does 5.06x fewer,
but its transforms cost more: folded for ONNX Runtime on one thread (Zen 4) it ran level with m=4 at 128
channels (0.520 against 0.524 s) and 1.09x at 256, at a null of -106.6 dB against float64 (m=4: -112.5)
(``results/backends/zen4_s32_profile/f6_probe_1thread.jsonl``), so the exports keep m=4.

Speed: on a CPU, m=4 is the useful setting (the matmul does 4x fewer multiplies; the
transforms, tile gather and scatter cost memory traffic on top of it); m=2 saves too
little to beat a well-tuned direct convolution.

Accuracy (fp32): the result equals the direct convolution up to rounding, but the
transforms amplify rounding error. Measured relative errors ||y - y_ref|| / ||y_ref|| on a
128 -> 128 channel layer: about 7e-7 (m=2) and 2.5e-6 (m=4), i.e. nulls of -123 / -112 dB;
the whole demo_teacher network swapped to Winograd nulls at about -126 dB (m=2) and
-120 dB (m=4) against the original. F(4,3) uses the points 0, +-1, +-2.

Memory: the transformed input and output are (m+2)^2 / m^2 times the size of what they
transform (x2.25 for m=4, x4 for m=2), so :class:`WinogradConv2d` works through the tile
rows in strips of about ``chunk_tiles`` tiles: besides the output (and its strips until they
are joined) it only allocates one padded copy of the input plus a few strip buffers of
(m+2)^2 * channels * chunk_tiles floats (4.7 MB each for 128 channels, m=4, 256 tiles),
which also stay in cache.

Exporting: :class:`WinogradConv2d` does not export (the exporters cannot size its tile gather);
:class:`WinogradConv2dGraph` is the same arithmetic in ops that ONNX and OpenVINO take
(``--backend openvino-winograd``), and :class:`WinogradConv2dFold` / :class:`WinogradConv2dGrouped`
the same again as convolutions and batched MatMuls, which ONNX Runtime runs in its tuned kernels
(``--backend onnx-winograd``).

Only for inference: the module holds the transformed weights as a buffer, not a parameter.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

# Lavin & Gray transforms: Y = A^T [(G g G^T) * (B^T d B)] A.
_MATRICES = {
    2: dict(
        BT=[[1, 0, -1, 0],
            [0, 1, 1, 0],
            [0, -1, 1, 0],
            [0, 1, 0, -1]],
        G=[[1, 0, 0],
           [1 / 2, 1 / 2, 1 / 2],
           [1 / 2, -1 / 2, 1 / 2],
           [0, 0, 1]],
        AT=[[1, 1, 1, 0],
            [0, 1, -1, -1]],
    ),
    4: dict(  # interpolation points 0, 1, -1, 2, -2 (and infinity)
        BT=[[4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1]],
        G=[[1 / 4, 0, 0],
           [-1 / 6, -1 / 6, -1 / 6],
           [-1 / 6, 1 / 6, -1 / 6],
           [1 / 24, 1 / 12, 1 / 6],
           [1 / 24, -1 / 12, 1 / 6],
           [0, 0, 1]],
        AT=[[1, 1, 1, 1, 1, 0],
            [0, 1, -1, 2, -2, 0],
            [0, 1, 1, 4, 4, 0],
            [0, 1, -1, 8, -8, 1]],
    ),
}


# F(6x6, 3x3): the points 0, +-1, +-2, +-1/2 (Lavin & Gray's choice for m = 6), matrices by cook_toom().
F6_POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5)


def cook_toom(points, r: int = 3) -> dict[str, torch.Tensor]:
    """Winograd F(m, r) matrices from ``m + r - 2`` finite interpolation points (and infinity), float64.

    Row j of ``BT`` holds the ascending coefficients of prod_{l != j} (x - p_l), its last row those of
    prod_l (x - p_l); ``G`` row j is (1, p_j, ..., p_j^{r-1}) / prod_{l != j} (p_j - p_l), its last row
    (0, ..., 0, 1); ``AT`` column j is (1, p_j, ..., p_j^{m-1}), its last column (0, ..., 0, 1).
    With the points 0, +-1, +-2 this reproduces the tabulated F(4, 3) exactly."""
    p = [float(v) for v in points]
    a = len(p) + 1
    m = a - r + 1

    def poly(roots):  # ascending coefficients of prod (x - root), length a
        c = [1.0]
        for root in roots:
            c = [0.0] + c
            for k in range(len(c) - 1):
                c[k] -= root * c[k + 1]
        return c + [0.0] * (a - len(c))

    bt = [poly(p[:j] + p[j + 1:]) for j in range(len(p))] + [poly(p)]
    g = []
    for j, pj in enumerate(p):
        f = math.prod(pj - pl for l, pl in enumerate(p) if l != j)
        g.append([pj ** k / f for k in range(r)])
    g.append([0.0] * (r - 1) + [1.0])
    at = [[pj ** i for pj in p] + [1.0 if i == m - 1 else 0.0] for i in range(m)]
    return {"BT": torch.tensor(bt, dtype=torch.float64), "G": torch.tensor(g, dtype=torch.float64),
            "AT": torch.tensor(at, dtype=torch.float64)}


def winograd_matrices(m: int) -> dict[str, torch.Tensor]:
    """``BT`` (a, a), ``G`` (a, 3), ``AT`` (m, a) in float64, with ``a = m + 2``."""
    if m == 6:
        return cook_toom(F6_POINTS)
    if m not in _MATRICES:
        raise ValueError(f"Winograd tile size must be 2, 4 or 6, got {m}")
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in _MATRICES[m].items()}


def is_eligible(conv: nn.Module) -> bool:
    """A plain 3x3 'same' convolution: stride 1, padding 1, dilation 1, groups 1."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros")


def is_target(conv: nn.Module, min_channels: int = 0, min_out_channels: int = 0) -> bool:
    """An eligible 3x3 conv with at least ``min_channels`` input and ``min_out_channels`` output channels:
    what :func:`winograd_model` converts."""
    return is_eligible(conv) and conv.in_channels >= min_channels and conv.out_channels >= min_out_channels


class WinogradConv2d(nn.Module):
    """Drop-in inference replacement for a 3x3/stride-1/padding-1 ``nn.Conv2d``.

    Each 2-D transform (``B^T d B`` and ``A^T M A``) is done as two small matmuls against the
    1-D matrices, one per tile axis; the tile positions stay the leading axes throughout, so
    the transformed input comes out directly in the (P, Cin, N) layout of the batched matmul.
    The tile rows are processed in strips of about ``chunk_tiles`` tiles, so that the
    transformed tensors stay small (in cache) and their memory is recycled.
    """

    def __init__(self, conv: nn.Conv2d, m: int = 4, chunk_tiles: int = 256):
        super().__init__()
        if not is_eligible(conv):
            raise ValueError(f"not a 3x3 stride-1 padding-1 dense conv: {conv}")
        mats = winograd_matrices(m)
        self.m, self.a = m, m + 2
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.chunk_tiles = chunk_tiles
        dtype = conv.weight.dtype
        g = conv.weight.detach().to(torch.float64)                     # (Cout, Cin, 3, 3)
        u = torch.einsum("ur,oirs,vs->uvoi", mats["G"], g, mats["G"])  # G g G^T per (o, i)
        self.register_buffer("u", u.reshape(self.a ** 2, *g.shape[:2]).to(dtype).contiguous())
        self.register_buffer("bt", mats["BT"].to(dtype))
        self.register_buffer("at", mats["AT"].to(dtype))
        bias = None if conv.bias is None else conv.bias.detach().clone()
        self.register_buffer("bias", bias)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, m={self.m}, "
                f"bias={self.bias is not None}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        m = self.m
        nh, nw = -(-h // m), -(-w // m)
        # conv padding 1 on every side, plus enough right/bottom to fill the last tiles
        xp = F.pad(x, (1, nw * m - w + 1, 1, nh * m - h + 1))
        rows = max(1, self.chunk_tiles // (b * nw))
        # strips joined by cat rather than written into views of a preallocated output: an ONNX
        # export of those view writes came out silently wrong (exports use WinogradConv2dGraph)
        strips = [self._tile_rows(xp[:, :, i * m: (i + rows) * m + 2]) for i in range(0, nh, rows)]
        y = torch.cat(strips, dim=2) if len(strips) > 1 else strips[0]
        y = y.reshape(b, self.out_channels, nh * m, nw * m)
        if self.bias is not None:
            y += self.bias.view(-1, 1, 1)  # y is a fresh tensor (cat or reshape copied it)
        if (nh * m, nw * m) != (h, w):
            y = y[:, :, :h, :w].contiguous()
        return y

    def _tile_rows(self, xp: torch.Tensor) -> torch.Tensor:
        """Padded strip ``(B, Cin, n*m + 2, nw*m + 2)`` -> output tiles ``(B, Cout, n, m, nw, m)``."""
        m, a = self.m, self.a
        b, cin = xp.shape[:2]
        n, nw = (xp.shape[2] - 2) // m, (xp.shape[3] - 2) // m
        xt = xp.transpose(0, 1)  # (Cin, B, H, W), a view
        # the one gather copy: position (u, v) of every tile is a strided slice (exports as ONNX Slice)
        d = torch.stack([xt[:, :, u: u + m * n: m, v: v + m * nw: m] for u in range(a) for v in range(a)])
        d = d.view(a, -1)                                     # (a, a*Cin*N), N = B*n*nw
        v = torch.matmul(self.bt, (self.bt @ d).view(a, a, -1))  # B^T d B, (a, a, Cin*N)
        mm = torch.matmul(self.u, v.view(a * a, cin, -1))    # channel contraction (P, Cout, N)
        t = (self.at @ mm.view(a, -1)).view(m, a, -1)        # A^T along the first tile axis
        y = torch.matmul(self.at, t)                          # ... and the second: (m, m, Cout*N)
        return y.view(m, m, -1, b, n, nw).permute(3, 2, 4, 0, 5, 1)


class WinogradConv2dGraph(WinogradConv2d):
    """The same Winograd F(4x4, 3x3) convolution as :class:`WinogradConv2d` (its weights and
    transforms), computed for the ONNX exporter and OpenVINO: static shapes, tiles gathered by
    reshape + slice + concat (no ``unfold``, no writes into views), every transform a MatMul, the
    channel contraction one batched MatMul over the 36 tile positions. ``eval.timing.winograd_probe``
    chose this formulation: in OpenVINO on the AVX2 EPYC it beat the direct convolution from 256
    channels up (1.17x a TFC block at 256, 1.53x at 384) and lost at 128 (0.76x), where the
    transposes and gathers cost more than the multiplies saved
    (``results/backends/winograd_openvino_probe.json``)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__(conv, m=4)
        self.register_buffer("b", self.bt.t().contiguous())

    def _windows(self, x: torch.Tensor, dim: int, n: int) -> torch.Tensor:
        """Overlapping windows of a = m + 2 with step m along ``dim`` (size (n + 1) m) -> (..., n, a, ...)."""
        m, shape = self.m, list(x.shape)
        split = shape[:dim] + [n, m] + shape[dim + 1:]
        head = x.narrow(dim, 0, n * m).reshape(split)
        tail = x.narrow(dim, m, n * m).reshape(split).narrow(dim + 1, 0, self.a - m)
        return torch.cat([head, tail], dim + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        h, w = int(x.shape[2]), int(x.shape[3])  # export constants (see _TiledGraph._size)
        m, a = self.m, self.a
        nh, nw = (h + m - 1) // m, (w + m - 1) // m
        # conv padding 1, and right/bottom up to (n + 1) m so that both window halves reshape
        xp = F.pad(x, (1, nw * m - w + m - 1, 1, nh * m - h + m - 1))
        t = torch.matmul(self._windows(xp, 3, nw), self.b)                  # B along columns: (B, C, Hp, nw, a)
        t = self._windows(t, 2, nh).permute(3, 5, 1, 0, 2, 4).reshape(a, -1)  # (a_u, a_j * C * N)
        v = torch.matmul(self.bt, t).reshape(a * a, self.in_channels, -1)    # B^T d B: (P, Cin, N)
        mm = torch.matmul(self.u, v)                                          # (P, Cout, N)
        y = torch.matmul(self.at, mm.reshape(a, -1)).reshape(m, a, -1)
        y = torch.matmul(self.at, y)                                          # A^T M A: (m, m, Cout * N)
        y = y.reshape(m, m, self.out_channels, b, nh, nw).permute(3, 2, 4, 0, 5, 1)
        y = y.reshape(b, self.out_channels, nh * m, nw * m)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y[:, :, :h, :w] if (nh * m, nw * m) != (h, w) else y


class _TiledGraph(WinogradConv2d):
    """Shared by the convolution-shaped formulations below: the F(4x4, 3x3) weights ``u`` (P, Cout, Cin)
    and 1-D transforms of :class:`WinogradConv2d`, static tile counts, and only the batch axis left to
    the runtime (every reshape keeps -1 there, so the export takes a dynamic batch)."""

    def __init__(self, conv: nn.Conv2d, m: int = 4):
        super().__init__(conv, m=m)

    @staticmethod
    def _size(x: torch.Tensor) -> tuple[int, int]:
        """``(h, w)`` as constants of an export (only the batch axis is dynamic): traced as shape ops,
        ``-(-h // m)`` would become ONNX's truncating Div and size the tiles wrong."""
        return int(x.shape[-2]), int(x.shape[-1])

    def _padded(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        h, w = self._size(x)
        nh, nw = (h + self.m - 1) // self.m, (w + self.m - 1) // self.m
        return F.pad(x, (1, nw * self.m - w + 1, 1, nh * self.m - h + 1)), nh, nw

    def _finish(self, y: torch.Tensor, h: int, w: int) -> torch.Tensor:
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y[:, :, :h, :w] if tuple(y.shape[-2:]) != (h, w) else y


class WinogradConv2dFold(_TiledGraph):
    """F(4x4, 3x3) as three convolutions, for ONNX Runtime: channels folded into the batch, the input
    transform B^T d B one 1 -> 36 stride-4 6x6 conv with fixed weights, the channel contraction one
    36-group 1x1 conv, the output transform A^T M A one 36 -> 1 stride-4 transposed conv. ONNX Runtime
    runs all three in its own tuned conv kernels, where the gather/transpose formulation
    (:class:`WinogradConv2dGraph`) spends its time in generic Slice/Concat/Transpose. One TFC block in
    ONNX Runtime on the AVX-512 EPYC (``python -m eval.timing.winograd_probe --runtime onnx``,
    ``results/backends/winograd_onnx_probe.json``): 1.22x the direct conv at 128 channels, 1.72x at 256,
    1.87x at 384, 1.35x at 512."""

    def __init__(self, conv: nn.Conv2d, m: int = 4):
        super().__init__(conv, m)
        a, m, bt, at = self.a, self.m, self.bt.double(), self.at.double()
        dtype = self.u.dtype
        self.register_buffer("win", torch.einsum("iu,jv->ijuv", bt, bt).reshape(a * a, 1, a, a).to(dtype))
        self.register_buffer("wout", torch.einsum("ri,sj->ijrs", at, at).reshape(a * a, 1, m, m).to(dtype))
        self.register_buffer("u1x1", self.u.reshape(a * a * self.out_channels, self.in_channels, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self._size(x)
        a, m, cin, cout = self.a, self.m, self.in_channels, self.out_channels
        xp, nh, nw = self._padded(x)
        v = F.conv2d(xp.reshape(-1, 1, nh * m + 2, nw * m + 2), self.win, stride=m)  # (B*Cin, P, nh, nw)
        v = v.reshape(-1, cin, a * a, nh, nw).transpose(1, 2).reshape(-1, a * a * cin, nh, nw)
        mm = F.conv2d(v, self.u1x1, groups=a * a)                                      # (B, P*Cout, nh, nw)
        mm = mm.reshape(-1, a * a, cout, nh, nw).transpose(1, 2).reshape(-1, a * a, nh, nw)
        y = F.conv_transpose2d(mm, self.wout, stride=m).reshape(-1, cout, nh * m, nw * m)
        return self._finish(y, h, w)


class WinogradConv2dGrouped(_TiledGraph):
    """F(4x4, 3x3) with the input transform as two depthwise strided convs (kernels (6, 1) and (1, 6),
    stride 4), the channel contraction one batched MatMul over the 36 tile positions and the output
    transform two small MatMuls. In ONNX Runtime it beats :class:`WinogradConv2dFold` from 512 channels
    up, where the tiles are few and the contraction dominates (1.91x the direct conv at 512)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__(conv)
        a, c, bt = self.a, self.in_channels, self.bt
        self.register_buffer("wh", bt.reshape(1, a, a, 1).expand(c, a, a, 1).reshape(c * a, 1, a, 1).contiguous())
        self.register_buffer("ww", bt.reshape(1, a, 1, a).expand(c * a, a, 1, a).reshape(c * a * a, 1, 1, a).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self._size(x)
        a, m, cin, cout = self.a, self.m, self.in_channels, self.out_channels
        xp, nh, nw = self._padded(x)
        v = F.conv2d(xp, self.wh, stride=(m, 1), groups=cin)                 # (B, Cin*a, nh, Wp)
        v = F.conv2d(v, self.ww, stride=(1, m), groups=cin * a)              # (B, Cin*P, nh, nw)
        v = v.reshape(-1, cin, a * a, nh * nw).permute(2, 1, 0, 3).reshape(a * a, cin, -1)
        mm = torch.matmul(self.u, v)                                          # (P, Cout, N)
        y = torch.matmul(self.at, mm.reshape(a, -1)).reshape(m, a, -1)
        y = torch.matmul(self.at, y)                                          # (m, m, Cout*N)
        y = y.reshape(m, m, cout, -1, nh, nw).permute(3, 2, 4, 0, 5, 1).reshape(-1, cout, nh * m, nw * m)
        return self._finish(y, h, w)


# The export-friendly formulations (eval.timing.winograd_probe times each in a runtime).
GRAPH_FORMULATIONS = {"grouped_conv": WinogradConv2dGrouped, "slices_matmul": WinogradConv2dGraph,
                      "conv_fold": WinogradConv2dFold}
# ONNX Runtime: the folded convs below this many input channels, the grouped form from it up.
ONNX_GROUPED_MIN_CHANNELS = 512


def onnx_winograd_conv(conv: nn.Conv2d) -> nn.Module:
    """The formulation ONNX Runtime runs fastest for this conv's width (winograd_onnx_probe.json)."""
    return (WinogradConv2dGrouped if conv.in_channels >= ONNX_GROUPED_MIN_CHANNELS else WinogradConv2dFold)(conv)


def winograd_model(model: nn.Module, m: int = 4, min_channels: int = 0, graph: bool | str = False,
                   min_out_channels: int = 0) -> nn.Module:
    """Deep copy of ``model`` (in eval mode) with every eligible 3x3 conv of at least ``min_channels``
    input and ``min_out_channels`` output channels made Winograd: :class:`WinogradConv2d` (torch eager); with ``graph=True`` (or
    ``"openvino"``) :class:`WinogradConv2dGraph`, for an ONNX export that OpenVINO runs; with
    ``graph="onnx"`` :func:`onnx_winograd_conv`'s choice per width, for ONNX Runtime (m = 4 only)."""
    if graph and m != 4:
        raise ValueError("the exportable Winograd graph is F(4x4, 3x3): m must be 4")
    if graph not in (False, True, "openvino", "onnx"):
        raise ValueError(f"graph must be False, True, 'openvino' or 'onnx', got {graph!r}")
    make = (onnx_winograd_conv if graph == "onnx" else WinogradConv2dGraph if graph
            else lambda conv: WinogradConv2d(conv, m))
    model = copy.deepcopy(model).eval()
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if is_target(child, min_channels, min_out_channels):
                setattr(parent, name, make(child))
    return model

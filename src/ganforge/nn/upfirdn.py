"""FIR-filtered resampling (upsample, filter, downsample) and convolutions fused with it.

StyleGAN2 resamples with a low-pass FIR filter, [1, 3, 3, 1] by default, instead of nearest or
bilinear: ``upfirdn2d`` inserts ``up - 1`` zeros between pixels, pads, convolves with the 2-D
filter and keeps every ``down``-th pixel.  The padding rules below are the ones that keep an
image centred for an even-sized filter, and they are what published networks were trained with,
so a network imported from the reference implementation gives the same numbers here.

Pure PyTorch: these are a few tensor ops each, fast enough on CPU and differentiable twice
(R1 and path-length regularization need that), so no custom kernel is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def setup_filter(taps: Sequence[float] = (1, 3, 3, 1), *, gain: float = 1.0) -> torch.Tensor:
    """The 2-D filter for 1-D ``taps``: their outer product, normalised to sum ``gain``."""
    f = torch.as_tensor(list(taps), dtype=torch.float32)
    if f.ndim == 1:
        f = torch.outer(f, f)
    return f / f.sum() * gain


def _pads(padding: int | Sequence[int]) -> list[int]:
    """``padding`` as ``[x0, x1, y0, y1]``."""
    if isinstance(padding, int):
        return [padding] * 4
    p = list(padding)
    return p * 2 if len(p) == 2 else p


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _zero_insert_channels_last(
    x: torch.Tensor, up: int, x0: int, x1: int, y0: int, y1: int
) -> torch.Tensor:
    """upfirdn2d's zero insertion and padding (negative entries crop) for a channels-last
    ``x``, as one zero tensor in that layout with x's pixels written where they land: the
    reshapes of the general path would make it NCHW, where oneDNN's depthwise filters run
    several times slower, and the pad would fill and copy a second time."""
    n, c, h, w = x.shape
    out_h, out_w = h * up + y0 + y1, w * up + x0 + x1
    u = x.new_zeros(n, out_h, out_w, c).permute(0, 3, 1, 2)

    def placed(first_pad: int, size: int, out: int) -> tuple[int, int, int]:
        """Input pixel i lands at output index first_pad + i * up: the first one inside
        the output, where it lands, and how many land inside."""
        i = max(0, -(first_pad // up))  # ceil(-first_pad / up), at least 0
        r = first_pad + i * up
        count = max(0, min(size - i, -(-(out - r) // up)))
        return r, i, count

    r, i, nh = placed(y0, h, out_h)
    q, j, nw = placed(x0, w, out_w)
    if nh and nw:
        u[:, :, r : r + up * nh : up, q : q + up * nw : up] = x[:, :, i : i + nh, j : j + nw]
    return u


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    *,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample ``x`` [N, C, H, W] by zero insertion, pad (negative crops), convolve with ``f``
    (true convolution: the filter is flipped), then keep every ``down``-th pixel."""
    n, c, h, w = x.shape
    x0, x1, y0, y1 = _pads(padding)
    k = f.shape[-1] if f is not None else 0
    if up > 1 and k and f.shape[-2] == k and x0 == y0 == x1 + up - 1 == y1 + up - 1 < k:
        return _upfir_transposed(x, f * gain, up, k - 1 - x0, down)
    if up > 1 and f is None and gain == 1 and down == 1 and _is_channels_last(x):
        return _zero_insert_channels_last(x, up, x0, x1, y0, y1)
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    if f is not None and x0 == x1 == y0 == y1 >= 0:
        # the same zeros, padded by the convolution itself: no padded copy of the activations
        # and no slice of the gradient in the backward pass (those were about 8 ms of the
        # 335 ms of benchmarks/vs_stylegan2_ada.py's 64 px step on CPU)
        f = (f * gain).to(x.dtype).flip([0, 1])
        x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c, padding=x0)
        return x[:, :, ::down, ::down] if down > 1 else x
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[
        :,
        :,
        max(-y0, 0) : x.shape[2] - max(-y1, 0),
        max(-x0, 0) : x.shape[3] - max(-x1, 0),
    ]
    if f is not None:
        f = (f * gain).to(x.dtype).flip([0, 1])
        weight = f[None, None].repeat(c, 1, 1, 1)
        x = F.conv2d(x, weight, groups=c)
    elif gain != 1:
        x = x * gain
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def _upfir_transposed(
    x: torch.Tensor, f: torch.Tensor, up: int, crop: int, down: int
) -> torch.Tensor:
    """Zero insertion, padding and the filter as one transposed convolution with stride
    ``up`` (the case where the padding is the transposed convolution's own: ``x0 == x1 + up -
    1``, as in ``upsample2d``).  The transposed convolution scatters the filter, so it takes
    ``f`` as it is where upfirdn2d's correlation takes it flipped.  On a contiguous input the
    images and channels all become channels of one image (a view): for 32 grey images from 32
    to 64 px oneDNN takes 0.4 ms forward and backward where the zero-inserted 1-channel
    convolution took 7.5."""
    n, c, h, w = x.shape
    f = f.to(x.dtype)[None, None]
    if x.is_contiguous():
        y = F.conv_transpose2d(
            x.reshape(1, n * c, h, w),
            f.repeat(n * c, 1, 1, 1),
            stride=up,
            padding=crop,
            groups=n * c,
        )
        y = y.reshape(n, c, y.shape[2], y.shape[3])
    else:
        y = F.conv_transpose2d(x, f.repeat(c, 1, 1, 1), stride=up, padding=crop, groups=c)
    return y[:, :, ::down, ::down] if down > 1 else y


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Upsample by ``up`` with ``f``, keeping the image centred (output ``up`` times larger)."""
    k = f.shape[-1]
    pad = [(k + up - 1) // 2, (k - up) // 2]
    return upfirdn2d(x, f, up=up, padding=pad * 2, gain=up * up)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2) -> torch.Tensor:
    """Low-pass with ``f`` and downsample by ``down`` (output ``down`` times smaller)."""
    k = f.shape[-1]
    pad = [(k - down + 1) // 2, (k - down) // 2]
    return upfirdn2d(x, f, down=down, padding=pad * 2)


def _pointwise_from_one_channel(
    x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """A 1x1 convolution of a 1-channel input ([N, 1, H, W] by [O, 1, 1, 1]): an outer
    product, written as one matrix product on CPU.

    oneDNN runs this convolution (a grey image's fromRGB layer) about 10x slower than the
    product, forward and backward (benchmarks/vs_stylegan2_ada.py's 64 px step spent 8% of
    its time in it).  The result is channels-last, the product's own layout; a 1-channel input
    has no layout to follow, and the convolutions after it run in either.  Elsewhere (CUDA)
    the convolution is kept."""
    if x.device.type != "cpu":
        return F.conv2d(x, w, bias)
    n, _, h, width = x.shape
    rows = x.reshape(n * h * width, 1)  # [N, 1, H, W] is already [N*H*W, 1] in memory
    wt = w.reshape(1, -1)
    y = torch.addmm(bias.unsqueeze(0), rows, wt) if bias is not None else rows @ wt
    return y.view(n, h, width, -1).permute(0, 3, 1, 2)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    *,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
    flip_weight: bool = True,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """A 2-D convolution with FIR up- or downsampling, in the order that published StyleGAN2
    weights expect: 2x up as a strided transposed convolution followed by the filter; 2x down
    as the filter followed by a strided convolution; 1x1 kernels resample around the conv.

    ``flip_weight=True`` is correlation (``F.conv2d``), False is true convolution.  ``bias``
    (per output channel) is added by the convolution itself, which needs it to come last: no
    upsampling.
    """
    assert bias is None or up == 1, "a bias inside the convolution cannot precede the filter"
    assert up == 1 or down == 1, "up- and downsampling at once is not used"
    kh, kw = w.shape[-2:]
    fk = f.shape[-1] if f is not None else 1
    p0 = p1 = padding
    if up > 1:
        p0, p1 = p0 + (fk + up - 1) // 2, p1 + (fk - up) // 2
    if down > 1:
        p0, p1 = p0 + (fk - down + 1) // 2, p1 + (fk - down) // 2

    def conv(x, w, stride=1, padding=0):
        if kh == kw == 1 and stride == 1 and padding == 0 and w.shape[1] == 1 and groups == 1:
            return _pointwise_from_one_channel(x, w, bias)
        if not flip_weight and (kh > 1 or kw > 1):
            w = w.flip([2, 3])
        return F.conv2d(x, w, bias, stride=stride, groups=groups, padding=padding)

    if kh == 1 and kw == 1 and down > 1:
        return conv(upfirdn2d(x, f, down=down, padding=[p0, p1, p0, p1]), w)
    if kh == 1 and kw == 1 and up > 1:
        return upfirdn2d(conv(x, w), f, up=up, padding=[p0, p1, p0, p1], gain=up * up)
    if down > 1:
        return conv(upfirdn2d(x, f, padding=[p0, p1, p0, p1]), w, stride=down)
    if up > 1:
        # transposed convolution: weights as [in, out/groups, kh, kw]
        out_ch, in_per_group = w.shape[:2]
        if groups == 1:
            wt = w.transpose(0, 1)
        else:
            wt = w.reshape(groups, out_ch // groups, in_per_group, kh, kw)
            wt = wt.transpose(1, 2).reshape(groups * in_per_group, out_ch // groups, kh, kw)
        p0, p1 = p0 - (kw - 1), p1 - (kw - up)
        pt = max(min(-p0, -p1), 0)
        if flip_weight and (kh > 1 or kw > 1):  # transposed conv flips; undo to match
            wt = wt.flip([2, 3])
        x = F.conv_transpose2d(x, wt, stride=up, padding=pt, groups=groups)
        pad = [p0 + pt, p1 + pt, p0 + pt, p1 + pt]
        return upfirdn2d(x, f, padding=pad, gain=up * up)
    if p0 == p1 and p0 >= 0:
        return conv(x, w, padding=p0)
    return conv(upfirdn2d(x, None, padding=[p0, p1, p0, p1]), w)

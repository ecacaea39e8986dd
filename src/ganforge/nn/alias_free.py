"""The layers of alias-free synthesis (StyleGAN3, Karras et al. 2021, "Alias-Free Generative
Adversarial Networks"): windowed-sinc low-pass filter design, the filtered leaky ReLU and
StyleGAN3's modulated convolution.

A StyleGAN3 layer treats its feature maps as samples of a continuous, band-limited signal.  A
pointwise nonlinearity would create frequencies above the Nyquist limit, so the leaky ReLU runs
at a higher sampling rate: upsample (zero insertion and a low-pass FIR filter), bias + leaky
ReLU (+ clamp), low-pass again and downsample.  The filters are Kaiser-windowed sincs, or, for
the rotation-equivariant configuration, a radially symmetric jinc.  The filter design here
computes the same taps as ``scipy.signal.firwin`` with a ``width`` (a Kaiser window whose beta
follows Kaiser's attenuation formula) with numpy alone, so scipy is not needed at run time;
published networks carry their filters as buffers anyway.

Pure PyTorch: separable filters run as two 1-D grouped convolutions, the downsampling as the
stride of the last one and the upsampling as two 1-D transposed convolutions (no zero-inserted
tensor).  Everything is differentiable twice (R1 needs that).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .style import demodulation_coefficients
from .upfirdn import upfirdn2d


# ----- filter design --------------------------------------------------------------------------
def kaiser_beta(numtaps: int, width: float) -> float:
    """Kaiser's window parameter for a filter of ``numtaps`` whose transition band is
    ``width`` (a fraction of the Nyquist frequency): the attenuation ``2.285 (n - 1) pi width
    + 7.95`` dB turned into beta by Kaiser's empirical formula."""
    atten = 2.285 * (numtaps - 1) * np.pi * width + 7.95
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def kaiser_lowpass(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """A linear-phase low-pass FIR filter (float64, unit DC gain): the ideal response
    ``2 fc sinc(2 fc t)`` sampled at the taps, times a Kaiser window for a transition band
    ``width`` wide (``cutoff``, ``width`` and the sampling rate ``fs`` in the same units)."""
    nyquist = fs / 2
    c = cutoff / nyquist
    t = np.arange(numtaps) - (numtaps - 1) / 2
    taps = c * np.sinc(c * t) * np.kaiser(numtaps, kaiser_beta(numtaps, width / nyquist))
    return taps / taps.sum()


def jinc_lowpass(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """The radially symmetric counterpart of `kaiser_lowpass`, ``[numtaps, numtaps]``: the
    ideal disc-shaped response, ``J1(2 pi fc r) / (pi r)``, times the separable Kaiser window,
    normalised to unit DC gain.  ``numtaps`` must be even (no tap at radius 0)."""
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    j1 = torch.special.bessel_j1(torch.from_numpy(2 * cutoff * np.pi * r)).numpy()
    taps = j1 / (np.pi * r)
    window = np.kaiser(numtaps, kaiser_beta(numtaps, width / (fs / 2)))
    taps = taps * np.outer(window, window)
    return taps / taps.sum()


def design_lowpass_filter(
    numtaps: int, cutoff: float, width: float, fs: float, *, radial: bool = False
) -> torch.Tensor | None:
    """A StyleGAN3 layer's up- or downsampling filter as float32: None (the identity) for one
    tap, else `kaiser_lowpass` (1-D, applied separably) or `jinc_lowpass` (2-D)."""
    if numtaps < 1:
        raise ValueError(f"a filter needs at least one tap, got {numtaps}")
    if numtaps == 1:
        return None
    design = jinc_lowpass if radial else kaiser_lowpass
    return torch.as_tensor(design(numtaps, cutoff, width, fs), dtype=torch.float32)


# ----- filtering ------------------------------------------------------------------------------
def fir_filter(
    x: torch.Tensor, f: torch.Tensor | None, *, gain: float = 1.0, down: int = 1
) -> torch.Tensor:
    """Convolve every channel of ``x`` [N, C, H, W] with ``f`` (true convolution, no padding:
    the output shrinks by the filter size - 1) and keep every ``down``-th pixel.  A 1-D ``f``
    runs separably (along W, then H), each pass with sqrt(``gain``); a 2-D one at once."""
    c = x.shape[1]
    if f is None:
        x = x[:, :, ::down, ::down] if down > 1 else x
        return x * gain if gain != 1 else x
    f = f.to(x.dtype).flip(list(range(f.ndim)))
    if f.ndim == 2:
        weight = (f * gain)[None, None].repeat(c, 1, 1, 1)
        return F.conv2d(x, weight, groups=c, stride=down)
    f = f * math.sqrt(gain)
    row = f.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1)
    x = F.conv2d(x, row, groups=c, stride=(1, down))
    return F.conv2d(x, row.transpose(2, 3), groups=c, stride=(down, 1))


def upsample_separable(
    x: torch.Tensor, f: torch.Tensor, up: int, padding: Sequence[int]
) -> torch.Tensor:
    """``fir_filter(upfirdn2d(x, None, up=up, padding=padding), f, gain=up**2)`` for a 1-D
    ``f``, without the zeros: along W, then H, one transposed convolution with stride ``up``
    (each output takes ``k / up`` of the taps instead of ``k``, and no zero-inserted tensor
    is filled), whose full output is then cropped (or zero-padded) to the padding asked for.
    The transposed convolution scatters the filter, so it takes ``f`` as it is where the
    correlation in `fir_filter` takes it flipped.  1.6x faster than the zero-inserted form for
    a StyleGAN3 layer's upsampling on CPU (measured, [8, 128, 54, 54], 12 taps)."""
    c, k = x.shape[1], f.shape[0]
    x0, x1, y0, y1 = padding
    g = (f * up).to(x.dtype)  # sqrt(up**2) per pass
    # the full output is the zero-inserted signal padded by k - 1 on each side; crop the
    # difference, inside the convolution where it can (its padding crops both ends alike and
    # output_padding gives back up to stride - 1 at the end), else with F.pad (a copy)
    for axis, (p0, p1) in ((3, (x0, x1)), (2, (y0, y1))):
        before, after = k - 1 - p0, k - up - p1
        shape = [1, 1, 1, 1]
        shape[axis] = k
        stride, crop, extra = [1, 1], [0, 0], [0, 0]
        stride[axis - 2] = up
        inside = 0 <= after <= before < after + up
        if inside:
            crop[axis - 2], extra[axis - 2] = before, before - after
        x = F.conv_transpose2d(
            x,
            g.reshape(shape).repeat(c, 1, 1, 1),
            stride=stride,
            padding=crop,
            output_padding=extra,
            groups=c,
        )
        if not inside:
            pads = [0, 0, 0, 0]
            pads[2 * (3 - axis)], pads[2 * (3 - axis) + 1] = -before, -after
            x = F.pad(x, pads)
    return x


def filtered_lrelu(
    x: torch.Tensor,
    up_filter: torch.Tensor | None,
    down_filter: torch.Tensor | None,
    bias: torch.Tensor,
    *,
    up: int = 1,
    down: int = 1,
    padding: Sequence[int] = (0, 0, 0, 0),
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
) -> torch.Tensor:
    """Bias, then ``up``-fold upsampling (zero insertion, ``padding`` [x0, x1, y0, y1] of the
    upsampled image, negative crops, and ``up_filter`` with gain ``up**2``), leaky ReLU with
    ``slope`` times ``gain``, clamp to +-``clamp``, then ``down_filter`` and ``down``-fold
    decimation.  ``slope=1, gain=1`` (the ToRGB layer) leaves only the filtering."""
    x = x + bias.to(x.dtype).reshape(1, -1, 1, 1)
    if up > 1 and up_filter is not None and up_filter.ndim == 1:
        x = upsample_separable(x, up_filter, up, padding)
    else:
        x = upfirdn2d(x, None, up=up, padding=list(padding))
        x = fir_filter(x, up_filter, gain=up * up)
    if slope != 1:
        x = F.leaky_relu(x, slope)
    if gain > 0:
        # the gain goes into the down filter, which is linear, and the clamp's bounds are
        # divided by it (clamp(g t, -c, c) = g clamp(t, -c/g, c/g) for g > 0): one pass
        # fewer over the upsampled activations, the largest tensors of the layer
        if clamp is not None:
            x = x.clamp(-clamp / gain, clamp / gain)
        return fir_filter(x, down_filter, down=down, gain=gain)
    x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return fir_filter(x, down_filter, down=down)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    demodulate: bool = True,
    padding: int = 0,
    input_gain: torch.Tensor | None = None,
) -> torch.Tensor:
    """StyleGAN3's modulated convolution, as one grouped convolution with per-sample weights
    (on CPU the same function with the styles on the activations before one shared
    convolution): ``weight`` [O, I, k, k] scaled per sample by ``styles`` [N, I]; with
    ``demodulate`` the weights and styles are first brought to unit RMS (which keeps half
    precision in range and cancels in the demodulation, but for its 1e-8) and each output
    channel is then scaled to unit norm.  ``input_gain`` (a scalar or [N, I]) scales the input
    channels afterwards: the layer's 1 / RMS of its inputs, tracked during training."""
    n, in_ch = x.shape[:2]
    out_ch, _, kh, kw = weight.shape
    if demodulate:
        weight = weight * weight.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    if x.device.type == "cpu":
        # the same function with the styles (and input gain) on the activations before one
        # shared convolution and the demodulation after it: the grouped convolution with
        # per-sample weights is slower on CPU, as for StyleGAN2 (models/stylegan2.py), and
        # this form keeps the activations' layout: channels-last from the Fourier features on,
        # where oneDNN runs the filtered leaky ReLU's depthwise filters several times faster
        s = styles if input_gain is None else styles * input_gain.expand(n, in_ch)
        x = F.conv2d(x * s.to(x.dtype).reshape(n, in_ch, 1, 1), weight.to(x.dtype), padding=padding)
        if demodulate:
            x = x * demodulation_coefficients(weight, styles).to(x.dtype).reshape(n, out_ch, 1, 1)
        return x
    w = weight.unsqueeze(0) * styles.reshape(n, 1, in_ch, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(n, out_ch, 1, 1, 1)
    if input_gain is not None:
        w = w * input_gain.expand(n, in_ch).reshape(n, 1, in_ch, 1, 1)
    x = x.reshape(1, n * in_ch, *x.shape[2:])
    x = F.conv2d(x, w.reshape(n * out_ch, in_ch, kh, kw).to(x.dtype), padding=padding, groups=n)
    return x.reshape(n, out_ch, *x.shape[2:])

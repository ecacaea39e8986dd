"""Layers of the style-based generators (StyleGAN2 and relatives) with equalized learning rate.

Equalized learning rate: weights are stored as N(0, 1) and scaled by ``1 / sqrt(fan_in)`` at
every forward pass, so Adam's per-parameter step is the same relative size in every layer.  A
layer's ``lr_multiplier`` (0.01 in the mapping network) divides the stored weights and multiplies
the runtime gain, which slows that layer's learning by the same factor.  Activations carry their
own gain (sqrt(2) for leaky ReLU) and are optionally clamped to +-``conv_clamp``.

Parameter and buffer names follow the published StyleGAN2-ADA networks (``weight``, ``bias``,
``affine``, ``noise_strength``, ``noise_const``, ``resample_filter``, ``w_avg``), so their
state dicts load here as they are; see `ganforge.tools.stylegan2_pickle`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .upfirdn import conv2d_resample, setup_filter

#: activation -> (function, default gain)
ACTIVATIONS = {
    "linear": (lambda x: x, 1.0),
    "lrelu": (lambda x: F.leaky_relu(x, 0.2), math.sqrt(2)),
    "relu": (F.relu, math.sqrt(2)),
}


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    act: str = "linear",
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """``clamp(act(x + bias) * gain)``, the bias broadcast along dim 1; ``gain`` defaults to
    the activation's own (sqrt(2) for lrelu, 1 for linear)."""
    fn, default_gain = ACTIVATIONS[act]
    if bias is not None:
        x = x + bias.reshape([1, -1] + [1] * (x.ndim - 2))
    x = fn(x)
    gain = default_gain if gain is None else gain
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each vector to unit root-mean-square (PixelNorm along ``dim``)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """Equalized-LR linear layer with a bias and an activation."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)


class Conv2dLayer(nn.Module):
    """Equalized-LR convolution with optional FIR up/downsampling, bias, activation, clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = ACTIVATIONS[activation][1]
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        if self.up == 1:
            return self._forward_folded(x, gain)
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = conv2d_resample(
            x,
            w,
            self.resample_filter,
            up=self.up,
            down=self.down,
            padding=self.padding,
            flip_weight=self.up == 1,
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        b = self.bias.to(x.dtype) if self.bias is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def _forward_folded(self, x: torch.Tensor, gain: float) -> torch.Tensor:
        """Without upsampling the convolution comes last, so it takes the bias, and the gain
        goes into the weights (every activation here is positively homogeneous: ``act(g t) =
        g act(t)`` for ``g > 0``): the same function as conv + bias_act with one pass over the
        activations after the convolution instead of three."""
        g = self.act_gain * gain
        w = (self.weight * (self.weight_gain * g)).to(x.dtype)
        b = (self.bias * g).to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(
            x,
            w,
            self.resample_filter,
            down=self.down,
            padding=self.padding,
            flip_weight=True,
            bias=b,
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, act=self.activation, gain=1.0, clamp=clamp)


def demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """``1 / sqrt(sum_{i,k} (w[o, i, k] s[n, i])^2 + 1e-8)`` ``[N, O]`` for weight [O, I, k, k]
    and styles [N, I].

    The sum is ``sum_i s[n, i]^2 sum_k w[o, i, k]^2``: an [N, I] x [I, O] product instead of the
    reference's [N, O, I, k, k] tensor of modulated weights, which (with its backward) was the
    largest single cost of a CPU training step.  The same numbers up to float rounding."""
    return (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused: bool = True,
) -> torch.Tensor:
    """StyleGAN2's convolution: scale the input channels of ``weight`` [O, I, k, k] per sample by
    ``styles`` [N, I], then (``demodulate``) rescale each output channel to unit expected
    norm, ``1 / sqrt(sum w^2 + 1e-8)``; ``noise`` is added after demodulation.

    ``fused`` runs it as one grouped convolution with per-sample weights; otherwise the styles
    scale the activations before the shared convolution and the demodulation after it.  Both
    compute the same function; fused is faster at inference, unfused in training.
    """
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:  # keep half precision from overflowing
        weight = weight * (
            1 / math.sqrt(in_ch * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    dcoefs = demodulation_coefficients(weight, styles) if demodulate else None
    if not fused:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(
            x,
            weight.to(x.dtype),
            resample_filter,
            up=up,
            padding=padding,
            flip_weight=flip_weight,
        )
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x
    w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_ch, kh, kw)
    x = conv2d_resample(
        x,
        w.to(x.dtype),
        resample_filter,
        up=up,
        padding=padding,
        groups=n,
        flip_weight=flip_weight,
    )
    x = x.reshape(n, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise
    return x


class MappingNetwork(nn.Module):
    """z (and an embedded label) -> w through an MLP; tracks the mean w for truncation.

    ``z_dim=0`` makes a label-only network (the conditional discriminator's).  With ``num_ws``
    the output is broadcast to ``[N, num_ws, w_dim]``, one w per synthesis layer.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        *,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws, self.num_layers, self.w_avg_beta = num_ws, num_layers, w_avg_beta
        embed_features = (embed_features or w_dim) if c_dim else 0
        layer_features = layer_features or w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            layer = FullyConnectedLayer(
                features[i], features[i + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{i}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None,
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = True,
    ) -> torch.Tensor:
        x = None
        if self.z_dim:
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim:
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if self.w_avg_beta is not None and self.training and update_w_avg:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


class SynthesisLayer(nn.Module):
    """A modulated 3x3 convolution (optionally 2x up), per-pixel noise, bias, leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        *,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATIONS[activation][1]
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        *,
        noise_mode: str = "random",
        fused: bool = True,
        gain: float = 1.0,
    ) -> torch.Tensor:
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            shape = [x.shape[0], 1, self.resolution, self.resolution]
            noise = torch.randn(shape, device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        if not fused and x.dtype != torch.float16:
            return self._forward_unfused(x, styles, noise, gain)
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
            flip_weight=self.up == 1,
            fused=fused,
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(
            x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp
        )

    def _forward_unfused(
        self, x: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None, gain: float
    ) -> torch.Tensor:
        """Training's path: the same function as modulated_conv2d + bias_act in fewer passes
        over the activations.  Every activation here is positively homogeneous (``act(g t) = g
        act(t)`` for ``g > 0``), so the demodulation, the gain and the bias go into one
        multiply-add before the activation instead of a multiply, two adds and a multiply
        around it."""
        n = x.shape[0]
        g = self.act_gain * gain
        scale = demodulation_coefficients(self.weight, styles) * g
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(
            x,
            self.weight.to(x.dtype),
            self.resample_filter,
            up=self.up,
            padding=self.padding,
            flip_weight=self.up == 1,
        )
        shift = (self.bias * g).to(x.dtype).reshape(1, -1, 1, 1)
        x = torch.addcmul(shift, x, scale.to(x.dtype).reshape(n, -1, 1, 1))
        if noise is not None:
            x = x + (noise * g).to(x.dtype)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, act=self.activation, gain=1.0, clamp=clamp)


class ToRGBLayer(nn.Module):
    """A modulated 1x1 convolution to image channels, without demodulation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        *,
        kernel_size: int = 1,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, fused: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class MinibatchStdLayer(nn.Module):
    """Appends the standard deviation across groups of ``group_size`` samples (averaged over
    channels in ``num_channels`` groups and over pixels) as extra feature maps.  Sample ``i``
    belongs to group ``i mod (N / group_size)``."""

    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g:
            raise ValueError(f"minibatch-stddev group size {g} does not divide the batch of {n}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)
        y = y.repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)

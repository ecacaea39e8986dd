"""Pixel metrics of image-to-image outputs against their targets: L1, PSNR and SSIM.

Pure functions of image tensors ``[N, C, H, W]`` in [-1, 1] (the library's image range), with
an optional hole mask ``[N, 1, H, W]`` (1 = hole, the pixels an inpainting model filled) that
restricts a figure to the hole.  Each returns one value per image ``[N]`` (float64); a report
averages them over the images, so a set scored in chunks gives the same figure as in one go.
Images are clamped to [-1, 1] first (outputs slightly outside the range cannot be stored in an
image file either) and computed in float64.

- L1 is in the library's [-1, 1] units, the units of the L1 losses pix2pix trains with; halve
  it for [0, 1] units, multiply by 127.5 for 8-bit levels.
- PSNR and SSIM are on images mapped to [0, 1] (peak 1, data range 1), as image-restoration
  papers report them; PSNR is in dB, capped at 100 dB (a mean squared error below 1e-10, an
  output equal to its target), so that a report stays finite.
- SSIM follows Wang et al. 2004: an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03,
  population (not sample) variances; per channel, the mean of the SSIM map over the positions
  whose window lies inside the image.  That is scikit-image's ``structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UserError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
#: PSNR of an output equal to its target would be infinite; below this error it reads 100 dB
MSE_FLOOR = 1e-10


def _pair(
    outputs: torch.Tensor, targets: torch.Tensor, *, unit: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets as float64 on the CPU, clamped to [-1, 1] (mapped to [0, 1] when ``unit``),
    after checking that they line up."""
    if outputs.ndim != 4 or outputs.shape != targets.shape:
        raise ValueError(
            f"outputs and targets must be [N, C, H, W] of one shape, got "
            f"{tuple(outputs.shape)} and {tuple(targets.shape)}"
        )

    def prepare(x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to("cpu", torch.float64).clamp(-1, 1)
        return (x + 1) / 2 if unit else x

    return prepare(outputs), prepare(targets)


def _hole(masks: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """The hole as a float64 ``[N, 1, H, W]`` of 0/1, or None for the whole image."""
    if masks is None:
        return None
    n, _, h, w = like.shape
    if masks.shape != (n, 1, h, w):
        raise ValueError(f"masks must be [N, 1, H, W] = {[n, 1, h, w]}, got {list(masks.shape)}")
    return (masks.detach().to("cpu") > 0.5).to(torch.float64)


def _mean_per_image(values: torch.Tensor, hole: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values [N, C, H, W]`` per image, over the hole only when one is given; an
    image without hole pixels gives NaN (the caller leaves it out)."""
    if hole is None:
        return values.mean(dim=(1, 2, 3))
    weights = hole.expand_as(values)
    return (values * weights).sum(dim=(1, 2, 3)) / weights.sum(dim=(1, 2, 3))


def l1_error(
    outputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean absolute error per image ``[N]`` in [-1, 1] units (0 to 2), over all pixels and
    channels, or over the hole only when ``masks`` is given."""
    out, tgt = _pair(outputs, targets, unit=False)
    return _mean_per_image((out - tgt).abs(), _hole(masks, out))


def psnr(
    outputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None = None
) -> torch.Tensor:
    """Peak signal-to-noise ratio per image ``[N]`` in dB, on [0, 1] images (peak 1):
    ``10 log10(1 / MSE)``, the MSE over all pixels and channels (or the hole), capped at 100 dB."""
    out, tgt = _pair(outputs, targets, unit=True)
    mse = _mean_per_image((out - tgt).square(), _hole(masks, out))
    return 10 * torch.log10(1 / mse.clamp_min(MSE_FLOOR))


def _gaussian_window() -> torch.Tensor:
    """The normalized 1-D Gaussian ``[11]`` of sigma 1.5 (scipy's ``gaussian_filter`` taps)."""
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64) - SSIM_WINDOW // 2
    taps = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return taps / taps.sum()


def _filter(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of each channel, 'valid' positions only: ``[N, C, H-10, W-10]``."""
    taps = _gaussian_window()
    channels = x.shape[1]
    rows = taps.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    cols = taps.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    return F.conv2d(F.conv2d(x, rows, groups=channels), cols, groups=channels)


def ssim_map(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The SSIM map ``[N, C, H-10, W-10]`` of [-1, 1] images (scored in [0, 1]): one value per
    position whose 11x11 window lies inside the image, so no padding enters it."""
    x, y = _pair(outputs, targets, unit=True)
    h, w = x.shape[-2:]
    if min(h, w) < SSIM_WINDOW:
        raise UserError(
            f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (its Gaussian "
            f"window), got {w}x{h}; drop ssim for images this small"
        )
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # (K L)^2 with data range L = 1
    mu_x, mu_y = _filter(x), _filter(y)
    var_x = _filter(x * x) - mu_x * mu_x
    var_y = _filter(y * y) - mu_y * mu_y
    cov = _filter(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    return numerator / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))


def ssim(
    outputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None = None
) -> torch.Tensor:
    """Structural similarity per image ``[N]`` (1 for identical images): the mean of the SSIM
    map over channels and positions, or over the positions inside the hole when ``masks`` is
    given (the hole cropped like the map: a hole pixel within 5 pixels of the border has no
    window of its own and does not count)."""
    values = ssim_map(outputs, targets)
    hole = _hole(masks, outputs)
    if hole is not None:
        crop = SSIM_WINDOW // 2
        hole = hole[..., crop:-crop, crop:-crop]
    return _mean_per_image(values, hole)

"""Regularizers of D and G as pure functions of networks, images and D's outputs.

Penalties return dicts like the losses (``"loss"`` is what to back-propagate, the other keys are
the unweighted terms for reporting).  The in-place helpers (``clip_weights_``,
``add_spectral_norm``) change a module and are meant to be called by the model, not the engine.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

Losses = dict[str, torch.Tensor]

# The layers whose weights carry the network's linear maps: every conv (also transposed) and
# linear layer.  Embeddings are lookup tables, not maps, and are left out by default.
_WEIGHT_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)


def gradient_penalty(
    critic: Callable[..., torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    weight: float = 10.0,
    one_sided: bool = False,
    labels: torch.Tensor | None = None,
) -> Losses:
    """WGAN-GP (Gulrajani et al. 2017): ``E[(||grad_x D(x_hat)|| - 1)^2]`` on interpolates.

    ``x_hat = a * real + (1 - a) * fake`` with one ``a ~ U(0, 1)`` per sample, drawn from the
    global RNG.  ``real`` and ``fake`` ``[N, ...]`` are detached here, so only the critic's
    parameters get gradients (through ``create_graph``).  ``critic(images)`` or, with ``labels``,
    ``critic(images, labels)`` returns ``[N]``.  ``one_sided`` penalises only norms above 1,
    ``relu(||g|| - 1)^2``, the variant the paper discusses in section 4 and sets aside.

    Returns ``{"loss": weight * gp, "gp": gp, "grad_norm": mean ||g|| (detached)}``."""
    real, fake = real.detach(), fake.detach()
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device)
    x_hat = torch.lerp(fake, real, alpha.to(real.dtype)).requires_grad_(True)
    scores = critic(x_hat) if labels is None else critic(x_hat, labels)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norm = grad.flatten(1).norm(2, dim=1)
    excess = F.relu(norm - 1.0) if one_sided else norm - 1.0
    gp = excess.square().mean()
    return {"loss": weight * gp, "gp": gp, "grad_norm": norm.mean().detach()}


def _input_gradient_penalty(
    images: torch.Tensor, logits: torch.Tensor, gamma: float, interval: int, which: str
) -> Losses:
    if not images.requires_grad:
        raise ValueError(
            f"{which}_penalty: the images do not require grad; call images.requires_grad_(True) "
            "before computing D's logits on them"
        )
    (grad,) = torch.autograd.grad(logits.sum(), images, create_graph=True)
    penalty = grad.square().flatten(1).sum(1).mean()
    return {"loss": (gamma / 2) * penalty * interval, which: penalty}


def r1_penalty(
    real_images: torch.Tensor, real_logits: torch.Tensor, *, gamma: float, interval: int = 1
) -> Losses:
    """R1 (Mescheder et al. 2018): ``gamma/2 * E||grad_x D(x)||^2`` on real images ``[N, ...]``.

    The caller sets ``real_images.requires_grad_(True)`` *before* computing ``real_logits``
    (``[N]``) from them, so the graph reaches the images.  For lazy regularization (StyleGAN2)
    run this every ``interval`` D steps and pass ``interval``: the loss is multiplied by it, so
    the penalty keeps its average strength.  Returns ``{"loss", "r1": E||grad||^2}``."""
    return _input_gradient_penalty(real_images, real_logits, gamma, interval, "r1")


def r2_penalty(
    fake_images: torch.Tensor, fake_logits: torch.Tensor, *, gamma: float, interval: int = 1
) -> Losses:
    """R2: the same as :func:`r1_penalty` on generated images (detach them from G and set
    ``requires_grad_(True)`` before computing ``fake_logits``).  Returns ``{"loss", "r2"}``."""
    return _input_gradient_penalty(fake_images, fake_logits, gamma, interval, "r2")


def _raw_weight(layer: nn.Module) -> torch.Tensor:
    """The trainable weight, under any parametrization (such as spectral norm): reading
    ``layer.weight`` there would run an extra power iteration in training mode."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original
    return layer.weight


def orthogonal_regularization(
    module: nn.Module,
    *,
    weight: float = 1e-4,
    exclude: tuple[type[nn.Module], ...] = (nn.Embedding,),
) -> torch.Tensor:
    """BigGAN's orthogonal regularization (Brock et al. 2019, section 3.1):
    ``weight * sum_W ||W W^T * (1 - I)||_F^2`` over every conv and linear layer.

    Each weight is viewed as ``[out, -1]`` (one row per output filter; transposed convolutions
    store ``[in, out, ...]`` and are transposed first), so only the cosine-like overlap between
    different filters is penalised, not their norms.  Layers of the ``exclude`` types are skipped.
    Returns a scalar tensor (0 when there is no such layer)."""
    total = None
    for layer in module.modules():
        if not isinstance(layer, _WEIGHT_LAYERS) or isinstance(layer, exclude):
            continue
        w = _raw_weight(layer)
        if isinstance(layer, nn.modules.conv._ConvTransposeNd):
            w = w.transpose(0, 1)
        w = w.reshape(w.shape[0], -1)
        gram = w @ w.T
        off_diagonal = gram - torch.diag_embed(torch.diagonal(gram))
        term = off_diagonal.square().sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return weight * total


@torch.no_grad()
def clip_weights_(module: nn.Module, c: float = 0.01) -> None:
    """Clamp every parameter of ``module`` to ``[-c, c]`` in place (the original WGAN's
    Lipschitz constraint; call it after each critic step)."""
    for param in module.parameters():
        param.clamp_(-c, c)


def add_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalise (Miyato et al. 2018) the weight of every Conv/ConvTranspose/Linear
    layer inside ``module`` (recursively, including ``module`` itself); embeddings and other
    layers are left alone, as are layers already parametrized.  Returns ``module``.

    Run it while building the network, *before* optimizers, EMA copies, DistributedDataParallel
    or checkpoint loading: each ``weight`` becomes ``parametrizations.weight.original`` in
    ``named_parameters``/``state_dict`` (the same tensor, renamed) and gains the ``_u``/``_v``
    power-iteration buffers, so anything that recorded the module's parameters, names or keys
    earlier is out of step with it.  In training mode every read of ``layer.weight`` runs one
    power iteration; in eval mode the last estimate is reused."""
    for layer in list(module.modules()):  # a snapshot: the parametrizations add modules
        if isinstance(layer, _WEIGHT_LAYERS) and not parametrize.is_parametrized(layer, "weight"):
            spectral_norm(layer)
    return module

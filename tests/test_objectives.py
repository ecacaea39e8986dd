"""Losses, regularizers and DiffAugment checked against numbers computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganforge.augment import POLICIES, diff_augment, parse_policy
from ganforge.errors import UserError
from ganforge.losses import (
    LOSSES,
    PROBABILISTIC_LOSSES,
    d_hinge,
    d_lsgan,
    d_minimax,
    d_nonsaturating,
    d_wasserstein,
    g_hinge,
    g_lsgan,
    g_minimax,
    g_nonsaturating,
    g_wasserstein,
    get_loss,
    reconstruction_loss,
)
from ganforge.regularizers import (
    add_spectral_norm,
    clip_weights_,
    gradient_penalty,
    orthogonal_regularization,
    r1_penalty,
    r2_penalty,
)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def close(value: torch.Tensor | float, expected: float, tol: float = 1e-6) -> bool:
    return abs(torch.as_tensor(value).detach().item() - expected) <= tol


# ---- losses -------------------------------------------------------------------------------------


def test_bce_losses_at_zero_logits_are_log_2():
    # D(x) = sigmoid(0) = 1/2: each BCE term is log 2; D's loss is the halved sum.
    zeros = t(0.0, 0.0)
    d = d_nonsaturating(zeros, zeros)
    assert close(d["real"], math.log(2)) and close(d["fake"], math.log(2))
    assert close(d["loss"], math.log(2))
    assert close(g_nonsaturating(zeros)["loss"], math.log(2))
    assert close(g_minimax(zeros)["loss"], -math.log(2))  # log(1 - 1/2)
    assert close(d_minimax(zeros, zeros)["loss"], math.log(2))


def test_label_smoothing_moves_the_real_target():
    # BCE(0, target 0.9) = log 2 whatever the target; at logit 10 it is 0.1 * 10 + softplus(-10).
    d = d_nonsaturating(t(10.0), t(0.0), real_target=0.9)
    assert close(d["real"], 0.1 * 10 + math.log1p(math.exp(-10)), 1e-5)


def test_minimax_saturates_where_nonsaturating_does_not():
    # At a fake logit of -20 (D sure it is fake): d/dl of -softplus(l) is -sigmoid(-20) ~ -2e-9,
    # d/dl of softplus(-l) is -sigmoid(20) ~ -1.
    grads = {}
    for name, g_fn in (("minimax", g_minimax), ("nonsaturating", g_nonsaturating)):
        logit = t(-20.0).requires_grad_(True)
        g_fn(logit)["loss"].backward()
        grads[name] = float(logit.grad)
    assert abs(grads["minimax"]) < 1e-8
    assert close(grads["nonsaturating"], -1.0, 1e-6)


def test_hinge():
    assert close(d_hinge(t(2.0), t(-2.0))["loss"], 0.0)  # both beyond the margin
    d = d_hinge(t(0.0, 0.5), t(0.0, 1.0))  # real: (1 + 0.5)/2, fake: (1 + 2)/2
    assert close(d["real"], 0.75) and close(d["fake"], 1.5) and close(d["loss"], 2.25)
    assert close(g_hinge(t(1.0, 3.0))["loss"], -2.0)


def test_wasserstein_reports_the_critics_estimate():
    d = d_wasserstein(t(1.0, 3.0), t(0.5, -0.5))
    assert close(d["wasserstein"], 2.0)  # mean(real) - mean(fake) = 2 - 0
    assert close(d["loss"], -2.0)
    assert close(d["real"] + d["fake"], -2.0)
    assert close(g_wasserstein(t(1.0, 3.0))["loss"], -2.0)


def test_lsgan():
    assert close(d_lsgan(t(1.0), t(0.0))["loss"], 0.0)  # both on target
    assert close(d_lsgan(t(0.0), t(1.0))["loss"], 1.0)  # 1/2 * 1 + 1/2 * 1
    assert close(g_lsgan(t(1.0))["loss"], 0.0)
    assert close(g_lsgan(t(-1.0))["loss"], 2.0)  # 1/2 * (-2)^2


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_gives_scalar_parts_and_gradients(name):
    d_fn, g_fn = get_loss(name)
    real, fake = torch.randn(4, requires_grad=True), torch.randn(4, requires_grad=True)
    d = d_fn(real, fake)
    assert {"loss", "real", "fake"} <= d.keys()
    assert all(v.dim() == 0 for v in d.values())
    d["loss"].backward()
    assert real.grad is not None and fake.grad is not None
    assert g_fn(fake)["loss"].dim() == 0


def test_loss_table():
    assert set(LOSSES) == {"nonsaturating", "minimax", "hinge", "wasserstein", "lsgan", "logistic"}
    assert set(PROBABILISTIC_LOSSES) == {"nonsaturating", "minimax"}
    assert get_loss("hinge") == (d_hinge, g_hinge)


def test_unknown_loss_is_a_one_line_user_error_with_a_suggestion():
    with pytest.raises(UserError) as err:
        get_loss("hingee")
    message = str(err.value)
    assert "\n" not in message and "'hingee'" in message
    assert "did you mean: hinge" in message
    assert all(name in message for name in LOSSES)


def test_reconstruction_loss():
    a, b = t(0.0, 0.0), t(1.0, -3.0)
    assert close(reconstruction_loss(a, b), 2.0)  # (1 + 3) / 2
    assert close(reconstruction_loss(a, b, kind="l2"), 5.0)  # (1 + 9) / 2
    with pytest.raises(UserError):
        reconstruction_loss(a, b, kind="l3")


# ---- regularizers -------------------------------------------------------------------------------


def linear_critic(w: list[float]) -> nn.Linear:
    """f(x) = <w, x> on flattened [N, 1, 2, 2] images: its input gradient is w everywhere."""
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(t(*w)[None])
    return layer


def critic_fn(layer: nn.Linear):
    return lambda x: layer(x.flatten(1)).squeeze(1)


def test_gradient_penalty_of_a_linear_critic():
    torch.manual_seed(0)
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    small = linear_critic([0.3, 0.4, 0.0, 0.0])  # ||w|| = 0.5
    out = gradient_penalty(critic_fn(small), real, fake)
    assert close(out["gp"], 0.25) and close(out["loss"], 2.5, 1e-5)  # (0.5 - 1)^2, times 10
    assert close(out["grad_norm"], 0.5)
    assert close(gradient_penalty(critic_fn(small), real, fake, one_sided=True)["gp"], 0.0)

    big = linear_critic([1.2, 1.6, 0.0, 0.0])  # ||w|| = 2: both variants give (2 - 1)^2
    assert close(gradient_penalty(critic_fn(big), real, fake)["gp"], 1.0, 1e-5)
    assert close(gradient_penalty(critic_fn(big), real, fake, one_sided=True)["gp"], 1.0, 1e-5)


def test_gradient_penalty_reaches_the_critics_parameters():
    # gp = (||w|| - 1)^2, so d(10 gp)/dw = 20 (||w|| - 1) w / ||w|| = [-6, -8, 0, 0] at w = (.3, .4)
    critic = linear_critic([0.3, 0.4, 0.0, 0.0])
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2, requires_grad=True)
    gradient_penalty(critic_fn(critic), real, fake)["loss"].backward()
    torch.testing.assert_close(critic.weight.grad, t(-6.0, -8.0, 0.0, 0.0)[None])
    assert fake.grad is None  # the interpolates are detached from G


def test_gradient_penalty_passes_labels():
    seen = []

    def critic(x, labels):
        seen.append(labels)
        return x.flatten(1).sum(1)

    labels = torch.tensor([1, 2])
    gradient_penalty(critic, torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2), labels=labels)
    assert seen and seen[0] is labels


def test_r1_and_r2_of_a_linear_discriminator():
    # D(x) = sum(a * x) per sample: grad_x D = a, so R1 = gamma/2 * ||a||^2 = 10/2 * 9 = 45.
    a = t(1.0, 2.0, 2.0, 0.0).reshape(1, 1, 2, 2)
    images = torch.randn(3, 1, 2, 2).requires_grad_(True)
    logits = (images * a).flatten(1).sum(1)
    out = r1_penalty(images, logits, gamma=10.0)
    assert close(out["r1"], 9.0, 1e-5) and close(out["loss"], 45.0, 1e-4)
    lazy = r1_penalty(images, logits, gamma=10.0, interval=16)
    assert close(lazy["loss"], 45.0 * 16, 1e-3)
    r2 = r2_penalty(images, logits, gamma=10.0)
    assert close(r2["r2"], 9.0, 1e-5) and close(r2["loss"], 45.0, 1e-4)


def test_r1_explains_missing_requires_grad():
    images = torch.randn(2, 1, 2, 2)
    with pytest.raises(ValueError, match="requires_grad_"):
        r1_penalty(images, images.flatten(1).sum(1), gamma=1.0)


def test_orthogonal_regularization():
    orthonormal = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        orthonormal.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.6, 0.8, 0.0]]))
    conv = nn.Conv2d(1, 3, 2)  # weight [3, 1, 2, 2] -> rows of 4
    nn.init.orthogonal_(conv.weight)
    # The embedding's rows overlap, but embeddings are excluded by default.
    net = nn.Sequential(nn.Embedding(3, 4), orthonormal, conv)
    assert close(orthogonal_regularization(net), 0.0)

    skewed = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        skewed.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    # W W^T = [[1, 1], [1, 2]]; off-diagonal squares: 1 + 1 = 2.
    assert close(orthogonal_regularization(skewed, weight=1e-4), 2e-4, 1e-9)
    # Under spectral norm it penalises the trainable (raw) weight.
    assert close(orthogonal_regularization(add_spectral_norm(skewed), weight=1.0), 2.0, 1e-6)

    # A transposed conv stores [in, out, k, k]: one output filter is one row, never penalised.
    transposed = nn.ConvTranspose2d(2, 1, 1, bias=False)
    with torch.no_grad():
        transposed.weight.fill_(1.0)
    assert close(orthogonal_regularization(transposed, weight=1.0), 0.0)


def test_clip_weights_bounds_every_parameter():
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(10.0)
    clip_weights_(net, 0.01)
    values = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert values.abs().max() <= 0.01
    assert (values.abs() == 0.01).any()


def test_spectral_norm_bounds_the_largest_singular_value():
    torch.manual_seed(0)
    linear = nn.Linear(8, 6)
    with torch.no_grad():
        linear.weight.mul_(5.0)
    net = nn.Sequential(
        linear,
        nn.Sequential(nn.Conv2d(2, 3, 3), nn.ConvTranspose2d(3, 2, 3)),
        nn.Embedding(5, 4),
    )
    assert add_spectral_norm(net) is net
    add_spectral_norm(net)  # a second call adds nothing
    parametrized = [name for name, _ in net.named_parameters() if "original" in name]
    assert parametrized == [
        "0.parametrizations.weight.original",
        "1.0.parametrizations.weight.original",
        "1.1.parametrizations.weight.original",
    ]
    for _ in range(20):  # in training mode each forward pass runs one power iteration
        linear(torch.randn(2, 8))
    sigma = torch.linalg.matrix_norm(linear.weight.detach(), ord=2)
    assert abs(float(sigma) - 1.0) < 1e-2


# ---- DiffAugment --------------------------------------------------------------------------------


def images(n: int = 4, c: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_diff_augment_keeps_shapes_and_lets_gradients_through(policy):
    for channels in (1, 3):
        x = images(c=channels).requires_grad_(True)
        before = x.detach().clone()
        out = diff_augment(x, policy, generator=gen())
        assert out.shape == x.shape
        out.square().sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        assert torch.equal(x.detach(), before)  # x itself untouched


def test_empty_policy_is_the_identity():
    x = images()
    assert torch.equal(diff_augment(x, ""), x)
    assert parse_policy("") == ()


def test_color_on_a_constant_image_is_a_brightness_shift():
    # Saturation and contrast scale deviations from a mean, and a constant image has none.
    out = diff_augment(torch.zeros(256, 3, 4, 4), "color", generator=gen())
    shift = out[:, 0, 0, 0]
    assert torch.equal(out, shift[:, None, None, None].expand_as(out))
    assert shift.min() >= -0.5 and shift.max() <= 0.5
    assert shift.min() < -0.4 and shift.max() > 0.4


def test_color_keeps_gray_images_gray():
    gray = images(c=1).repeat(1, 3, 1, 1)
    out = diff_augment(gray, "color", generator=gen())
    torch.testing.assert_close(out[:, 0], out[:, 1])
    torch.testing.assert_close(out[:, 0], out[:, 2])


def shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``image`` [C, H, W] moved dy down and dx right, the uncovered border 0."""
    _, h, w = image.shape
    out = torch.zeros_like(image)
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_translation_moves_a_bright_pixel_by_whole_pixels():
    # 16 px: shifts up to 16 // 8 = 2 in each direction.
    x = torch.full((64, 1, 16, 16), -1.0)
    x[:, :, 8, 8] = 1.0
    out = diff_augment(x, "translation", generator=gen())
    offsets = set()
    for i in range(64):
        (row, col) = (out[i, 0] == 1.0).nonzero()[0].tolist()
        assert (out[i] == 1.0).sum() == 1
        dy, dx = row - 8, col - 8
        assert abs(dy) <= 2 and abs(dx) <= 2
        assert torch.equal(out[i], shifted(x[i], dy, dx))  # the rest moves with it, 0 fills
        offsets.add((dy, dx))
    assert len(offsets) > 10  # of the 25 possible


def test_cutout_zeroes_one_half_size_square_clipped_at_the_borders():
    x = images(n=64, c=2) + 3.0  # in [2, 4]: no zeros of its own
    out = diff_augment(x, "cutout", generator=gen())
    full_squares = 0
    for i in range(64):
        cut = out[i, 0] == 0
        assert torch.equal(cut, out[i, 1] == 0)  # the same square in every channel
        rows, cols = cut.any(1).nonzero().flatten(), cut.any(0).nonzero().flatten()
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        box = torch.zeros_like(cut)
        box[top:bottom, left:right] = True
        assert torch.equal(cut, box)  # a single rectangle
        # 8 x 8 (half of 16), or clipped to at least 4 where it crosses an edge.
        for size, at_edge in (
            (bottom - top, top == 0 or bottom == 16),
            (right - left, left == 0 or right == 16),
        ):
            assert size == 8 or (at_edge and 4 <= size < 8)
        full_squares += int(bottom - top == 8 and right - left == 8)
        assert torch.equal(out[i][:, ~cut], x[i][:, ~cut])  # untouched elsewhere
    assert full_squares > 10


def test_same_seed_same_augmentation():
    x = images()
    a = diff_augment(x, generator=gen(7))
    b = diff_augment(x, generator=gen(7))
    c = diff_augment(x, generator=gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_policy_parsing():
    assert parse_policy(" color , cutout ") == ("color", "cutout")
    assert parse_policy(list(POLICIES)) == POLICIES
    with pytest.raises(UserError) as err:
        parse_policy("color,transl")
    message = str(err.value)
    assert "\n" not in message and "'transl'" in message and "translation" in message
    with pytest.raises(UserError):
        diff_augment(images(), "color,flip")


def test_logistic_is_the_unhalved_nonsaturating_loss():
    real, fake = torch.tensor([1.5, -0.3]), torch.tensor([0.2, -2.0])
    d_fn, g_fn = get_loss("logistic")
    half = get_loss("nonsaturating")[0](real, fake)["loss"]
    assert d_fn(real, fake)["loss"].item() == pytest.approx(2 * half.item())
    expected = torch.nn.functional.softplus(-fake).mean()
    assert g_fn(fake)["loss"].item() == pytest.approx(expected.item())

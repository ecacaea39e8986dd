"""The G/D scheme shared by every family with one generator and one discriminator, and the
objective settings any of them can compose: loss, regularizers, augmentation, spectral norm.

G steps first and hands its fakes to the first D step of the same iteration through ``ctx``, so
each iteration runs G forward once (as the common single-file references do).  With
``n_critic`` > 1 the further D steps draw fresh real batches and fakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..augment import diff_augment, parse_policy
from ..errors import UserError, check
from ..losses import LOSSES, PROBABILISTIC_LOSSES, get_loss
from ..regularizers import (
    add_spectral_norm,
    clip_weights_,
    gradient_penalty,
    orthogonal_regularization,
    r1_penalty,
    r2_penalty,
)
from .base import SCHEDULES, Batch, GANModel, Losses, LRSchedule, OptimSpec, Phase

D_OUTPUTS = ("logit", "sigmoid")
SN_SCOPES = ("D", "G", "both")
# losses that read D's output as a probability's logit, and so also work with a sigmoid D
SIGMOID_LOSSES = frozenset({"nonsaturating", "minimax", "logistic"})


@dataclass
class RegConfig:
    """Regularizers; 0 switches each off."""

    gp: float = 0.0  # gradient penalty weight on interpolates (WGAN-GP: 10)
    gp_one_sided: bool = False  # penalise only gradient norms above 1
    r1: float = 0.0  # R1 gamma: gradient penalty on real images (StyleGAN2)
    r2: float = 0.0  # R2 gamma: the same on generated images
    # lazy interval of the penalties (R1, R2 and gp): every N steps in a D step of their own,
    # the loss scaled by N (StyleGAN2's lazy R1; Karras et al. 2020)
    every: int = 1
    clip: float = 0.0  # clamp D's weights to [-clip, clip] after each step (WGAN: 0.01)
    ortho: float = 0.0  # orthogonal regularization of G's weights (BigGAN: 1e-4)
    # drift * E[D(real)^2] (ProGAN: 0.001): a Wasserstein critic's loss depends only on the
    # difference of its outputs, so nothing else stops them drifting far from 0 together
    drift: float = 0.0


@dataclass
class Objective:
    """Settings every two-player family accepts (``--set loss=hinge --set reg.r1=10``)."""

    loss: str = "nonsaturating"  # nonsaturating | minimax | hinge | wasserstein | lsgan | logistic
    reg: RegConfig = field(default_factory=RegConfig)
    augment: str = "none"  # none | diffaugment (applied to real and fake before D)
    augment_policy: str = "color,translation,cutout"
    spectral_norm: bool = False  # spectral normalization (Miyato et al. 2018)
    spectral_norm_scope: str = "D"  # which networks it normalises: D | G | both
    n_critic: int = 1  # D steps per G step
    optimizer: str = "adam"  # adam | rmsprop
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    label_smoothing: float = 0.0  # one-sided, for the probabilistic losses: real target 1 - this
    # D's last activation: logit (raw scores; the losses apply any sigmoid themselves) or
    # sigmoid (probabilities, as in the classic nn.Sigmoid + nn.BCELoss references)
    d_output: str = "logit"
    # learning rate of both players as a pure function of the step: constant; linear (constant
    # for lr_decay_start steps, then to zero over lr_decay_steps); step (times lr_decay_gamma
    # every lr_decay_steps after lr_decay_start)
    lr_schedule: str = "constant"
    lr_decay_start: int = 0
    lr_decay_steps: int = 0
    lr_decay_gamma: float = 0.1

    def validate(self) -> None:
        check(self.loss in LOSSES, "loss", self.loss, f"use one of {', '.join(LOSSES)}")
        check(
            self.spectral_norm_scope in SN_SCOPES,
            "spectral_norm_scope",
            self.spectral_norm_scope,
            f"use one of {', '.join(SN_SCOPES)}",
        )
        self._validate_schedule()
        r = self.reg
        for name in ("gp", "r1", "r2", "clip", "ortho", "drift"):
            check(getattr(r, name) >= 0, f"reg.{name}", getattr(r, name), "use 0 (off) or more")
        check(r.every >= 1, "reg.every", r.every, "use 1 (every step) or a longer interval")
        check(self.n_critic >= 1, "n_critic", self.n_critic, "use 1 or more D steps per G step")
        check(
            self.optimizer in ("adam", "rmsprop"),
            "optimizer",
            self.optimizer,
            "use adam or rmsprop",
        )
        check(self.lr_g > 0, "lr_g", self.lr_g, "learning rates must be positive")
        check(self.lr_d > 0, "lr_d", self.lr_d, "learning rates must be positive")
        check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "betas",
            list(self.betas),
            "Adam's betas are two values in [0, 1), e.g. [0.5, 0.999]",
        )
        check(
            0 <= self.label_smoothing < 1,
            "label_smoothing",
            self.label_smoothing,
            "use a value in [0, 1)",
        )
        check(
            self.augment in ("none", "diffaugment"),
            "augment",
            self.augment,
            "use none or diffaugment",
        )
        if self.augment != "none":
            parse_policy(self.augment_policy)
        if r.clip and (r.gp or r.r1 or r.r2):
            raise UserError(
                "reg.clip cannot be combined with a gradient penalty (reg.gp, r1 or "
                "r2): clipping bounds the weights the penalty is meant to shape; "
                "use one or the other"
            )
        if r.clip and self.spectral_norm:
            raise UserError(
                "reg.clip with spectral_norm: both bound D's Lipschitz constant and "
                "clipping distorts the normalised weights; use one"
            )
        if self.label_smoothing and self.loss not in PROBABILISTIC_LOSSES:
            raise UserError(
                f"label_smoothing applies to BCE losses, not loss={self.loss}; "
                "set label_smoothing=0"
            )
        check(self.d_output in D_OUTPUTS, "d_output", self.d_output, "use logit or sigmoid")
        if self.d_output == "sigmoid" and self.loss not in SIGMOID_LOSSES:
            why = {
                "wasserstein": "the critic must be unbounded: squashed into (0, 1) its "
                "Wasserstein estimate saturates and its gradients vanish",
                "hinge": "the hinge margins at -1 and +1 lie outside a sigmoid's (0, 1)",
                "lsgan": "least squares targets a raw score, not a probability",
            }.get(self.loss, "this loss reads raw scores")
            raise UserError(
                f"loss={self.loss} with d_output=sigmoid cannot work: {why}; "
                "use d_output=logit (or a BCE loss: nonsaturating, minimax, logistic)"
            )
        if self.loss == "wasserstein" and not (r.clip or r.gp or self.spectral_norm):
            raise UserError(
                "loss=wasserstein needs D to be Lipschitz: add reg.clip=0.01 "
                "(WGAN), reg.gp=10 (WGAN-GP) or spectral_norm=true"
            )

    def _validate_schedule(self) -> None:
        check(
            self.lr_schedule in SCHEDULES,
            "lr_schedule",
            self.lr_schedule,
            f"use one of {', '.join(SCHEDULES)}",
        )
        check(self.lr_decay_start >= 0, "lr_decay_start", self.lr_decay_start, "use 0 or more")
        if self.lr_schedule != "constant":
            check(
                self.lr_decay_steps >= 1,
                "lr_decay_steps",
                self.lr_decay_steps,
                f"lr_schedule={self.lr_schedule} needs the decay's length in steps (1 or more)",
            )
        if self.lr_schedule == "step":
            check(
                0 < self.lr_decay_gamma <= 1,
                "lr_decay_gamma",
                self.lr_decay_gamma,
                "use a factor in (0, 1]",
            )

    def lr_schedule_spec(self) -> LRSchedule:
        """The configured schedule, as the engine applies it to every optimizer group."""
        return LRSchedule(
            self.lr_schedule, self.lr_decay_start, self.lr_decay_steps, self.lr_decay_gamma
        )

    def refuse_plain_layer_options(self, family: str) -> None:
        """For families built of equalized-learning-rate layers: spectral norm and orthogonal
        regularization act on nn.Conv2d/nn.Linear weights only, and would silently do nothing."""
        if self.spectral_norm or self.reg.ortho:
            raise UserError(
                f"{family}'s equalized-learning-rate layers are not nn.Conv2d/nn.Linear, so "
                "spectral_norm and reg.ortho would silently do nothing; set them off"
            )


class TwoPlayerModel(GANModel):
    """G and D trained with the configured objective; subclasses `build` ``{"G", "D"}``."""

    def apply_layer_options(self) -> None:
        """Spectral norm on the networks of ``spectral_norm_scope`` (D unless asked) when
        configured; the base class runs this before initialising."""
        if self.cfg.spectral_norm:
            scope = self.cfg.spectral_norm_scope
            for name in ("G", "D"):
                if scope in (name, "both"):
                    add_spectral_norm(getattr(self, name))

    def param_groups(self) -> dict[str, OptimSpec]:
        c = self.cfg
        kw = dict(kind=c.optimizer, betas=tuple(c.betas), schedule=c.lr_schedule_spec())
        return {
            "G": OptimSpec(self.G.parameters(), lr=c.lr_g, **kw),
            "D": OptimSpec(self.D.parameters(), lr=c.lr_d, **kw),
        }

    def phases(self) -> list[Phase]:
        r = self.cfg.reg
        after = self._clip if r.clip else None
        phases = [
            Phase("G", group="G", step=self.g_step),
            Phase(
                "D",
                group="D",
                step=self.d_step,
                repeat=self.cfg.n_critic,
                new_batch=False,
                after=after,
            ),
        ]
        if (r.r1 or r.r2 or r.gp) and r.every > 1:  # lazy regularization as its own phase
            phases.append(
                Phase(
                    "D_reg",
                    group="D",
                    step=self.d_reg_step,
                    every=r.every,
                    new_batch=False,
                    after=after,
                )
            )
        return phases

    # ----- pieces (families with auxiliary heads override discriminate and aux_losses) -------
    def discriminate(
        self, images: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, Any]:
        """D's adversarial outputs ``[N]`` and any auxiliary output (None here), for images
        ``[N, C, H, W]`` (and labels when conditional), after the configured augmentation."""
        images = self._augment(images)
        return (self.D(images) if labels is None else self.D(images, labels)), None

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        """DiffAugment when configured; the same for real and generated images."""
        if self.cfg.augment == "diffaugment":
            return diff_augment(images, self.cfg.augment_policy)
        return images

    def aux_losses(
        self, role: str, real_aux: Any, fake_aux: Any, batch: Batch, fake_inputs: tuple[Any, ...]
    ) -> Losses:
        """Extra named losses of the ``role`` ("G" or "D") step, added to its total."""
        return {}

    def critic(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self._discriminate(images, labels)[0]

    def _discriminate(self, images: torch.Tensor, labels: torch.Tensor | None):
        """`discriminate`, with a sigmoid-output D's probabilities turned back into the logits
        the losses take: ``logit(sigmoid(s))`` clamped to +-100, which keeps the sigmoid's
        float32 saturation (zero gradient) and BCELoss's cap of 100 on each log term."""
        out, aux = self.discriminate(images, labels)
        if self.cfg.d_output == "sigmoid":
            p = torch.sigmoid(out)
            saturated = (p <= 0) | (p >= 1)  # float32 rounded: no gradient, the cap of 100
            safe = torch.logit(torch.where(saturated, torch.full_like(p, 0.5), p))
            out = torch.where(saturated, torch.sign(p - 0.5) * 100, safe).clamp(-100, 100)
        return out, aux

    def _clip(self) -> None:
        clip_weights_(self.D, self.cfg.reg.clip)

    def _generator_inputs(self, batch: Batch) -> tuple[Any, ...]:
        labels = batch["label"] if self.task.labels else None
        return self.generator_inputs(batch["image"].shape[0], labels, None)

    def _fakes(self, batch: Batch, ctx: dict[str, Any]) -> tuple[torch.Tensor, tuple[Any, ...]]:
        """The G step's fakes (and G's inputs) for the first D step of an iteration; fresh ones
        after it."""
        if "fake" in ctx:
            return ctx.pop("fake"), ctx.pop("fake_inputs")
        inputs = self._generator_inputs(batch)
        with torch.no_grad():
            return self.G(*inputs), inputs

    def _fake_labels(self, inputs: tuple[Any, ...]) -> torch.Tensor | None:
        return inputs[1] if self.task.labels else None

    @staticmethod
    def _add(losses: Losses, extra: Losses) -> Losses:
        for name, value in extra.items():
            losses[name] = value
            losses["loss"] = losses["loss"] + value
        return losses

    # ----- phases ---------------------------------------------------------------------------
    def g_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        inputs = self._generator_inputs(batch)
        fake = self.G(*inputs)
        ctx["fake"], ctx["fake_inputs"] = fake.detach(), inputs
        logits, aux = self._discriminate(fake, self._fake_labels(inputs))
        losses = dict(get_loss(self.cfg.loss)[1](logits))
        self._add(losses, self.aux_losses("G", None, aux, batch, inputs))
        if self.cfg.reg.ortho:
            self._add(losses, {"ortho": self.ortho_penalty()})
        return losses

    def ortho_penalty(self) -> torch.Tensor:
        """The orthogonal regularization of G added to its loss when ``reg.ortho`` > 0."""
        return orthogonal_regularization(self.G, weight=self.cfg.reg.ortho)

    def d_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        c, r = self.cfg, self.cfg.reg
        real, labels = batch["image"], batch.get("label") if self.task.labels else None
        fake, inputs = self._fakes(batch, ctx)
        fake_labels = self._fake_labels(inputs)
        eager_r1, eager_r2 = bool(r.r1 and r.every == 1), bool(r.r2 and r.every == 1)
        if eager_r1:
            real = real.detach().requires_grad_(True)
        if eager_r2:
            fake = fake.detach().requires_grad_(True)
        real_logits, real_aux = self._discriminate(real, labels)
        fake_logits, fake_aux = self._discriminate(fake, fake_labels)
        if c.loss in PROBABILISTIC_LOSSES:  # the BCE losses take the smoothed real target
            d_loss = get_loss(c.loss)[0]
            losses = d_loss(real_logits, fake_logits, real_target=1 - c.label_smoothing)
        else:
            losses = get_loss(c.loss)[0](real_logits, fake_logits)
        losses = dict(losses)
        if r.drift:
            self._add(losses, {"drift": r.drift * real_logits.float().square().mean()})
        self._add(losses, self.aux_losses("D", real_aux, fake_aux, batch, inputs))
        self._add(
            losses,
            self._penalties(
                real,
                real_logits,
                fake,
                fake_logits,
                labels,
                fake_labels,
                eager_r1,
                eager_r2,
                interval=1,
            ),
        )
        return losses

    def d_reg_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        """Lazy R1/R2/gp: every ``reg.every`` steps, scaled by the interval (StyleGAN2)."""
        r = self.cfg.reg
        labels = batch.get("label") if self.task.labels else None
        real = batch["image"].detach().requires_grad_(bool(r.r1))
        fake, inputs = self._fakes(batch, ctx)
        fake_labels = self._fake_labels(inputs)
        fake = fake.detach().requires_grad_(bool(r.r2))
        real_logits = self.critic(real, labels) if r.r1 else None
        fake_logits = self.critic(fake, fake_labels) if r.r2 else None
        extra = self._penalties(
            real,
            real_logits,
            fake,
            fake_logits,
            labels,
            fake_labels,
            bool(r.r1),
            bool(r.r2),
            interval=r.every,
        )
        # D's output bias has no input gradient: the engine gives it a zero one, so Adam and the
        # gradient all-reduce see the same parameters in every D step
        return {"loss": sum(extra.values()), **extra}

    def _penalties(
        self,
        real,
        real_logits,
        fake,
        fake_logits,
        labels,
        fake_labels,
        use_r1,
        use_r2,
        *,
        interval: int,
    ) -> Losses:
        r, out = self.cfg.reg, {}
        if use_r1:
            out["r1"] = r1_penalty(real, real_logits, gamma=r.r1, interval=interval)["loss"]
        if use_r2:
            out["r2"] = r2_penalty(fake, fake_logits, gamma=r.r2, interval=interval)["loss"]
        if r.gp and interval == r.every:  # eager (every 1) in d_step, else here, scaled
            gp = gradient_penalty(
                self.critic if labels is not None else (lambda x: self.critic(x, None)),
                real.detach(),
                fake.detach(),
                weight=r.gp * interval,
                one_sided=r.gp_one_sided,
                labels=labels,
            )
            out["gp"] = gp["loss"]
        return out

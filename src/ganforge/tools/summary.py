"""A Keras-style layer table for a family's networks: layer, output shape, parameters."""

from __future__ import annotations

import torch
from torch import nn

from ..models.base import GANModel


def network_table(
    name: str, net: nn.Module, args: tuple
) -> tuple[list[tuple[str, str, int]], int, int]:
    """Rows (layer, output shape, own parameters) of the leaf modules in call order, and the
    total and trainable parameter counts of ``net``."""
    rows: list[tuple[str, str, int]] = []
    hooks = []
    for mod_name, module in net.named_modules():
        if list(module.children()):
            continue

        def hook(mod, _inputs, output, mod_name=mod_name):
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else "?"
            shown = str([-1, *shape[1:]]) if shape != "?" else "?"
            own = sum(p.numel() for p in mod.parameters(recurse=False))
            rows.append((f"{mod_name} ({type(mod).__name__})", shown, own))

        hooks.append(module.register_forward_hook(hook))
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(*args)
    finally:
        net.train(was_training)
        for h in hooks:
            h.remove()
    total = sum(p.numel() for p in net.parameters())
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return rows, total, trainable


def summary_text(model: GANModel) -> str:
    """The table of each network ``model`` declares (`GANModel.networks`)."""
    parts = []
    inputs = model.summary_inputs()
    for name, net in model.networks().items():
        rows, total, trainable = network_table(name, net, inputs[name])
        w0 = max([len("Layer (type)")] + [len(r[0]) for r in rows]) + 2
        w1 = max([len("Output shape")] + [len(r[1]) for r in rows]) + 2
        width = w0 + w1 + 12
        parts.append(f"{name}: {type(net).__name__}")
        parts.append("=" * width)
        parts.append(f"{'Layer (type)':<{w0}}{'Output shape':<{w1}}{'Param #':>12}")
        parts.append("-" * width)
        parts += [f"{a:<{w0}}{b:<{w1}}{c:>12,}" for a, b, c in rows]
        parts.append("=" * width)
        parts.append(f"Total params: {total:,}")
        parts.append(f"Trainable params: {trainable:,}")
        parts.append(f"Non-trainable params: {total - trainable:,}")
        parts.append("")
    return "\n".join(parts)

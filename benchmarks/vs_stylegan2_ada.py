"""StyleGAN2's training step here against NVIDIA's StyleGAN2-ADA code on the same network, batch
and weights, run unmodified beside ours on the CPU.

    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/stylegan2-ada-pytorch
    pip install requests  # the reference's dnnlib imports it
    python benchmarks/vs_stylegan2_ada.py --reference /tmp/stylegan2-ada-pytorch \\
        [--resolutions 32,64] [--rounds 3] [--iterations 32]

Prints one JSON document with two figures per resolution, each the median over ``--rounds``
rounds run alternately (official, GANForge, official, ...), each round in a fresh process:

- ``iteration``: one training iteration as each codebase runs it, with Adam, the lazy R1 step
  every 16 iterations (scaled), the EMA update.  The official side is its own
  ``training.loss.StyleGAN2Loss.accumulate_gradients`` driven through the phases the way
  ``training/training_loop.py`` drives them (Gmain, Greg every 4 (a no-op without path length),
  Dmain, Dreg every 16, zero_grad / requires_grad / nan_to_num / step, then the EMA); GANForge's
  side is its trainer's iteration.  ``--iterations`` should be a multiple of 16.
- ``networks``: the same calls on each side's networks, G forward + D forward + backward into
  G, then G forward + D forward on fakes and reals + backward into D (no optimizer, no
  regularizer): how fast each codebase's layers are.

The networks are the ``stylegan2 --preset fmnist32`` ones (a 2-layer mapping, z and w 128,
channels min(1024 / r, 128), orig D, minibatch stddev over 32, float32, no clamp) at each
resolution, batch 32.  The official networks are built with those settings, GANForge's load
their state dict, and the harness checks that images and logits agree before it times anything.
The official ops fall back to their pure-PyTorch reference code on the CPU (no CUDA plugin).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from throughput import report_json  # noqa: E402

BATCH = 32
R1_EVERY, PL_EVERY = 16, 4
R1_GAMMA = 0.01
LR = 0.0025


def preset_overrides(resolution: int) -> list[tuple[str, object]]:
    return [
        ("resolution", resolution),
        ("train.batch_size", BATCH),
        ("train.progress", False),
        ("train.tensorboard", False),
    ]


def official_networks(reference: Path, resolution: int, channels: int):
    """The official G, D (and G_ema) with the fmnist32 preset's settings."""
    sys.path.insert(0, str(reference))
    from training import networks  # noqa: PLC0415 (the reference, unmodified)

    common = dict(channel_base=1024, channel_max=128, num_fp16_res=0, conv_clamp=None)
    G = networks.Generator(
        z_dim=128,
        c_dim=0,
        w_dim=128,
        img_resolution=resolution,
        img_channels=channels,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=common,
    )
    D = networks.Discriminator(
        c_dim=0,
        img_resolution=resolution,
        img_channels=channels,
        architecture="orig",
        epilogue_kwargs=dict(mbstd_group_size=32),
        **common,
    )
    return G, D


def ganforge_trainer(resolution: int, tmp: Path):
    from throughput import synthetic_data  # noqa: PLC0415

    from ganforge.api import resolve_run
    from ganforge.engine.trainer import Trainer

    cfg, run_dir = resolve_run(
        "stylegan2", preset="fmnist32", overrides=preset_overrides(resolution), out=tmp / "r"
    )
    return Trainer(cfg, run_dir, data=synthetic_data(resolution))


def check_agreement(G_off, D_off, model) -> dict[str, float]:
    """Copy the official weights into GANForge's networks; max |difference| of their outputs."""
    model.G.load_state_dict(G_off.state_dict())
    model.D.load_state_dict(D_off.state_dict())
    z = torch.randn(8, 128, generator=torch.Generator().manual_seed(1))
    out = {}
    for mode in ("eval", "train"):  # the official inference path is its fused convolution
        G_off.train(mode == "train"), model.G.train(mode == "train")
        with torch.no_grad():
            a = G_off(z, None, noise_mode="const")
            b = model.G(z, None, noise_mode="const")
        out[f"images_{mode}_max_abs"] = float((a - b).abs().max())
    with torch.no_grad():
        la, lb = D_off(a, None), model.D(a)
    out["logits_max_abs"] = float((la.flatten() - lb.flatten()).abs().max())
    return out


# ----- the two iterations ------------------------------------------------------------------
def official_iteration_fn(reference: Path, resolution: int, images: torch.Tensor):
    """One training iteration of the official code, as training_loop.py runs its phases."""
    import copy

    G, D = official_networks(reference, resolution, images.shape[1])
    from training.loss import StyleGAN2Loss  # noqa: PLC0415 (on the path from here)

    G_ema = copy.deepcopy(G).eval()
    for module in (G, D, G_ema):
        module.requires_grad_(False)
    loss = StyleGAN2Loss(
        "cpu",
        G.mapping,
        G.synthesis,
        D,
        style_mixing_prob=0.0,
        r1_gamma=R1_GAMMA,
        pl_weight=0.0,
    )
    phases = []
    for name, module, interval in (("G", G, PL_EVERY), ("D", D, R1_EVERY)):
        ratio = interval / (interval + 1)
        opt = torch.optim.Adam(
            module.parameters(), lr=LR * ratio, betas=(0**ratio, 0.99**ratio), eps=1e-8
        )
        phases += [(name + "main", module, opt, 1), (name + "reg", module, opt, interval)]
    ema_beta = 0.5 ** (BATCH / 2000.0)  # fmnist32's ema_kimg 2 (ramp-up over by then)
    state = {"batch_idx": 0}

    def iteration() -> None:
        k = state["batch_idx"]
        start = (k * BATCH) % (len(images) - BATCH)
        real = images[start : start + BATCH].to(torch.float32) / 127.5 - 1
        c = torch.zeros([BATCH, 0])
        for name, module, opt, interval in phases:
            if k % interval != 0:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            z = torch.randn([BATCH, G.z_dim])
            loss.accumulate_gradients(
                phase=name, real_img=real, real_c=c, gen_z=z, gen_c=c, sync=True, gain=interval
            )
            module.requires_grad_(False)
            for p in module.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
        with torch.no_grad():
            for p_ema, p in zip(G_ema.parameters(), G.parameters(), strict=True):
                p_ema.copy_(p.lerp(p_ema, ema_beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers(), strict=True):
                b_ema.copy_(b)
        state["batch_idx"] += 1

    return iteration, (G, D)


def networks_fn(G, D, images: torch.Tensor, call_g, call_d):
    """G fwd + D fwd + backward into G; G fwd + D on fakes and reals + backward into D."""
    F = torch.nn.functional
    state = {"k": 0}

    def step() -> None:
        k = state["k"]
        start = (k * BATCH) % (len(images) - BATCH)
        real = images[start : start + BATCH].to(torch.float32) / 127.5 - 1
        G.requires_grad_(True)
        D.requires_grad_(False)
        F.softplus(-call_d(call_g(torch.randn(BATCH, 128)))).mean().backward()
        G.requires_grad_(False)
        D.requires_grad_(True)
        with torch.no_grad():
            fake = call_g(torch.randn(BATCH, 128))
        (F.softplus(call_d(fake)).mean() + F.softplus(-call_d(real)).mean()).backward()
        for net in (G, D):
            for p in net.parameters():
                p.grad = None
        state["k"] += 1

    return step


def rate(fn, iterations: int, warmup: int = 16) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return iterations * BATCH / (time.perf_counter() - start)


def child(side: str, reference: Path, resolution: int, iterations: int) -> dict:
    import tempfile

    from throughput import synthetic_data  # noqa: PLC0415

    torch.manual_seed(0)
    images = synthetic_data(resolution).images
    if side == "official":
        step, (G, D) = official_iteration_fn(reference, resolution, images)
        result = {"iteration": rate(step, iterations)}
        G.train(), D.train()
        nets = networks_fn(G, D, images, lambda z: G(z, None), lambda x: D(x, None))
        result["networks"] = rate(nets, iterations)
        return result
    from ganforge.engine.logger import LossMeter

    with tempfile.TemporaryDirectory() as tmp:
        trainer = ganforge_trainer(resolution, Path(tmp))
        meter = LossMeter()
        trainer.step = 1_000_000  # past any ramp-up; a multiple of the lazy intervals

        def iteration() -> None:
            trainer._iteration(meter)
            trainer.step += 1

        result = {"iteration": rate(iteration, iterations)}
        meter.pop_means()
        m = trainer.model
        m.G.train(), m.D.train()
        result["networks"] = rate(networks_fn(m.G, m.D, images, m.G, m.D), iterations)
    return result


def agreement(reference: Path, resolution: int) -> dict[str, float]:
    import tempfile

    torch.manual_seed(0)
    G, D = official_networks(reference, resolution, 1)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = ganforge_trainer(resolution, Path(tmp))
        return check_agreement(G.eval(), D.eval(), trainer.model.eval())


def run_child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", help="a checkout of NVlabs/stylegan2-ada-pytorch")
    parser.add_argument("--resolutions", default="32,64")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=32)
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    reference = Path(args.reference or "")
    if not (reference / "training" / "networks.py").is_file():
        sys.exit(
            "--reference: give a checkout of NVlabs/stylegan2-ada-pytorch (with "
            "training/networks.py); git clone https://github.com/NVlabs/stylegan2-ada-pytorch"
        )
    if args.child:
        side, res = args.child
        if side == "agreement":
            print(json.dumps(agreement(reference, int(res))))
        else:
            print(json.dumps(child(side, reference, int(res), args.iterations)))
        return
    rows = []
    common = ["--reference", str(reference), "--iterations", str(args.iterations)]
    for res in (int(r) for r in args.resolutions.split(",")):
        agree = run_child([*common, "--child", "agreement", str(res)])
        samples: dict[str, dict[str, list[float]]] = {"official": {}, "ganforge": {}}
        for _ in range(args.rounds):
            for side in ("official", "ganforge"):
                for key, value in run_child([*common, "--child", side, str(res)]).items():
                    samples[side].setdefault(key, []).append(value)
        row: dict[str, object] = {"resolution": res, "batch_size": BATCH, "agreement": agree}
        for key in ("iteration", "networks"):
            off = statistics.median(samples["official"][key])
            ours = statistics.median(samples["ganforge"][key])
            row[key] = {
                "official_images_per_s": round(off, 1),
                "ganforge_images_per_s": round(ours, 1),
                "speedup": round(ours / off, 2),
                "samples": {s: [round(v, 1) for v in samples[s][key]] for s in samples},
            }
        rows.append(row)
    report = {
        "machine": {"threads": torch.get_num_threads(), "torch": torch.__version__},
        "reference": "NVlabs/stylegan2-ada-pytorch, unmodified (CPU reference ops)",
        "network": "stylegan2 --preset fmnist32 at each resolution, float32, batch 32",
        "rounds": args.rounds,
        "iterations": args.iterations,
        "rows": rows,
    }
    report_json(report, args.out)


if __name__ == "__main__":
    main()

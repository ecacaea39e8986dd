"""Training and generation throughput of each family's default preset, and peak memory.

    python benchmarks/throughput.py [--batch-size 64] [--steps 30] [--out FILE.json]
    python benchmarks/throughput.py --families progan,stylegan,stylegan2 --batch-size 32
    python benchmarks/throughput.py --families cyclegan --batch-size 8

Image families' "generate" figure is their translation of a batch of inputs (A -> B).

Prints one JSON document.  Each family runs in its own subprocess so that its peak resident
memory is its own.  Beside GANForge's `dcgan --preset classic32` it times a plain eager PyTorch
loop of the same architecture, written the way the widely used single-file reference is
(nn.Upsample + Conv2d, Sigmoid + BCELoss, the G step then the D step on the same fakes), on the
same machine and in-memory data, so the speed-up does not depend on the hardware.  The fraction
of peak uses the reference's FLOPs per image (counted with torch's FlopCounterMode) and the
machine's float32 matmul peak measured here.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CASES = [("gan", None), ("dcgan", None), ("cgan", None), ("dcgan", "classic32")]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def matmul_peak_gflops(n: int = 2048, reps: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def synthetic_data(resolution: int, n: int = 4096, task: str = "plain", cfg=None):
    """Random uint8 images in memory, as the family's data task holds them (``unpaired``: two
    halves as the domains; ``paired``: the halves as inputs and targets; ``masked`` and
    ``lowres``: the run's mask kind and factor around the plain images)."""
    from ganforge.data import DataSpec, ImageDataset
    from ganforge.data.tasks import LowresDataset, MaskedDataset, PairedDataset, UnpairedDataset

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, resolution, resolution), generator=gen, dtype=torch.uint8)
    if task == "unpaired":
        return UnpairedDataset(images[: n // 2], images[n // 2 :], "synthetic")
    if task == "paired":
        return PairedDataset(images[: n // 2], images[n // 2 :], "synthetic")
    spec = DataSpec(
        channels=1,
        resolution=resolution,
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        name="synthetic",
    )
    plain = ImageDataset(images, torch.arange(n) % 10, spec)
    data = cfg.data if cfg is not None else None
    if task == "masked":
        return MaskedDataset(plain, (data and data.mask) or "center", "masked:synthetic")
    if task == "lowres":
        # named after the preset's data, so srgan's content network is the domain network of
        # Fashion-MNIST its runs use (built once and cached, before the timed steps)
        return LowresDataset(plain, (data and data.factor) or 4, "lowres:fmnist")
    if task == "captioned":  # two captions an image, of the fmnist-captions kind
        from ganforge.data.captions import FMNIST_NOUNS, SHADE_WORDS, WIDTH_WORDS, FileCaptions
        from ganforge.data.tasks import captioned

        lines = [
            (
                f"a {SHADE_WORDS[i % 3]} {FMNIST_NOUNS[i % 10]}",
                f"a {WIDTH_WORDS[i % 3]} {SHADE_WORDS[(i // 3) % 3]} {FMNIST_NOUNS[i % 10]}",
            )
            for i in range(n)
        ]
        return captioned(plain, FileCaptions(lines), "synthetic-captions", max_tokens=None)
    return plain


def bench_family(model: str, preset: str | None, batch: int, steps: int) -> dict:
    """Train ``steps`` timed iterations (after warm-up) and generate; runs in a subprocess."""
    import tempfile

    from torch.utils.flop_counter import FlopCounterMode

    from ganforge.api import resolve_run
    from ganforge.engine.logger import LossMeter
    from ganforge.engine.trainer import Trainer

    overrides = [
        ("train.batch_size", batch),
        ("train.progress", False),
        ("train.tensorboard", False),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        cfg, run_dir = resolve_run(model, preset=preset, overrides=overrides, out=Path(tmp) / "r")
        task = trainer_task(model, cfg)
        data = synthetic_data(cfg.family.resolution, task=task, cfg=cfg)
        trainer = Trainer(cfg, run_dir, data=data)
        # timed far into training: past any growth schedule (progan runs at full size), and a
        # multiple of the lazy regularizers' intervals
        trainer.step = 1_000_000
        meter = LossMeter()
        counter = FlopCounterMode(display=False)
        try:
            with counter:  # what this family actually executes per training image
                trainer._iteration(meter)
            flops = counter.get_total_flops() / batch
        except RuntimeError:  # the counter cannot follow autograd.grad (gradient penalties)
            flops = None
        train_rate = timed_iterations(trainer, meter, steps) * batch
        # families that train in stages (phase windows): each stage from its first step
        starts = sorted({p.start for p in trainer.phases})
        by_stage = {}
        if len(starts) > 1:
            for first in starts:
                trainer.step = first
                by_stage[str(first)] = round(timed_iterations(trainer, meter, steps) * batch, 1)
        m = trainer.model
        produce = output_function(m, data, batch)
        for _ in range(3):
            produce()
        start = time.perf_counter()
        for _ in range(steps):
            produce()
        gen_rate = steps * batch / (time.perf_counter() - start)
    return {
        "model": model,
        "preset": cfg.preset,
        "batch_size": batch,
        "train_images_per_s": round(train_rate, 1),
        "generate_images_per_s": round(gen_rate, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "gflops_per_train_image": round(flops / 1e9, 4) if flops is not None else None,
        **({"train_images_per_s_from_step": by_stage} if by_stage else {}),
    }


def timed_iterations(trainer, meter, steps: int) -> float:
    """Iterations per second over ``steps`` iterations from ``trainer.step``, after 5 untimed."""
    for _ in range(5):
        trainer._iteration(meter)
        trainer.step += 1
    start = time.perf_counter()
    for _ in range(steps):
        trainer._iteration(meter)
        trainer.step += 1
    meter.pop_means()  # forces the pending values, as a logging tick would
    return steps / (time.perf_counter() - start)


def trainer_task(model: str, cfg) -> str:
    from ganforge.models import get_family

    return get_family(model).task_for(cfg.family).data


def output_function(m, data, batch: int):
    """What the family makes for a user, one batch a call: images from noise, or the
    translation (A -> B) of a batch of inputs; the "generate" figure of image families."""
    if m.task.kind == "noise":
        return lambda: m.generate(batch)
    inputs = data.batch(torch.arange(batch))
    kind = m.task.kind
    if kind == "unpaired":
        return lambda: m.translate(inputs["image_a"], direction="a2b")
    if kind == "paired":
        return lambda: m.translate(inputs["cond_image"])
    if kind == "masked":
        return lambda: m.inpaint(inputs["cond_image"], inputs["mask"])
    if kind == "lowres":
        return lambda: m.upscale(inputs["cond_image"])
    raise NotImplementedError(f"no output timing for {kind} families yet")


class _RefG(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(100, 128 * 8 * 8)
        self.net = nn.Sequential(
            nn.BatchNorm2d(128),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 128, 3, 1, 1),
            nn.BatchNorm2d(128, 0.8),
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 64, 3, 1, 1),
            nn.BatchNorm2d(64, 0.8),
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 1, 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, z):
        return self.net(self.fc(z).view(-1, 128, 8, 8))


def _ref_d() -> nn.Module:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate([(1, 16), (16, 32), (32, 64), (64, 128)]):
        layers += [nn.Conv2d(a, b, 3, 2, 1), nn.LeakyReLU(0.2), nn.Dropout2d(0.25)]
        if i:
            layers.append(nn.BatchNorm2d(b, 0.8))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, 1), nn.Sigmoid())


def bench_reference(batch: int, steps: int) -> dict:
    """The plain eager loop of the classic32 architecture (the baseline)."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    g, d = _RefG(), _ref_d()
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    data = synthetic_data(32).images
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)

    def iteration(k: int) -> None:
        real = data[(k * batch) % (len(data) - batch) :][:batch].float() / 127.5 - 1
        opt_g.zero_grad()
        fake = g(torch.randn(batch, 100))
        bce(d(fake), ones).backward()
        opt_g.step()
        opt_d.zero_grad()
        ((bce(d(real), ones) + bce(d(fake.detach()), zeros)) / 2).backward()
        opt_d.step()

    counter = FlopCounterMode(display=False)
    with counter:
        iteration(0)
    flops_per_image = counter.get_total_flops() / batch
    for k in range(5):
        iteration(k)
    start = time.perf_counter()
    for k in range(steps):
        iteration(k)
    rate = steps * batch / (time.perf_counter() - start)
    return {
        "train_images_per_s": round(rate, 1),
        "flops_per_image": flops_per_image,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def run_child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="timed iterations per case")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument(
        "--families",
        help="comma-separated model[:preset] list instead of the default cases; skips the "
        "reference comparison (e.g. progan,stylegan,stylegan2 --batch-size 32)",
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, preset = args.child
        if model == "reference":
            result = bench_reference(args.batch_size, args.steps)
        else:
            result = bench_family(
                model, None if preset == "-" else preset, args.batch_size, args.steps
            )
        print(json.dumps(result))
        return

    common = ["--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    peak = matmul_peak_gflops()
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "matmul_peak_gflops": round(peak, 1),
    }
    if args.families:
        cases = [(*f.split(":"), "-")[:2] for f in args.families.split(",") if f]
        families = [run_child([*common, "--child", m, p]) for m, p in cases]
        report_json({"machine": machine, "families": families}, args.out)
        return
    families = [run_child([*common, "--child", m, p or "-"]) for m, p in CASES]
    reference = run_child([*common, "--child", "reference", "-"])
    ours = next(f for f in families if f["preset"] == "classic32")
    flops = reference["flops_per_image"]
    report = {
        "machine": machine,
        "families": families,
        "classic32_vs_reference": {
            "reference_train_images_per_s": reference["train_images_per_s"],
            "ganforge_train_images_per_s": ours["train_images_per_s"],
            "speedup": round(ours["train_images_per_s"] / reference["train_images_per_s"], 2),
            "reference_gflops_per_image": round(flops / 1e9, 3),
            "reference_fraction_of_peak": round(
                reference["train_images_per_s"] * flops / 1e9 / peak, 3
            ),
            "ganforge_gflops_per_image": ours["gflops_per_train_image"],
            "ganforge_fraction_of_peak": round(
                ours["train_images_per_s"] * ours["gflops_per_train_image"] / peak, 3
            ),
            # >1 means the reference's arithmetic done faster than the machine's matmul peak
            # allows: the fused upsample-conv skips work that gives the same result
            "ganforge_effective_fraction_of_peak": round(
                ours["train_images_per_s"] * flops / 1e9 / peak, 3
            ),
            "reference_peak_rss_mb": reference["peak_rss_mb"],
        },
    }
    report_json(report, args.out)


def report_json(report: dict, out: str | None) -> None:
    """Print the report, and write it to ``out`` too if given."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n")


if __name__ == "__main__":
    main()

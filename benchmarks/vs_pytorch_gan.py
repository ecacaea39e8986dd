"""GANForge's ``dcgan --preset classic32`` against the script it restates, run unmodified beside
it: eriklindernoren/PyTorch-GAN's ``implementations/dcgan/dcgan.py`` (batch 64, 32x32, Adam 2e-4).

    git clone https://github.com/eriklindernoren/PyTorch-GAN /tmp/PyTorch-GAN
    python benchmarks/vs_pytorch_gan.py --reference /tmp/PyTorch-GAN [--rounds 3] [--batches 150]

Prints one JSON document: training images per second of each, the medians over ``--rounds``
rounds run alternately (reference, GANForge, reference, ...) so that load that comes and goes
hits both, and their ratio.  Run it alone on the machine.

The reference is run as a subprocess, its own file untouched, and timed by the per-batch line it
prints (``[Epoch 0/1] [Batch i/938] ...``): the rate is taken between batch 10 and batch
``--batches``, then the process is stopped.  Its whole loop counts, as a user running it sees it:
the per-image PIL resize and tensor conversion of its DataLoader, the G step, the D step, the
print.  GANForge is timed the same way, from its trainer's iteration on the real data set.

The script imports torchvision for ``datasets.MNIST``, three transforms and ``save_image``.
torchvision has no CPU build for this machine's torch, and MNIST cannot be downloaded here, so
the harness puts a stand-in package named ``torchvision`` first on the reference's path: its
MNIST serves Fashion-MNIST's 60,000 training images (the same count and size) as PIL images,
and Resize, ToTensor, Normalize and save_image make the same PIL and torch calls torchvision's
own do (bilinear PIL resize of the shorter side; uint8 -> float / 255; (x - mean) / std), so the
reference's data pipeline costs what it costs with torchvision.  With a real torchvision and a
downloaded MNIST, ``--real-torchvision`` runs the script against them instead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from throughput import report_json  # noqa: E402

SCRIPT = Path("implementations") / "dcgan" / "dcgan.py"
WARMUP = 10  # batches before the clock starts

# The stand-in torchvision: only what dcgan.py imports, each doing what torchvision's does.
STANDIN = {
    "__init__.py": "from . import datasets, transforms, utils  # noqa: F401\n",
    "datasets.py": '''
import numpy as np
import torch
from PIL import Image

class MNIST(torch.utils.data.Dataset):
    """Fashion-MNIST's training split in MNIST's place: uint8 [60000, 28, 28], PIL 'L' images."""

    def __init__(self, root, train=True, download=False, transform=None):
        self.data = torch.from_numpy(np.load(__import__("os").environ["STANDIN_IMAGES"]))
        self.targets = torch.from_numpy(np.load(__import__("os").environ["STANDIN_LABELS"]))
        self.transform = transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        img = Image.fromarray(self.data[index].numpy(), mode="L")
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.targets[index])
''',
    "transforms.py": '''
import numpy as np
import torch
from PIL import Image

class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

class Resize:
    """The shorter side to ``size``, bilinear (torchvision's default for PIL images)."""

    def __init__(self, size):
        self.size = size

    def __call__(self, img):
        w, h = img.size
        if w <= h:
            size = (self.size, int(self.size * h / w))
        else:
            size = (int(self.size * w / h), self.size)
        return img.resize(size, Image.BILINEAR)

class ToTensor:
    def __call__(self, pic):
        img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
        img = img.view(pic.size[1], pic.size[0], len(pic.getbands())).permute(2, 0, 1)
        return img.contiguous().to(torch.float32).div(255)

class Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, tensor):
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype)[:, None, None]
        std = torch.as_tensor(self.std, dtype=tensor.dtype)[:, None, None]
        return tensor.sub(mean).div(std)
''',
    "utils.py": """
import torch
from PIL import Image

def save_image(tensor, fp, nrow=8, normalize=False, **_):
    x = tensor.detach().float()
    if normalize:
        x = (x - x.min()) / (x.max() - x.min() + 1e-5)
    n, c, h, w = x.shape
    ncol = (n + nrow - 1) // nrow
    grid = torch.zeros(c, ncol * (h + 2) + 2, nrow * (w + 2) + 2)
    for i in range(n):
        r, k = divmod(i, nrow)
        grid[:, 2 + r * (h + 2) : 2 + r * (h + 2) + h, 2 + k * (w + 2) : 2 + k * (w + 2) + w] = x[i]
    arr = (grid.clamp(0, 1) * 255 + 0.5).to(torch.uint8)[0].numpy()
    Image.fromarray(arr, mode="L").save(fp)
""",
}


def write_standin(folder: Path) -> dict[str, str]:
    """The stand-in package and Fashion-MNIST's training split as .npy; the env that uses them."""
    import numpy as np

    from ganforge.data import load_dataset

    pkg = folder / "torchvision"
    pkg.mkdir(parents=True)
    for name, text in STANDIN.items():
        (pkg / name).write_text(text.lstrip())
    data = load_dataset("fmnist")
    images = data.images[:, 0].numpy().astype(np.uint8)  # [60000, 28, 28] uint8
    np.save(folder / "images.npy", images)
    np.save(folder / "labels.npy", data.labels.numpy().astype(np.int64))
    return {
        "PYTHONPATH": str(folder),
        "STANDIN_IMAGES": str(folder / "images.npy"),
        "STANDIN_LABELS": str(folder / "labels.npy"),
    }


def time_reference(reference: Path, batches: int, env_extra: dict[str, str]) -> float:
    """Images per second of the unmodified dcgan.py, from the times its batch lines arrive."""
    script = (reference / SCRIPT).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "a" / "b"  # it writes images/ here and data to ../../data/mnist
        work.mkdir(parents=True)
        env = {**os.environ, **env_extra, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, str(script), "--n_epochs", "1", "--sample_interval", "400"],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        stamps: dict[int, float] = {}
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.startswith("[Epoch"):
                    continue
                batch = int(line.split("[Batch ")[1].split("/")[0])
                stamps[batch] = time.perf_counter()
                if batch >= batches:
                    break
        finally:
            proc.kill()
            _, err = proc.communicate()
        if batches not in stamps:
            sys.exit(f"the reference stopped before batch {batches}:\n{err[-2000:]}")
    return (batches - WARMUP) * 64 / (stamps[batches] - stamps[WARMUP])


def time_ganforge(batches: int) -> float:
    """Images per second of `dcgan --preset classic32` on Fashion-MNIST, in a subprocess."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(batches)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def child(batches: int) -> None:
    from ganforge.api import resolve_run
    from ganforge.engine.logger import LossMeter
    from ganforge.engine.trainer import Trainer

    overrides = [("train.progress", False), ("train.tensorboard", False)]
    with tempfile.TemporaryDirectory() as tmp:
        cfg, run_dir = resolve_run(
            "dcgan", preset="classic32", overrides=overrides, out=Path(tmp) / "r"
        )
        trainer = Trainer(cfg, run_dir)  # the real data set, as `ganforge train` loads it
        meter = LossMeter()
        for _ in range(WARMUP):
            trainer._iteration(meter)
            trainer.step += 1
        start = time.perf_counter()
        for _ in range(batches - WARMUP):
            trainer._iteration(meter)
            trainer.step += 1
        meter.pop_means()  # forces the pending loss values, as a logging tick would
        elapsed = time.perf_counter() - start
    print((batches - WARMUP) * cfg.train.batch_size / elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", help="a checkout of eriklindernoren/PyTorch-GAN")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=150, help="batches timed per run (+10)")
    parser.add_argument("--real-torchvision", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if not args.reference or not (Path(args.reference) / SCRIPT).is_file():
        sys.exit(
            f"--reference: give a checkout of eriklindernoren/PyTorch-GAN (with {SCRIPT}); "
            "git clone https://github.com/eriklindernoren/PyTorch-GAN"
        )
    if args.batches <= WARMUP:
        sys.exit(f"--batches: use more than {WARMUP} (the untimed warm-up)")
    import torch

    rates: dict[str, list[float]] = {"reference": [], "ganforge": []}
    with tempfile.TemporaryDirectory() as tmp:
        env = {} if args.real_torchvision else write_standin(Path(tmp) / "standin")
        for _ in range(args.rounds):
            rates["reference"].append(time_reference(Path(args.reference), args.batches, env))
            rates["ganforge"].append(time_ganforge(args.batches))
    ref, ours = (statistics.median(rates[k]) for k in ("reference", "ganforge"))
    report = {
        "machine": {"threads": torch.get_num_threads(), "torch": torch.__version__},
        "reference": "eriklindernoren/PyTorch-GAN implementations/dcgan/dcgan.py, unmodified",
        "torchvision": "real" if args.real_torchvision else "stand-in (see the docstring)",
        "batch_size": 64,
        "timed_batches": args.batches - WARMUP,
        "rounds": args.rounds,
        "reference_train_images_per_s": round(ref, 1),
        "ganforge_train_images_per_s": round(ours, 1),
        "speedup": round(ours / ref, 2),
        "samples": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
    }
    report_json(report, args.out)


if __name__ == "__main__":
    main()

"""Quality at a fixed CPU-time budget: train each family on Fashion-MNIST, evaluate it with the
domain features, and write a markdown table (with the commands and the real-vs-real floor)
into docs/benchmarks.md, and each family's last sample grid beside it.

    python benchmarks/quality.py [--families gan,dcgan,...] [--budget-minutes 15] [--n 10000]

StyleGAN2 is also evaluated at truncation psi 0.7 and 0.5, and the sweep drawn as a plot
(matplotlib: `pip install -e ".[bench]"`).

Run it alone on the machine: two trainings at once share the cores and the figures mean
nothing.  Runs go to benchmarks/runs/ (not kept in git); re-running a family trains it anew.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import ganforge  # noqa: E402
from ganforge.api import evaluate_run  # noqa: E402
from ganforge.data import load_dataset  # noqa: E402
from ganforge.features.domain import build_domain_network  # noqa: E402
from ganforge.metrics import stats  # noqa: E402
from ganforge.metrics.sets import extract, to_uint8  # noqa: E402

FAMILIES = [
    "gan",
    "dcgan",
    "cgan",
    "acgan",
    "infogan",
    "wgan",
    "wgan-arjovsky",
    "wgan-gp",
    "wgan-gp-gulrajani",
    "progan",
    "stylegan",
    "stylegan2",
    "biggan",
    "cyclegan",
    "cyclegan-noidt",
    "pix2pix",
    "pix2pix-l1",
    "context-encoder",
    "context-encoder-l2",
    "srresnet",
    "srgan",
    "stackgan",
]
#: rows that train a family with settings of their own: the paper's ablation without identity
VARIANTS = {
    # the paper's settings (the preset that was wgan's default before `fast`)
    "wgan-arjovsky": ("wgan", {"preset": "arjovsky"}),
    # the paper's settings (the preset that was wgan-gp's default before `fast`)
    "wgan-gp-gulrajani": ("wgan-gp", {"preset": "gulrajani"}),
    "cyclegan-noidt": ("cyclegan", {"lambda_identity": 0.0}),
    # the reconstruction loss alone, the same generator and budget (the papers' ablations)
    "pix2pix-l1": ("pix2pix", {"lambda_gan": 0.0}),
    "context-encoder-l2": ("context-encoder", {"adv_weight": 0.0}),
    # SRGAN's first phase on its own: SRResNet, trained with MSE for the whole budget
    "srresnet": ("srgan", {"pretrain_steps": 10**9}),
}
#: image-conditioned families: their task, the metrics evaluate_run scores (with the task's
#: floor beside them) and the border cropped before the super-resolution figures
IMAGE_TASKS = {"pix2pix": "paired", "context-encoder": "masked", "srgan": "lowres"}
IMAGE_METRICS = {
    "paired": "l1,psnr,ssim,fid,kid",
    "masked": "l1_masked,psnr_masked,fid,kid",
    "lowres": "psnr,ssim,fid,kid",
}
SR_BORDER = 4  # pixels cropped from each side before PSNR/SSIM: the factor, as SR papers do
#: unpaired translation: what each direction should turn its inputs into (fmnist-shoes: A is
#: sneakers, class 7; B ankle boots, class 9)
TRANSLATION = {"cyclegan": {"a2b": 9, "b2a": 7}}
CONDITIONAL = {"cgan", "acgan", "biggan"}
#: BigGAN's truncation curve: the threshold of the truncated normal (None: untruncated), with
#: G's EMA and standing statistics each on and off
BIGGAN_THRESHOLDS = (None, 2.0, 1.5, 1.0, 0.75, 0.5, 0.25)
TRUNCATION_SWEEP = {"stylegan2": (1.0, 0.7, 0.5)}


#: what a family's section says beyond its figures (why its preset is what it is)
FAMILY_NOTES = {
    "wgan": [
        "",
        "## `wgan`: weight clipping at this budget",
        "",
        "`--preset fast`, now the default: one critic step per G step, RMSprop 4e-4 for G and "
        "2e-4 for the critic, batch 32, both rates decaying linearly to zero over the second "
        "half. 5-minute trials (FID on 2,000 images): the paper's 5 critic steps at 5e-5 60.6; "
        "2 at 1e-4 35.0; 1 at 2e-4 31.6; 1 at 4e-4 / 2e-4, batch 32, 29.4; the same with Adam "
        "(0.5, 0.999) 44.9. The 15-minute run of the chosen settings: 13,820 steps, FID 29.11, "
        "where the 5-minute trial of the same settings had 29.4: clipping plateaus, and its "
        "critic's estimate stays at 0.01-0.05 for the whole run. The README says why it does "
        "not halve the paper's 33.19 (the `wgan-arjovsky` row).",
    ],
    "wgan-gp": [
        "",
        "## `wgan-gp`: what changed and why",
        "",
        "The paper's settings (`--preset gulrajani`, the `wgan-gp-gulrajani` row) spend the "
        "budget on the critic. `python benchmarks/step_profile.py wgan-gp --preset gulrajani "
        "--steps 40` (ms per iteration, batch 64, 2 threads): 508 in all, of which the five "
        "critic steps take 434 (177 forward, 257 backward and step: each carries the gradient "
        "penalty's double backward through a layer-normalized critic) and the G step 84. That "
        "is 2,216 G steps in 15 minutes.",
        "",
        "`--preset fast`, now the default, takes one critic step per G step with the penalty "
        "lazily every 4 (in a D step of its own, scaled by 4, as StyleGAN2 does for R1), "
        "BatchNorm in the critic, batch 32, Adam 4e-4 for G and 2e-4 for the critic, both "
        "rates decaying linearly to zero over the second half (the paper's CIFAR-10 code "
        "decays its rates linearly to zero too). Its profile (`--preset fast`): 60 ms an "
        "iteration, G 40, critic 18, the lazy penalty 9 (on average per iteration). The "
        "penalty on a batch-normalized critic uses the batch statistics of the interpolates, "
        "so it is not the per-sample penalty the paper insists on; it is what trained best.",
        "",
        "The 5-minute trials that chose it (FID on 2,000 images, the same seed; dcgan's own "
        "5-minute trial: 17.6), each row adding to the one above it where it says +:",
        "",
        "| critic steps, penalty | critic norm | batch | rates G / D | FID |",
        "|---|---|---|---|---|",
        "| 1, every 4 | layer | 64 | 2e-4 / 2e-4 | 23.2 |",
        "| + | layer | 64 | 4e-4 / 2e-4 | 22.9 |",
        "| + | layer | 32 | 4e-4 / 2e-4 | 21.1 |",
        "| + | **batch** | 32 | 4e-4 / 2e-4 | **13.8** |",
        "| 1, every 4 | batch | 16 | 4e-4 / 2e-4 | 16.1 |",
        "| 1, every 4 | batch | 32 | 2e-4 / 2e-4 | 17.2 |",
        "| 1, every 4 | layer | 16 | 4e-4 / 2e-4 | 19.8 |",
        "| 1, every 4, weight 1 | layer | 32 | 4e-4 / 2e-4 | 21.3 |",
        "| 1, every 4, drift 1e-3 | layer | 64 | 1e-3 / 1e-3, betas (0, 0.99) | 30.5 |",
        "| 1, every 4 | none | 64 | 2e-4 / 2e-4 | 45.3 |",
        "| 2, every 4 | layer | 64 | 2e-4 / 2e-4 | 24.7 |",
        "| 1, every 4 | layer | 64 | 1e-4 / 4e-4 | 26.5 |",
        "| 1, every 4, betas (0.5, 0.9) | layer | 64 | 2e-4 / 2e-4 | 31.6 |",
        "| 1, every 4, critic 96/192/384 | layer | 64 | 2e-4 / 2e-4 | 24.2 |",
        "",
        "The full 15-minute runs (n = 10,000): the chosen settings at a constant rate, 14,765 "
        "steps, FID 8.45; with the rates decaying over the second half (the table's row), "
        "13,015 steps, FID 6.37, against the paper's settings' 23.48 and the widely used MLP "
        "WGAN-GP script's 23.09 in the same time.",
    ],
}

#: families whose preset's step count carries a schedule (the learning rate decays to zero at
#: its end): they train to it, or until the budget runs out if that comes first
SCHEDULED = {"cyclegan", "pix2pix", "context-encoder", "srgan", "stackgan", "wgan", "wgan-gp"}
#: families that train in stages get the budget once per stage (stackgan: Stage-I, Stage-II)
BUDGET_STAGES = {"stackgan": 2}


def train(family: str, budget_s: float, out: Path, seed: int) -> Path:
    family, settings = VARIANTS.get(family, (family, {}))
    settings = dict(settings)
    preset = settings.pop("preset", None)
    if out.exists():
        shutil.rmtree(out)  # benchmarks/runs/ is this script's own scratch space
    steps = {} if family in SCHEDULED else {"train.steps": 10_000_000}
    overrides = {
        "train.time_budget": budget_s,
        **steps,
        "train.progress": False,
        "train.sample_every": 1_000,
        "train.checkpoint_every": 10_000_000,
        "train.log_every": 50,
        **settings,
    }
    return ganforge.train(family, out=out, seed=seed, overrides=overrides, preset=preset)


@torch.no_grad()
def infogan_purity(run: Path, n: int, seed: int = 0) -> float:
    """How well the unsupervised categorical code predicts the domain classifier's class:
    sum over code values of the largest class count, over n (chance is about 0.1)."""
    loaded = ganforge.load(run)
    model = loaded.model
    net, _ = build_domain_network("fmnist")
    codes, classes = [], []
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, n, 500):
        (x,) = model.generator_inputs(min(500, n - start), None, gen)
        images = model.generator().eval()(x)
        codes.append(model.split_input(x)[1])
        classes.append(net(images).argmax(1))
    code, cls = torch.cat(codes).numpy(), torch.cat(classes).numpy()
    table = np.zeros((model.cfg.n_cat, 10), dtype=np.int64)
    np.add.at(table, (code, cls), 1)
    return float(table.max(1).sum() / n)


def wasserstein_trend(run: Path) -> dict[str, float] | None:
    """The critic's estimate early (10-20% of training) and at the end (last 10%)."""
    values = [
        r["D/wasserstein"]
        for r in map(json.loads, (run / "metrics.jsonl").open())
        if "D/wasserstein" in r
    ]
    if len(values) < 10:
        return None
    k = len(values) // 10
    return {
        "early": float(np.mean(values[k : 2 * k])),
        "final": float(np.mean(values[-k:])),
        "peak": float(np.max(values)),
    }


@torch.no_grad()
def translation_measures(family: str, run: Path) -> dict:
    """Both directions of an unpaired translator on the test split: how often the domain
    classifier puts a translation in the target class, FID and KID of the translations against
    the target domain's test images with the untranslated inputs as the floor, and the cycle
    and identity L1 (in [-1, 1] units)."""
    loaded = ganforge.load(run)
    model, data = loaded.model, loaded.config.data
    test = load_dataset(
        data.name,
        split="test",
        resolution=model.resolution,
        channels=model.spec.channels,
        options=data.task_options(),
    )
    net, _ = build_domain_network("fmnist")
    domains = {"a2b": (test.images_a, test.images_b), "b2a": (test.images_b, test.images_a)}
    back = {"a2b": "b2a", "b2a": "a2b"}
    row: dict = {}
    for direction, (source, target) in domains.items():
        outputs, cycled, same = [], [], []
        for start in range(0, len(source), 500):
            x = source[start : start + 500].float().div(127.5).sub(1)
            y = model.translate(x, direction=direction)
            outputs.append(to_uint8(y))
            cycled.append((model.translate(y, direction=back[direction]) - x).abs().mean((1, 2, 3)))
        for start in range(0, len(target), 500):
            # identity: this direction's generator given an image already in its target domain
            t = target[start : start + 500].float().div(127.5).sub(1)
            same.append((model.translate(t, direction=direction) - t).abs().mean((1, 2, 3)))
        fake, real = extract(net, torch.cat(outputs)), extract(net, target)
        floor = extract(net, source)
        size = min(1000, len(real.features), len(fake.features))
        cls = TRANSLATION[family][direction]
        row[direction] = {
            "n": len(source),
            "target_class_rate": float((fake.probs.argmax(1) == cls).mean()),
            "fid": stats.fid_from_features(real.features, fake.features),
            "kid": stats.kernel_inception_distance(real.features, fake.features, subset_size=size)[
                0
            ],
            "floor_target_class_rate": float((floor.probs.argmax(1) == cls).mean()),
            "floor_fid": stats.fid_from_features(real.features, floor.features),
            "floor_kid": stats.kernel_inception_distance(
                real.features, floor.features, subset_size=size
            )[0],
            "cycle_l1": float(torch.cat(cycled).mean()),
            "identity_l1": float(torch.cat(same).mean()),
        }
    return row


@torch.no_grad()
def image_task_measures(base: str, run: Path, n: int) -> dict:
    """An image-conditioned family on its test split: the task's metrics with their floor
    (`evaluate_run`), how often the domain classifier gives an output the class of its source
    image, and for super-resolution PSNR/SSIM with the border cropped."""
    from ganforge.metrics import pixels
    from ganforge.metrics.image_tasks import collect

    kind = IMAGE_TASKS[base]
    report = evaluate_run(run, metrics=IMAGE_METRICS[kind], n=n, out=run / "eval.json")
    loaded = ganforge.load(run)
    model, data = loaded.model, loaded.config.data
    test = load_dataset(
        data.name,
        split="test",
        resolution=model.resolution,
        channels=model.spec.channels,
        options=data.task_options(),
    )
    count = min(n, len(test))
    sets = collect(model, test, count, seed=0)
    net, record = build_domain_network("fmnist")
    row: dict = {
        "task": kind,
        "n": count,
        "metrics": report["metrics"],
        "floor": report["floor"],
        "features": record["hash"],
    }
    labels = getattr(test, "labels", None)
    if labels is not None and count == len(test):  # collect keeps the order when n is all
        for name, images in (("output", sets["outputs"]), ("floor", sets["floor"])):
            predicted = torch.from_numpy(extract(net, images).probs.argmax(1))
            row[f"{name}_class_agreement"] = float((predicted == labels[:count]).double().mean())
    if kind == "lowres":
        b = SR_BORDER

        def crop(x: torch.Tensor) -> torch.Tensor:
            return x[..., b:-b, b:-b].double().div(127.5).sub(1.0)

        target = crop(sets["targets"])
        for name in ("outputs", "floor"):
            out = crop(sets[name])
            row[f"{name}_cropped"] = {
                "psnr": float(pixels.psnr(out, target).mean()),
                "ssim": float(pixels.ssim(out, target).mean()),
            }
        row["border"] = b
    notes = model.training_notes()
    if "content loss" in notes:
        row["content"] = notes["content loss"]
    return row


def measure(family: str, run: Path, n: int) -> dict:
    base = VARIANTS.get(family, (family,))[0]
    if base in IMAGE_TASKS:
        steps = max(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))
        return {"family": family, "steps": steps, "image_task": image_task_measures(base, run, n)}
    if base in TRANSLATION:
        steps = max(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))
        return {"family": family, "steps": steps, "translation": translation_measures(base, run)}
    if base == "stackgan":
        from stackgan_measures import measure_stackgan

        steps = max(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))
        return {"family": family, "steps": steps, "stackgan": measure_stackgan(run, n)}
    metrics = "fid,kid,pr,cas" if family in CONDITIONAL else "fid,kid,pr"
    report = evaluate_run(run, metrics=metrics, n=n, out=run / "eval.json")
    meta_steps = max(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))
    row = {
        "family": family,
        "steps": meta_steps,
        **report["metrics"],
        "real_vs_real": report["real_vs_real"],
    }
    if family == "infogan":
        row["purity"] = infogan_purity(run, n)
    trend = wasserstein_trend(run)
    if trend:
        row["wasserstein"] = trend
    if family == "biggan":
        row["threshold_curve"] = biggan_curve(run, n)
    if family in TRUNCATION_SWEEP:
        row["truncation"] = []
        for psi in TRUNCATION_SWEEP[family]:
            found = report
            if psi != 1.0:
                out = run / f"eval-psi{psi:g}.json"
                found = evaluate_run(run, metrics="fid,kid,pr", n=n, truncation=psi, out=out)
            keep = ("fid", "kid", "precision", "recall")
            row["truncation"].append({"psi": psi, **{k: found["metrics"][k] for k in keep}})
    return row


def biggan_curve(run: Path, n: int) -> list[dict]:
    """FID, precision and recall of ``n`` images at each threshold of `BIGGAN_THRESHOLDS`,
    from G's EMA copy or from G itself, with and without standing statistics (16 batches of
    64 drawn at the same threshold)."""
    from ganforge.metrics.evaluate import evaluate

    points = []
    for ema in (True, False):
        for standing in (False, True):
            for threshold in BIGGAN_THRESHOLDS:
                g = ganforge.load(run)
                if not ema:  # G's own weights and statistics in the average's place
                    g.model.G_ema.load_state_dict(g.model.G.state_dict())
                if standing:
                    g.standing_stats(truncation=threshold)
                report = evaluate(
                    model=g,
                    metrics="fid,pr",
                    n=n,
                    dataset=g.config.data.name,
                    data_dir=g.config.data.dir,
                    task_options=g.config.data.task_options(),
                    truncation=threshold,
                    source=str(run),
                    warn=lambda _: None,
                )
                m = report["metrics"]
                points.append(
                    {
                        "ema": ema,
                        "standing": standing,
                        "threshold": threshold,
                        **{k: m[k] for k in ("fid", "precision", "recall", "label_agreement")},
                    }
                )
                print(json.dumps(points[-1]), flush=True)
    return points


def plot_threshold_curve(row: dict, path: Path) -> None:
    """BigGAN: FID, precision and recall against the threshold, one line per EMA/standing
    setting; the untruncated value of each as a dotted level line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 2.9), dpi=120)
    for i, (ema, standing) in enumerate(
        [(True, False), (True, True), (False, False), (False, True)]
    ):
        pts = [p for p in row["threshold_curve"] if p["ema"] == ema and p["standing"] == standing]
        cut = sorted((p for p in pts if p["threshold"] is not None), key=lambda p: p["threshold"])
        base = next(p for p in pts if p["threshold"] is None)
        label = f"{'EMA' if ema else 'G'}{', standing' if standing else ''}"
        for ax, key in zip(axes, ("fid", "precision", "recall"), strict=True):
            ax.plot([p["threshold"] for p in cut], [p[key] for p in cut], "o-", color=f"C{i}",
                    label=label, markersize=3)  # fmt: skip
            ax.axhline(base[key], color=f"C{i}", linestyle=":", linewidth=0.8)
    for ax, key in zip(axes, ("FID (domain features)", "precision", "recall"), strict=True):
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("truncation threshold")
    axes[0].legend(fontsize=6)
    fig.suptitle("biggan on Fashion-MNIST: truncation (dotted: untruncated)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def threshold_markdown(row: dict) -> list[str]:
    """BigGAN's truncation curve as a table: one row per threshold, FID / precision / recall
    for each EMA and standing-statistics setting."""
    settings = [(True, False), (True, True), (False, False), (False, True)]
    head = " | ".join(
        f"{'EMA' if e else 'G'}{' + standing' if s else ''}: FID / P / R / LA" for e, s in settings
    )
    lines = [
        "",
        f"## `{row['family']}`: truncation curve",
        "",
        "The same run sampled with z drawn from a normal truncated at the threshold (entries "
        "beyond it drawn again), from G's EMA copy or G itself, with and without standing "
        "statistics (the batch norms re-estimated over 16 batches of 64 drawn at that "
        "threshold).  FID, precision (P), recall (R) and label agreement (LA) of 10,000 "
        "images, domain features.",
        "",
        f"| threshold | {head} |",
        "|---|" + "---|" * len(settings),
    ]
    curve = row["threshold_curve"]
    for t in dict.fromkeys(p["threshold"] for p in curve):
        cells = []
        for e, s in settings:
            p = next(p for p in curve if (p["threshold"], p["ema"], p["standing"]) == (t, e, s))
            agree = f" / {p['label_agreement']:.2f}" if "label_agreement" in p else ""
            cells.append(f"{p['fid']:.2f} / {p['precision']:.2f} / {p['recall']:.2f}{agree}")
        lines.append(f"| {'none' if t is None else f'{t:g}'} | " + " | ".join(cells) + " |")
    lines += ["", f"![truncation curve](images/benchmarks/{row['family']}-truncation.png)"]
    return lines


def plot_truncation(row: dict, path: Path) -> None:
    """Precision, recall and FID against psi, side by side."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit('the truncation plot needs matplotlib: pip install -e ".[bench]"')
    sweep = sorted(row["truncation"], key=lambda r: r["psi"])
    psi = [r["psi"] for r in sweep]
    # one panel per measure: on one shared axis a recall of a few hundredths looks flat
    fig, axes = plt.subplots(1, 3, figsize=(8, 2.8), dpi=120)
    panels = (("precision", "o-", "C0"), ("recall", "s-", "C1"), ("fid", "^--", "gray"))
    for ax, (key, style, color) in zip(axes, panels, strict=True):
        ax.plot(psi, [r[key] for r in sweep], style, color=color)
        ax.set_title("FID (domain features)" if key == "fid" else key, fontsize=9)
        ax.set_xlabel("truncation psi")
        ax.set_xticks(psi)
        ax.margins(y=0.2)
    fig.suptitle(f"{row['family']} on Fashion-MNIST: truncation sweep", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def translation_markdown(rows: list[dict], budget_min: float) -> list[str]:
    """The unpaired translators' table: per direction, the figures and their floor."""
    lines = [
        "",
        "## Unpaired translation: sneakers <-> ankle boots",
        "",
        f"`cyclegan` trained on `fmnist-shoes` (Fashion-MNIST sneakers as A, ankle boots as B, "
        "the training split) to its preset's last step, where the learning rate has decayed "
        f"to zero, within a budget of **{budget_min:g} CPU minutes**, then scored on the test "
        "split (1,000 images a domain) with the domain features. *Target class*: how often the "
        "domain classifier puts a translation in the class it was translated to. FID and KID: the "
        "translations against the target domain's test images. The floor: the untranslated "
        "inputs against the same images. Cycle L1: G_BA(G_AB(A)) against A (and the other way); "
        "identity L1: G_AB(B) against B (and G_BA(A) against A), in [-1, 1] units.",
        "",
        "| run | steps | direction | target class | FID | KID | floor: target class | floor: FID | "
        "floor: KID | cycle L1 | identity L1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for direction, t in r["translation"].items():
            lines.append(
                f"| `{r['family']}` | {r['steps']:,} | {direction} | "
                f"{t['target_class_rate']:.2f} | {t['fid']:.2f} | {t['kid']:.3f} | "
                f"{t['floor_target_class_rate']:.2f} | {t['floor_fid']:.2f} | "
                f"{t['floor_kid']:.3f} | {t['cycle_l1']:.3f} | {t['identity_l1']:.3f} |"
            )
    lines += [
        "",
        "Preview grids (rows: A, G_AB(A), G_BA(G_AB(A)), then B, G_BA(B), G_AB(G_BA(B))):",
    ]
    lines += ["", *(f"![{r['family']}](images/benchmarks/{r['family']}.png)" for r in rows)]
    return lines


#: per task: the section's title, what its rows measure, and the table's columns (label, key
#: in the row's "image_task" figures, format)
IMAGE_SECTIONS = {
    "paired": (
        "Paired translation: edge maps -> garments",
        "`pix2pix` on `fmnist-edges` (the Sobel edge map of each Fashion-MNIST garment as the "
        "input, the garment as the target), beside the same U-Net trained with L1 alone "
        "(`lambda_gan=0`, no discriminator) for the same steps. Scored on the 10,000 test "
        "pairs: L1, PSNR and SSIM "
        "of the outputs against their targets, FID/KID of the outputs against the targets, and "
        "*class agreement*: how often the domain classifier puts an output in the class of the "
        "garment its edge map came from. The floor: the edge map itself.",
        [
            ("L1", "l1", ".3f"),
            ("PSNR (dB)", "psnr", ".2f"),
            ("SSIM", "ssim", ".3f"),
            ("FID", "fid", ".2f"),
            ("KID", "kid", ".4f"),
            ("class agreement", "class_agreement", ".3f"),
        ],
    ),
    "masked": (
        "Inpainting: a 16 px centre hole",
        "`context-encoder` on `masked:fmnist` at 32 px with the 16 x 16 centre hole, beside the "
        "same network trained with L2 alone (`adv_weight=0`, no discriminator) for the same "
        "steps. Scored on the "
        "10,000 test images: L1 and PSNR inside the hole, FID/KID of the completed images "
        "against the originals, and class agreement. The floor: the hole filled with the mean of "
        "the known pixels.",
        [
            ("L1 (hole)", "l1_masked", ".3f"),
            ("PSNR (hole, dB)", "psnr_masked", ".2f"),
            ("FID", "fid", ".2f"),
            ("KID", "kid", ".4f"),
            ("class agreement", "class_agreement", ".3f"),
        ],
    ),
    "lowres": (
        "Super-resolution: x4, 7 -> 28 px",
        "`srgan` on `lowres:fmnist` (each 28 px test image box-filtered to 7 px), beside "
        "SRResNet, the same generator trained with MSE alone for the same steps "
        "(`pretrain_steps` past the end: the MSE phase throughout). PSNR and SSIM with 4 "
        "pixels (the factor) cropped from each border, "
        "as super-resolution papers report them; FID/KID of the outputs against the originals; "
        "class agreement. The bicubic upscale of the input is the first row.",
        [
            ("PSNR (dB, crop 4)", "psnr_cropped", ".2f"),
            ("SSIM (crop 4)", "ssim_cropped", ".3f"),
            ("FID", "fid", ".2f"),
            ("KID", "kid", ".4f"),
            ("class agreement", "class_agreement", ".3f"),
        ],
    ),
}


def _image_value(t: dict, key: str, floor: bool) -> float | None:
    if key.endswith("_cropped"):
        part = t.get("floor_cropped" if floor else "outputs_cropped")
        return None if part is None else part[key.removesuffix("_cropped")]
    if key == "class_agreement":
        return t.get("floor_class_agreement" if floor else "output_class_agreement")
    figures = t["floor"]["metrics"] if floor else t["metrics"]
    return figures.get(key)


def image_task_markdown(rows: list[dict], budget_min: float) -> list[str]:
    """One table per image-conditioned task: each run and the task's floor."""
    lines: list[str] = []
    for kind, (title, text, columns) in IMAGE_SECTIONS.items():
        runs = [r for r in rows if r["image_task"]["task"] == kind]
        if not runs:
            continue
        lines += [
            "",
            f"## {title}",
            "",
            f"{text} Each run trains its preset to its last step or for **{budget_min:g} CPU "
            "minutes**, whichever comes first.",
        ]
        content = [  # the family's own run, not an ablation that never reached that phase
            r["image_task"]["content"]
            for r in runs
            if "content" in r["image_task"] and r["family"] in IMAGE_TASKS
        ]
        if content:
            lines += ["", f"Content loss of the adversarial phase: {content[0]}."]
        header = "| run | steps | " + " | ".join(c[0] for c in columns) + " |"
        lines += ["", header, "|" + "---|" * (len(columns) + 2)]

        def cells(t: dict, floor: bool, columns: list = columns) -> str:
            out = []
            for _, key, fmt in columns:
                value = _image_value(t, key, floor)
                out.append("" if value is None else format(value, fmt))
            return " | ".join(out)

        first = runs[0]["image_task"]
        lines.append(f"| floor: {first['floor']['name']} | | {cells(first, True)} |")
        for r in runs:
            lines.append(f"| `{r['family']}` | {r['steps']:,} | {cells(r['image_task'], False)} |")
        lines += ["", "Preview grids (rows: input, output, target):", ""]
        lines += [f"![{r['family']}](images/benchmarks/{r['family']}.png)" for r in runs]
    return lines


def text_markdown(rows: list[dict], budget_min: float) -> list[str]:
    """stackgan on fmnist-captions: Stage-I (upsampled) beside Stage-II, the caption's class
    and attributes found in the images, and the text encoder's R-precision."""
    lines: list[str] = []
    for r in rows:
        m = r["stackgan"]
        s1, s2, floor = m["stage1_upsampled"], m["stage2"], m["real_vs_real"]
        attrs, rp = m["attributes"], m["r_precision"]
        lines += [
            "",
            "## Text to image: `stackgan` on fmnist-captions",
            "",
            f"`stackgan --preset fmnist` trained for **{BUDGET_STAGES['stackgan']} x "
            f"{budget_min:g} CPU minutes** in one run ({r['steps']:,} steps in all: Stage-I "
            "at 16 px first, then Stage-II at 32 px with Stage-I frozen), then sampled for the "
            f"captions of {m['n']:,} test items (one caption each; Stage-I and Stage-II images "
            "share z and the conditioning noise). Domain features against the test split; "
            "class agreement: the domain classifier's class of the image against the class "
            "the caption names.",
            "",
            "| output | FID | KID | class agreement |",
            "|---|---|---|---|",
            f"| Stage-I, upsampled to 32 px | {s1['fid']:.2f} | {s1['kid']:.3f} | "
            f"{s1['class_agreement']:.2f} |",
            f"| Stage-II | {s2['fid']:.2f} | {s2['kid']:.3f} | {s2['class_agreement']:.2f} |",
            f"| real vs real (train vs test) | {floor['fid']:.2f} | {floor['kid']:.3f} | |",
            "",
            "Attributes the captions name, measured on the Stage-II images the way the captions "
            "were written from the real ones (`data/captions.py`: object level, width, fill): "
            "how often the measured word is the caption's (chance 1/3), and the mean measured "
            "value for the high word minus for the low word (positive: the images follow the "
            "captions). The real test images, measured the same way, are the ceiling.",
            "",
            "| attribute | captions naming it | agreement (Stage-II) | agreement (real) | "
            "high - low (Stage-II) | high - low (real) |",
            "|---|---|---|---|---|---|",
        ]
        for name in attrs["stage2"]:
            a, b = attrs["stage2"][name], attrs["real"][name]
            diff = next(k for k in a if "_minus_" in k)
            lines.append(
                f"| {name} ({diff.replace('_minus_', ' - ')}) | {a['captions']:,} | "
                f"{a['agreement']:.2f} | {b['agreement']:.2f} | {a[diff]:.3f} | {b[diff]:.3f} |"
            )
        if rp.get("real") is not None:

            def fmt(v):
                return f"{v['r_precision']:.3f}" if isinstance(v, dict) else f"{v:.3f}"

            lines += [
                "",
                f"R-precision of the text encoder (the right caption ranked first among "
                f"{rp['candidates']} by the DAMSM-like image-text score; chance "
                f"{rp['chance']:.2f}): real test images {fmt(rp['real'])}, Stage-II images "
                f"{fmt(rp['generated'])}.",
            ]
        lines += [
            "",
            "Stage-II images for 32 test captions, each printed under its image "
            "(`ganforge sample RUN --n 32`):",
            "",
            f"![{r['family']}](images/benchmarks/{r['family']}.png)",
        ]
    return lines


def markdown(rows: list[dict], budget_min: float, n: int, commands: list[str]) -> str:
    translators = [r for r in rows if "translation" in r]
    imaging = [r for r in rows if "image_task" in r]
    texting = [r for r in rows if "stackgan" in r]
    rows = [r for r in rows if not {"translation", "image_task", "stackgan"} & set(r)]
    if not rows:
        lines = ["# Quality benchmark"]
        if translators:
            lines += translation_markdown(translators, budget_min)
        lines += image_task_markdown(imaging, budget_min)
        lines += text_markdown(texting, budget_min)
        return "\n".join([*lines, "", "To reproduce:", "", "```bash", *commands, "```", ""])
    base = rows[0]["real_vs_real"]
    lines = [
        "# Quality benchmark",
        "",
        f"Each family trained on Fashion-MNIST for **{budget_min:g} CPU minutes** (2 cores), "
        f"its default preset, then evaluated on {n:,} generated images against the test split "
        "with the domain features (`docs/metrics.md`).",
        "",
        "| family | steps | FID | KID | precision | recall | label agreement | CAS | "
        "code purity | critic estimate (early -> final) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        w = r.get("wasserstein")
        cells = [
            f"`{r['family']}`",
            f"{r['steps']:,}",
            f"{r['fid']:.2f}",
            f"{r['kid']:.3f}",
            f"{r['precision']:.2f}",
            f"{r['recall']:.2f}",
            f"{r['label_agreement']:.2f}" if "label_agreement" in r else "",
            f"{r['cas']:.2f}" if "cas" in r else "",
            f"{r['purity']:.2f}" if "purity" in r else "",
            f"{w['early']:.3f} -> {w['final']:.3f}" if w else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    m = base["metrics"]
    lines += [
        f"| real vs real ({base['splits']}, n={base['n']:,}) | | {m['fid']:.2f} | "
        f"{m['kid']:.3f} | {m['precision']:.2f} | {m['recall']:.2f} | | | | |",
        "",
        "Sample grids (the last of each run):",
        "",
    ]
    for r in rows:
        lines.append(f"![{r['family']}](images/benchmarks/{r['family']}.png)")
    for r in rows:
        if r.get("note"):
            lines += ["", f"`{r['family']}`: {r['note']}."]
    for r in rows:
        lines += FAMILY_NOTES.get(r["family"], [])
    for r in rows:
        if "truncation" not in r:
            continue
        lines += [
            "",
            f"## `{r['family']}`: truncation sweep",
            "",
            "The same run sampled with a smaller truncation psi (w pulled towards the tracked "
            "mean): fidelity (precision) is bought with variety (recall).",
            "",
            "| psi | FID | KID | precision | recall |",
            "|---|---|---|---|---|",
        ]
        for t in r["truncation"]:
            lines.append(
                f"| {t['psi']:g} | {t['fid']:.2f} | {t['kid']:.3f} | {t['precision']:.3f} | "
                f"{t['recall']:.3f} |"
            )
        lines += ["", f"![truncation sweep](images/benchmarks/{r['family']}-truncation.png)"]
    for r in rows:
        if "threshold_curve" in r:
            lines += threshold_markdown(r)
    if translators:
        lines += translation_markdown(translators, budget_min)
    if imaging:
        lines += image_task_markdown(imaging, budget_min)
    if texting:
        lines += text_markdown(texting, budget_min)
    lines += speed_markdown(ROOT / "docs")
    lines += ["", "To reproduce:", "", "```bash", *commands, "```", ""]
    return "\n".join(lines)


def speed_markdown(docs: Path) -> list[str]:
    """The step-speed figures against the reference code itself, from the JSON that
    ``benchmarks/vs_pytorch_gan.py`` and ``benchmarks/vs_stylegan2_ada.py`` wrote (absent
    files are left out)."""
    lines = []
    dc, sg = docs / "vs-pytorch-gan.json", docs / "vs-stylegan2-ada.json"
    if not (dc.is_file() or sg.is_file()):
        return lines
    lines += [
        "",
        "## Training speed against the reference code",
        "",
        "The quality above comes from steps; these are the steps' speed against the published "
        "code itself, run unmodified beside GANForge on the same machine (rounds interleaved, "
        "each in a fresh process, medians; 2 threads). No test asserts a timing.",
    ]
    if dc.is_file():
        d = json.loads(dc.read_text())
        lines += [
            "",
            "`dcgan --preset classic32` against eriklindernoren/PyTorch-GAN's "
            "`implementations/dcgan/dcgan.py` (`python benchmarks/vs_pytorch_gan.py --reference "
            f"PyTorch-GAN --out docs/vs-pytorch-gan.json`, batch {d['batch_size']}, "
            f"{d['rounds']} rounds): the script {d['reference_train_images_per_s']} train "
            f"images/s, GANForge {d['ganforge_train_images_per_s']}: "
            f"**{d['speedup']:.2f}x** (rounds: script "
            f"{', '.join(map(str, d['samples']['reference']))}; GANForge "
            f"{', '.join(map(str, d['samples']['ganforge']))}).",
        ]
    if sg.is_file():
        d = json.loads(sg.read_text())
        res = ",".join(str(r["resolution"]) for r in d["rows"])
        lines += [
            "",
            "`stylegan2 --preset fmnist32` against NVlabs/stylegan2-ada-pytorch's networks and "
            "loss on the same weights (`python benchmarks/vs_stylegan2_ada.py --reference "
            f"stylegan2-ada-pytorch --resolutions {res} --rounds {d['rounds']} --iterations "
            f"{d['iterations']} --out docs/vs-stylegan2-ada.json`, batch 32, float32). "
            "*iteration*: each codebase's training iteration (Adam, lazy R1, EMA); *networks*: "
            "the same G and D forward and backward calls on each side's layers. Images/s:",
            "",
            "| resolution | official iteration | GANForge | speed-up | official networks | "
            "GANForge | speed-up | images agree to |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in d["rows"]:
            it, nets, a = r["iteration"], r["networks"], r["agreement"]
            worst = max(a["images_eval_max_abs"], a["images_train_max_abs"])
            lines.append(
                f"| {r['resolution']} | {it['official_images_per_s']} | "
                f"{it['ganforge_images_per_s']} | **{it['speedup']:.2f}x** | "
                f"{nets['official_images_per_s']} | {nets['ganforge_images_per_s']} | "
                f"**{nets['speedup']:.2f}x** | {worst:.0e} |"
            )
    return lines


def commands_of(rows: list[dict]) -> list[str]:
    """The commands that made the rows (training, then any rescoring), each once."""
    commands = list(dict.fromkeys(r["command"] for r in rows))
    return commands + list(dict.fromkeys(r["rescored"] for r in rows if "rescored" in r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--budget-minutes", type=float, default=15.0)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument(
        "--update",
        action="store_true",
        help="replace these families' rows in the existing table, keep the others",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the markdown from the JSON beside it (after a change to its text)",
    )
    parser.add_argument(
        "--eval-only",
        action="store_true",
        help="score the families' existing runs again (after a change to the metrics) "
        "instead of training; implies --update and keeps each row's training command",
    )
    args = parser.parse_args()
    if args.render_only:
        rows = json.loads(Path(args.docs).with_suffix(".json").read_text())
        Path(args.docs).write_text(markdown(rows, args.budget_minutes, args.n, commands_of(rows)))
        return
    args.update = args.update or args.eval_only
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    build_domain_network("fmnist")  # built once, before any clock starts
    command = (
        f"python benchmarks/quality.py --families {','.join(families)} "
        f"--budget-minutes {args.budget_minutes:g} --n {args.n}"
        + (" --update" if args.update else "")
    )
    out_json = Path(args.docs).with_suffix(".json")
    previous = {}
    if args.update and out_json.exists():
        previous = {r["family"]: r for r in json.loads(out_json.read_text())}
    rows = []
    for family in families:
        start = time.perf_counter()
        run = ROOT / "benchmarks" / "runs" / family
        if args.eval_only:
            if not (run / "checkpoints").is_dir():
                sys.exit(f"--eval-only: no earlier run of {family}; train it first")
            if family not in previous:  # trained, but its scoring never finished
                previous[family] = {
                    "wall_s": None,
                    "command": f"python benchmarks/quality.py --families {family} "
                    f"--budget-minutes {args.budget_minutes:g} --n {args.n} --update",
                }
        else:
            budget = args.budget_minutes * 60 * BUDGET_STAGES.get(family, 1)
            run = train(family, budget, run, args.seed)
        row = measure(family, run, args.n)
        if args.eval_only:
            row["wall_s"] = previous[family]["wall_s"]  # the training run's
            row["command"] = previous[family]["command"]
            row["rescored"] = f"python benchmarks/quality.py --families {family} --eval-only"
        else:
            row["wall_s"] = round(time.perf_counter() - start, 1)
            row["command"] = command
        rows.append(row)
        grid = sorted((run / "samples").glob("step-*.png"))[-1]
        target = ROOT / "docs" / "images" / "benchmarks" / f"{family}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if family == "stackgan":  # test-split captions printed under their images
            from ganforge.api import write_samples

            grid = write_samples(run, n=32, seed=args.seed, out=run / "captioned.png")[0]
        shutil.copy(grid, target)
        if "truncation" in row:
            plot_truncation(row, target.with_name(f"{family}-truncation.png"))
        if "threshold_curve" in row:
            plot_threshold_curve(row, target.with_name(f"{family}-truncation.png"))
        print(json.dumps(row), flush=True)
    if args.update:
        kept = [r for f, r in previous.items() if f not in families]
        order = {f: i for i, f in enumerate(FAMILIES)}
        rows = sorted(kept + rows, key=lambda r: order.get(r["family"], len(order)))
    Path(args.docs).write_text(markdown(rows, args.budget_minutes, args.n, commands_of(rows)))
    out_json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The ``ganforge`` command.  Thin: each subcommand turns its arguments into an API call."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UserError

EPILOG = """examples:
  ganforge train dcgan                          # DCGAN on Fashion-MNIST, a few CPU minutes
  ganforge train cgan --steps 3000 --out runs/c # class-conditional, into runs/c
  ganforge train dcgan --resume --out runs/c --steps 6000
  ganforge sample runs/dcgan-fmnist --n 64 --out grid.png
  ganforge summary dcgan --preset classic32
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _add_set_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any setting, e.g. --set lr_g=1e-4 --set train.log_every=10 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ganforge",
        description="Train, inspect and sample GANs on one engine.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="list the models or data sets")
    p.add_argument(
        "what",
        nargs="?",
        choices=["models", "datasets"],
        default="models",
        help="what to list (default: models)",
    )

    p = sub.add_parser("summary", help="layer table of a model's G and D (like Keras' summary)")
    p.add_argument("model", help="model family, e.g. dcgan (see 'ganforge list')")
    p.add_argument("--preset", help="named preset of the family (default: its default preset)")
    _add_set_option(p)
    p.add_argument(
        "--channels",
        type=int,
        default=1,
        choices=[1, 3],
        help="image channels of the data (default: 1)",
    )
    p.add_argument(
        "--classes",
        type=int,
        default=10,
        help="number of classes for conditional models (default: 10)",
    )

    p = sub.add_parser(
        "train",
        help="train a model; writes a run folder",
        description="Train a model.  Settings resolve as: preset, --config file, "
        "the flags below, then --set overrides.",
    )
    p.add_argument("model", help="model family, e.g. dcgan (see 'ganforge list')")
    p.add_argument("--preset", help="named preset of the family (see 'ganforge summary MODEL')")
    p.add_argument("--dataset", help="fmnist | mnist | digits | folder:PATH (default: fmnist)")
    p.add_argument("--data-dir", help="folder holding the data set's files")
    p.add_argument(
        "--steps",
        type=_positive_int,
        help="total generator steps of the run (a resumed run continues to this)",
    )
    p.add_argument("--batch-size", type=_int, help="global batch size (default: 64)")
    p.add_argument("--out", help="run folder (default: runs/MODEL-DATASET, never overwritten)")
    p.add_argument("--seed", type=_int, help="random seed (default: 0)")
    p.add_argument("--config", help="YAML file of settings (the same keys as config.yaml)")
    _add_set_option(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its newest good checkpoint",
    )
    p.add_argument("--device", help="auto (default: CUDA when present) | cpu | cuda | cuda:N")

    p = sub.add_parser("sample", help="generate a grid of images from a trained run")
    p.add_argument("run", help="run folder written by 'ganforge train'")
    p.add_argument("--n", type=_positive_int, default=64, help="number of images (default: 64)")
    p.add_argument(
        "--class",
        dest="label",
        type=_int,
        help="class index for conditional models (default: one column per class)",
    )
    p.add_argument("--seed", type=_int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--truncation",
        type=float,
        default=1.0,
        help="truncation psi in (0, 1]; lower trades variety for fidelity (default: 1)",
    )
    p.add_argument(
        "--checkpoint", help="checkpoint folder name, e.g. step-000500 (default: newest)"
    )
    p.add_argument(
        "--vary",
        metavar="CODE",
        help="infogan: a grid varying one latent code per row (cat, cont0, cont1)",
    )
    p.add_argument(
        "--noise-mode",
        default="const",
        choices=["const", "random", "none"],
        help="style-based models' per-pixel noise (default: const, repeatable)",
    )
    p.add_argument("--out", help="output PNG (default: RUN/samples/sample-seed<S>.png)")
    p.add_argument("--device", default="cpu", help="cpu (default) | cuda | auto")
    p = sub.add_parser(
        "eval",
        help="evaluate a run or any two image sets (FID, KID, IS, precision/recall, ...)",
        description="Evaluate generated images against real ones.  Prints a table, beside it "
        "the real-vs-real figures at the same count, and writes eval.json.",
    )
    p.add_argument("run", nargs="?", help="run folder (omit with --fake)")
    p.add_argument(
        "--metrics",
        default="fid,kid,pr",
        help="comma-separated: fid, kid, is, pr, dc, cas, ifid (default: fid,kid,pr)",
    )
    p.add_argument(
        "--n",
        type=_positive_int,
        default=10_000,
        help="generated images, and real ones at most (default: 10000)",
    )
    p.add_argument(
        "--features",
        default="domain",
        help="feature network: domain (trained on the data set; works offline) or inception "
        "(the standard FID Inception-v3; needs --inception-weights)",
    )
    p.add_argument(
        "--inception-weights",
        help="the FID Inception weights file pt_inception-2015-12-05-6726825d.pth "
        "(or set GANFORGE_INCEPTION_WEIGHTS)",
    )
    p.add_argument("--split", default="test", help="real split to compare with (default: test)")
    p.add_argument("--real", help="real images instead of the data set: a folder or .npz")
    p.add_argument("--fake", help="generated images instead of a run: a folder or .npz")
    p.add_argument("--dataset", help="data set of the domain features (default: the run's)")
    p.add_argument("--data-dir", help="folder holding the data set's files")
    p.add_argument("--seed", type=_int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", help="write the report here (default: RUN/eval.json)")

    p = sub.add_parser(
        "import",
        help="turn a published network into a run folder (StyleGAN2-ADA pickles)",
        description="Read a network file without executing anything stored in it and write a "
        "run folder that sample, eval and the latent tools use like a trained run.",
    )
    p.add_argument("kind", choices=["stylegan2"], help="stylegan2: a StyleGAN2-ADA PyTorch .pkl")
    p.add_argument("file", help="the network file, e.g. network-snapshot-025000.pkl")
    p.add_argument("--out", required=True, help="the new run folder (never overwritten)")

    p = sub.add_parser("features", help="build the domain feature network of a data set")
    p.add_argument(
        "action", choices=["train"], help="train: build it now (else built on first use)"
    )
    p.add_argument("--dataset", default="fmnist", help="labeled data set (default: fmnist)")
    p.add_argument("--data-dir", help="folder holding the data set's files")
    p.add_argument("--rebuild", action="store_true", help="train again even if it is cached")
    return parser


def cmd_eval(args: argparse.Namespace) -> None:
    import json

    from .metrics.evaluate import evaluate, format_report

    report = evaluate(
        run_dir=args.run,
        real=args.real,
        fake=args.fake,
        dataset=args.dataset,
        data_dir=args.data_dir,
        metrics=args.metrics,
        n=args.n,
        split=args.split,
        features=args.features,
        inception_weights=args.inception_weights,
        seed=args.seed,
        out=args.out,
    )
    print(format_report(report))
    if "written_to" in report:
        print(f"wrote {report['written_to']}")
    else:
        print(json.dumps(report, indent=2))


def cmd_features(args: argparse.Namespace) -> None:
    from .metrics.domain import build_domain_network

    _, record = build_domain_network(args.dataset, data_dir=args.data_dir, rebuild=args.rebuild)
    print(
        f"domain features for {record['dataset']}: {record['features']}-d, hash "
        f"{record['hash']}, test accuracy {record['test_accuracy']:.2%}"
        + (f"\n{record['file']}" if "file" in record else "")
    )


def cmd_list(args: argparse.Namespace) -> None:
    from . import data  # noqa: F401  (registers the data sets)
    from .models import get_family
    from .registry import DATASETS as datasets
    from .registry import MODELS

    if args.what == "datasets":
        for name in datasets:
            label = "folder:PATH" if name == "folder" else name
            print(f"{label:<14}{datasets.doc(name)}")
        return
    for name in MODELS:
        family = get_family(name)
        presets = ", ".join(family.PRESETS)
        print(
            f"{name:<10}{MODELS.doc(name)}\n{'':<10}presets: {presets} "
            f"(default {family.DEFAULT_PRESET})"
        )


def cmd_summary(args: argparse.Namespace) -> None:
    from .config import build_config, parse_override
    from .data import DataSpec
    from .models import get_family
    from .tools.summary import summary_text

    cfg = build_config(
        args.model, args.preset, overrides=[parse_override(o) for o in args.overrides]
    )
    spec = DataSpec(
        channels=args.channels,
        resolution=cfg.family.resolution,
        num_classes=args.classes,
        class_names=tuple(str(i) for i in range(args.classes)),
        name="summary",
    )
    model = get_family(args.model)(cfg.family, spec)
    print(
        f"{args.model} (preset {cfg.preset}), {args.channels}x{cfg.family.resolution}x"
        f"{cfg.family.resolution} images\n"
    )
    print(summary_text(model))


def cmd_train(args: argparse.Namespace) -> None:
    from .api import train
    from .config import parse_override

    train(
        args.model,
        preset=args.preset,
        dataset=args.dataset,
        steps=args.steps,
        batch_size=args.batch_size,
        out=args.out,
        seed=args.seed,
        config=args.config,
        overrides=[parse_override(o) for o in args.overrides],
        resume=args.resume,
        device=args.device,
        data_dir=args.data_dir,
    )


def cmd_sample(args: argparse.Namespace) -> None:
    from .api import load
    from .images import save_grid

    g = load(args.run, checkpoint=args.checkpoint, device=args.device)
    if args.vary:
        if not hasattr(g.model, "vary"):
            raise UserError(
                f"--vary needs a model with latent codes (infogan); "
                f"'{args.run}' is a {g.config.model} run"
            )
        images = g.model.vary(args.vary, rows=max(1, args.n // 10), seed=args.seed)
        out = Path(args.out) if args.out else Path(args.run) / "samples" / f"vary-{args.vary}.png"
        save_grid(images, out, nrow=len(images) // max(1, args.n // 10))
        print(f"wrote a grid varying {args.vary} from {g.path} to {out}")
        return
    nrow = None
    if g.conditional and args.label is None:
        nrow = g.spec.num_classes
    images = g.generate(
        args.n,
        labels=args.label,
        seed=args.seed,
        truncation=args.truncation,
        noise_mode=args.noise_mode,
    )
    out = Path(args.out) if args.out else Path(args.run) / "samples" / f"sample-seed{args.seed}.png"
    save_grid(images, out, nrow=nrow)
    print(f"wrote {args.n} images from {g.path} to {out}")


def cmd_import(args: argparse.Namespace) -> None:
    from .tools.imports import import_stylegan2

    out = import_stylegan2(args.file, args.out)
    print(f"imported {args.file} as a stylegan2 run in {out}")


COMMANDS = {
    "list": cmd_list,
    "summary": cmd_summary,
    "train": cmd_train,
    "sample": cmd_sample,
    "eval": cmd_eval,
    "features": cmd_features,
    "import": cmd_import,
}


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.formatwarning = _one_line_warning  # user-facing notes, not source locations
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"ganforge {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        COMMANDS[args.command](args)
    except UserError as err:
        print(f"ganforge: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(
            "ganforge: interrupted; the newest checkpoint is intact (resume with --resume)",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

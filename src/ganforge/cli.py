"""The ``ganforge`` command.  Thin: each subcommand turns its arguments into an API call."""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import sys
from collections.abc import Iterator

from .errors import UserError

EPILOG = """examples (followed in order, each works after the ones above it):
  ganforge train dcgan                          # DCGAN on Fashion-MNIST, a few CPU minutes
  ganforge train cgan --steps 3000 --out runs/c # class-conditional, into runs/c
  ganforge train cgan --resume --out runs/c --steps 6000  # continue runs/c to step 6000
  ganforge sample runs/dcgan-fmnist --n 64 --out grid.png
  ganforge sample runs/c --class 7 --n 16 --out sneakers.png
  ganforge summary dcgan --preset classic32
  ganforge train stylegan2 --out runs/sg2       # style-based, for the latent tools below
  ganforge interpolate runs/sg2 --seeds 1,2,3 --frames 60 --out walk.gif
  ganforge mix runs/sg2 --rows 1,2,3 --cols 4,5,6 --layers 0-3 --out mix.png
  ganforge project runs/sg2 photo.png --steps 500 --out proj
"""


TRUNCATION_HELP = (
    "truncation, each family's own knob (default: none): psi for most families, where (0, 1] "
    "scales z and style-based models take [0, 1.5] around the mean w; biggan: the threshold "
    "of the truncated normal z is drawn from (> 0, e.g. 0.5)"
)


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


# numpy seeds (evaluation subsets) take 32 bits; torch generators take the derived seeds
SEED_LIMIT = 2**32


def _pair(text: str) -> tuple[float, float]:
    """'0.3,-0.2' -> (0.3, -0.2) for --translate."""
    try:
        tx, ty = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected two numbers TX,TY such as 0.3,-0.2, got {text!r}"
        ) from None
    return tx, ty


def _seed(text: str) -> int:
    value = _int(text)
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"use a seed from 0 to 2^32 - 1, got {value}")
    return value


def _resume_mode(text: str) -> str:
    if text != "auto":
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or nothing after --resume, got {text!r} "
            "(the model goes before the options: ganforge train MODEL --resume)"
        )
    return text


def _add_set_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any setting, e.g. --set lr_g=1e-4 --set train.log_every=10 (repeatable)",
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint", help="checkpoint folder name, e.g. step-000500 (default: newest)"
    )
    p.add_argument("--device", default="cpu", help="cpu (default) | cuda | auto")


def _add_latent_parsers(sub) -> None:
    """interpolate, mix and project: the latent tools of `ganforge.tools.latent`."""
    p = sub.add_parser(
        "interpolate",
        help="an animated GIF walking through the latents of some seeds",
        description="Walk from seed to seed (seed S is the image 'ganforge sample --n 1 "
        "--seed S' shows).  Style-based models walk in W by default, others in z.",
    )
    p.add_argument("run", help="run folder (trained or imported)")
    p.add_argument("--seeds", help="seeds in walk order, e.g. 1,2,3 or 0-4")
    p.add_argument(
        "--texts",
        nargs="+",
        metavar="TEXT",
        help="text-to-image models (stackgan): captions in walk order, walked in the "
        'condition space: --texts "a dark coat","a light sandal" (or one caption per argument)',
    )
    p.add_argument("--stage", type=int, choices=[1, 2], help="stackgan: 1 walks Stage-I images")
    p.add_argument(
        "--frames",
        type=_int,
        default=60,
        help="total frames; every seed falls on one (default: 60)",
    )
    p.add_argument("--out", help="output GIF (default: RUN/samples/walk-SEEDS.gif)")
    p.add_argument(
        "--space", choices=["w", "z"], help="w: lerp in W (style-based default); z: slerp in z"
    )
    p.add_argument("--truncation", type=float, help=TRUNCATION_HELP)
    p.add_argument(
        "--class",
        dest="label",
        help="conditional models: one class for the whole walk, or one per seed (e.g. 3,7; "
        "biggan walks between them in its shared class embedding, other families switch "
        "half-way); default: the seeds cycle through the classes",
    )
    p.add_argument("--fps", type=float, default=20.0, help="frames per second (default: 20)")
    p.add_argument(
        "--loop", action="store_true", help="walk back to the first seed (a seamless loop)"
    )
    _add_run_options(p)

    p = sub.add_parser(
        "mix",
        help="the style-mixing figure of a style-based model (PNG grid)",
        description="First row: the column seeds; first column: the row seeds; cell (r, c): "
        "the row seed's styles with --layers taken from the column seed.",
    )
    p.add_argument("run", help="run folder of a style-based model (stylegan2, stylegan)")
    p.add_argument("--rows", required=True, help="row seeds, e.g. 1,2,3 or 1-3")
    p.add_argument("--cols", required=True, help="column seeds, e.g. 4,5,6")
    p.add_argument(
        "--layers",
        required=True,
        help="layers (ws) taken from the column seed: a-b inclusive or a list, e.g. 0-3 "
        "(coarse: pose, shape) or 6,7 (fine: colour)",
    )
    p.add_argument("--out", help="output PNG (default: RUN/samples/mix.png)")
    p.add_argument("--truncation", type=float, help=TRUNCATION_HELP)
    p.add_argument("--class", dest="label", type=_int, help="class for conditional models")
    _add_run_options(p)

    p = sub.add_parser(
        "project",
        help="find the latent w that reconstructs an image (style-based models)",
        description="Optimize one w (and with --noise the noise maps) so that the generator "
        "reproduces TARGET; writes reconstruction.png, target.png and latent.safetensors.",
    )
    p.add_argument("run", help="run folder of a style-based model (stylegan2, stylegan)")
    p.add_argument("target", help="image file; converted to the network's size and channels")
    p.add_argument(
        "--steps", type=_positive_int, default=500, help="optimization steps (default: 500)"
    )
    p.add_argument("--noise", action="store_true", help="also optimize the noise maps")
    p.add_argument("--out", help="output folder (default: RUN/projections/TARGET-NAME)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate (default: 0.1)")
    p.add_argument(
        "--class", dest="label", type=_int, help="conditional models: start from this class"
    )
    _add_run_options(p)


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
    p.add_argument("--seed", type=_seed, help="random seed (default: 0)")
    p.add_argument("--config", help="YAML file of settings (the same keys as config.yaml)")
    _add_set_option(p)
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        type=_resume_mode,
        metavar="auto",
        help="continue the run in --out from its newest good checkpoint; '--resume auto' "
        "continues it when --out holds one and starts it otherwise (for restart loops)",
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
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    p.add_argument("--truncation", type=float, help=TRUNCATION_HELP)
    p.add_argument(
        "--standing-stats",
        action="store_true",
        help="biggan: re-estimate G's batch-norm statistics over 16 batches first",
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
    p.add_argument(
        "--text",
        help="text-to-image models (stackgan): the caption of every image; default: captions "
        "of the test split, each printed under its image",
    )
    p.add_argument("--stage", type=int, choices=[1, 2], help="stackgan: 1 shows the Stage-I images")
    p.add_argument(
        "--translate",
        type=_pair,
        metavar="TX,TY",
        help="stylegan3: translate the images by TX,TY image widths, as the release's "
        "gen_images.py --translate (write --translate=-0.1,0.2 for a negative TX)",
    )
    p.add_argument(
        "--rotate",
        type=float,
        metavar="DEG",
        help="stylegan3: rotate the images by DEG degrees, as gen_images.py --rotate",
    )
    p.add_argument(
        "--seeds",
        help="one image per seed instead of a grid, e.g. 0-99 or 1,5,9 (needs --outdir)",
    )
    p.add_argument("--outdir", help="with --seeds: the folder for seedNNNN.png / images.npz")
    p.add_argument(
        "--format",
        default="png",
        choices=["png", "npz"],
        help="with --seeds: png files (default) or one images.npz",
    )
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
        help="comma-separated: fid, kid, is, pr, dc, cas, ifid, ppl; for image-to-image "
        "models also l1, psnr, ssim, l1_masked, psnr_masked, ssim_masked (default: fid,kid,pr)",
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
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--truncation", type=float, help="draw the generated set with this " + TRUNCATION_HELP
    )
    p.add_argument(
        "--standing-stats",
        action="store_true",
        help="biggan: re-estimate G's batch-norm statistics before drawing the set",
    )
    p.add_argument("--out", help="write the report here (default: RUN/eval.json)")
    _add_run_options(p)

    p = sub.add_parser(
        "import",
        help="turn a published network into a run folder (NVIDIA's StyleGAN2 and StyleGAN3, "
        "BigGAN-PyTorch, stylegan2_pytorch)",
        description="Read a network file without executing anything stored in it and write a "
        "run folder that sample, eval and the latent tools use like a trained run.",
    )
    p.add_argument(
        "kind",
        choices=["stylegan2", "stylegan3", "biggan", "stylegan2-pytorch"],
        help="stylegan2: a StyleGAN2 .pkl of StyleGAN2-ADA PyTorch or of the StyleGAN3 release; "
        "stylegan3: a StyleGAN3-T/-R .pkl of the StyleGAN3 release; "
        "biggan: BigGAN-PyTorch's G.pth or G_ema.pth (the D.pth and state_dict.pth beside it "
        "are read too); stylegan2-pytorch: lucidrains' models/NAME/model_N.pt (or the folder; "
        "its .config.json is read too)",
    )
    p.add_argument(
        "file",
        help="the network file, or for pickles its http(s) URL (downloaded once into "
        "$GANFORGE_CACHE or ~/.cache/ganforge/downloads), e.g. network-snapshot-025000.pkl",
    )
    p.add_argument("--out", required=True, help="the new run folder (never overwritten)")

    p = sub.add_parser(
        "export",
        help="write a run's generator, config and model card into a folder to hand on",
        description="The folder holds model.safetensors (the EMA generator only), config.json "
        "and README.md; ganforge.load(DIR) and the commands that take RUN (sample, ...) read it.",
    )
    p.add_argument("run", help="run folder")
    p.add_argument("dir", help="the new folder (refused when it exists and is not empty)")
    p.add_argument("--checkpoint", help="export this step folder instead of the newest")

    _add_latent_parsers(sub)

    p = sub.add_parser(
        "translate",
        help="translate image files with an image-to-image model (pix2pix; cyclegan: A <-> B)",
        description="Each image keeps its size (padded for the network, cropped back) and is "
        "written as a PNG of the same name into --out.",
    )
    p.add_argument("run", help="run folder of an image-to-image model (pix2pix, cyclegan)")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, BMP, WebP, ...)")
    p.add_argument(
        "--direction",
        help="a2b (default: domain A to B) or b2a, for models that translate both ways",
    )
    p.add_argument("--out", help="output folder (default: RUN/translations)")
    p.add_argument(
        "--size", type=_positive_int, help="resize each image's shorter side to this first"
    )
    _add_run_options(p)

    p = sub.add_parser(
        "inpaint",
        help="fill a hole in image files with an inpainting model (context-encoder)",
        description="The hole is --mask (an image of the same size, white = hole) or --box; "
        "known pixels are kept. Each result is written as a PNG of the same name into --out.",
    )
    p.add_argument("run", help="run folder of an inpainting model (context-encoder)")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, BMP, WebP, ...)")
    hole = p.add_mutually_exclusive_group(required=True)
    hole.add_argument("--mask", help="mask image of the same size as each image, white = hole")
    hole.add_argument("--box", help="the hole as Y,X,H,W: top, left, height, width in pixels")
    p.add_argument("--out", help="output folder (default: RUN/inpainted)")
    _add_run_options(p)

    p = sub.add_parser(
        "upscale",
        help="upscale image files with a super-resolution model (srgan)",
        description="Each image comes out the model's factor times larger, written as a PNG of "
        "the same name into --out; large images are done in overlapping tiles.",
    )
    p.add_argument("run", help="run folder of a super-resolution model (srgan)")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, BMP, WebP, ...)")
    p.add_argument("--out", help="output folder (default: RUN/upscaled)")
    _add_run_options(p)

    p = sub.add_parser(
        "studio",
        help="a local web app to look at runs and use their models (the studio extra)",
        description="Serve the studio on the runs under RUNS_DIR (default: runs) and print its "
        "address.  It listens on 127.0.0.1 unless --host says otherwise and loads nothing "
        "from the network.",
    )
    p.add_argument("runs", nargs="*", metavar="RUNS_DIR", help="folders holding runs")
    p.add_argument(
        "--port", type=_int, default=8765, help="port (default: 8765; 0 picks a free one)"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only)",
    )
    p.add_argument("--device", default="cpu", help="cpu (default) | cuda | auto")

    p = sub.add_parser("features", help="build the domain feature network of a data set")
    p.add_argument(
        "action", choices=["train"], help="train: build it now (else built on first use)"
    )
    p.add_argument("--dataset", default="fmnist", help="labeled data set (default: fmnist)")
    p.add_argument("--data-dir", help="folder holding the data set's files")
    p.add_argument("--rebuild", action="store_true", help="train again even if it is cached")
    _add_verbosity_options(parser, sub)
    return parser


def _add_verbosity_options(parser: argparse.ArgumentParser, sub) -> None:
    """-q/-v, global: before the command (``ganforge -q train``) or after it (``train -q``).
    The subcommands' copies default to SUPPRESS, so they leave the global count alone."""
    for target, default in [(parser, 0)] + [(p, argparse.SUPPRESS) for p in sub.choices.values()]:
        group = target.add_argument_group("output")
        group.add_argument(
            "-q",
            "--quiet",
            action="count",
            default=default,
            help="print less: no progress lines (warnings and errors still show)",
        )
        group.add_argument(
            "-v", "--verbose", action="count", default=default, help="print more (debug lines)"
        )


class _StderrHandler(logging.Handler):
    """Writes to the sys.stderr of the moment (a stream bound once goes stale under tests)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never end the command
            self.handleError(record)


@contextlib.contextmanager
def _logging_for(verbosity: int) -> Iterator[None]:
    """The ``ganforge`` logger's lines on stderr while a command runs: INFO by default
    (progress without a terminal, what long one-time work is doing), WARNING with -q, DEBUG
    with -v.  The logger's level and handlers are put back afterwards."""
    logger = logging.getLogger("ganforge")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(
        logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    )
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# Each command imports the API only when it runs: `ganforge --help` and argparse's checks must
# not pay for torch and the families (seconds) before they answer.


def cmd_eval(args: argparse.Namespace) -> None:
    import json

    from .api import evaluate_run, format_eval_report

    report = evaluate_run(
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
        truncation=args.truncation,
        standing_stats=args.standing_stats,
        out=args.out,
        checkpoint=args.checkpoint,
        device=args.device,
    )
    print(format_eval_report(report))
    if "written_to" in report:
        print(f"wrote {report['written_to']}")
    else:
        print(json.dumps(report, indent=2))


def cmd_features(args: argparse.Namespace) -> None:
    from .api import build_features

    record = build_features(args.dataset, data_dir=args.data_dir, rebuild=args.rebuild)
    print(
        f"domain features for {record['dataset']}: {record['features']}-d, hash "
        f"{record['hash']}, test accuracy {record['test_accuracy']:.2%}"
        + (f"\n{record['file']}" if "file" in record else "")
    )


def cmd_list(args: argparse.Namespace) -> None:
    from .api import describe_models, list_datasets

    if args.what == "datasets":
        rows = list_datasets()
        width = max(len(label) for label, _ in rows) + 2
        for label, doc in rows:
            print(f"{label:<{width}}{doc}")
        return
    for name, doc, presets, default in describe_models():
        print(f"{name:<10}{doc}\n{'':<10}presets: {', '.join(presets)} (default {default})")


def cmd_summary(args: argparse.Namespace) -> None:
    from .api import parse_overrides, summary

    text = summary(
        args.model,
        preset=args.preset,
        overrides=parse_overrides(args.overrides),
        channels=args.channels,
        classes=args.classes,
    )
    print(text)


def cmd_train(args: argparse.Namespace) -> None:
    from .api import parse_overrides, train

    train(
        args.model,
        preset=args.preset,
        dataset=args.dataset,
        steps=args.steps,
        batch_size=args.batch_size,
        out=args.out,
        seed=args.seed,
        config=args.config,
        overrides=parse_overrides(args.overrides),
        resume=args.resume,
        device=args.device,
        data_dir=args.data_dir,
        command=shlex.join(["ganforge", *args.argv]),
    )


def cmd_sample(args: argparse.Namespace) -> None:
    from .api import write_code_sweep, write_samples

    if args.seeds is not None or args.outdir is not None:
        _sample_seeds(args)
        return
    where = {"checkpoint": args.checkpoint, "device": args.device, "out": args.out}
    if args.vary:
        out, source = write_code_sweep(args.run, args.vary, n=args.n, seed=args.seed, **where)
        print(f"wrote a grid varying {args.vary} from {source} to {out}")
        return
    out, source = write_samples(
        args.run,
        n=args.n,
        label=args.label,
        seed=args.seed,
        truncation=args.truncation,
        noise_mode=args.noise_mode,
        standing_stats=args.standing_stats,
        translate=args.translate,
        rotate=args.rotate,
        text=args.text,
        stage=args.stage,
        **where,
    )
    print(f"wrote the sample grid {out} from {source}")


def _sample_seeds(args: argparse.Namespace) -> None:
    from .api import write_seed_images

    if args.seeds is None or args.outdir is None:
        raise UserError("--seeds and --outdir go together, e.g. --seeds 0-99 --outdir out/")
    if args.out is not None or args.vary is not None:
        raise UserError("--seeds writes one image per seed into --outdir; drop --out and --vary")
    written, source = write_seed_images(
        args.run,
        args.seeds,
        args.outdir,
        fmt=args.format,
        label=args.label,
        truncation=args.truncation,
        noise_mode=args.noise_mode,
        standing_stats=args.standing_stats,
        translate=args.translate,
        rotate=args.rotate,
        checkpoint=args.checkpoint,
        device=args.device,
    )
    print(f"wrote {len(written)} file(s) from {source} to {args.outdir}")


def cmd_interpolate(args: argparse.Namespace) -> None:
    from .api import parse_int_list, write_text_walk, write_walk

    if (args.seeds is None) == (args.texts is None):
        raise UserError("give --seeds (a walk through latents) or --texts (through captions)")
    if args.texts is not None:
        texts = args.texts[0].split(",") if len(args.texts) == 1 else args.texts
        out, source, frames = write_text_walk(
            args.run,
            [t.strip() for t in texts],
            frames=args.frames,
            stage=args.stage,
            fps=args.fps,
            checkpoint=args.checkpoint,
            device=args.device,
            out=args.out,
        )
        print(f"wrote {frames} frames through {len(texts)} captions from {source} to {out}")
        return
    if args.stage is not None:
        raise UserError("--stage goes with --texts (stackgan)")
    label = None if args.label is None else parse_int_list(args.label, "--class")
    out, source, frames = write_walk(
        args.run,
        args.seeds,
        frames=args.frames,
        space=args.space,
        truncation=args.truncation,
        label=label[0] if label is not None and len(label) == 1 else label,
        loop=args.loop,
        fps=args.fps,
        checkpoint=args.checkpoint,
        device=args.device,
        out=args.out,
    )
    print(f"wrote {frames} frames through seeds {args.seeds} from {source} to {out}")


def cmd_mix(args: argparse.Namespace) -> None:
    from .api import write_mix

    out, source = write_mix(
        args.run,
        args.rows,
        args.cols,
        args.layers,
        truncation=args.truncation,
        label=args.label,
        checkpoint=args.checkpoint,
        device=args.device,
        out=args.out,
    )
    print(
        f"wrote the style-mixing grid of rows {args.rows} and columns {args.cols} (layers "
        f"{args.layers} from the column seeds) from {source} to {out}"
    )


def cmd_project(args: argparse.Namespace) -> None:
    from .api import write_projection

    out, result = write_projection(
        args.run,
        args.target,
        steps=args.steps,
        lr=args.lr,
        noise=args.noise,
        seed=args.seed,
        label=args.label,
        checkpoint=args.checkpoint,
        device=args.device,
        out=args.out,
    )
    print(f"PSNR {result.psnr:.2f} dB after {args.steps} steps; distance: {result.distance}")
    print(f"wrote reconstruction.png, target.png and latent.safetensors to {out}")


def cmd_translate(args: argparse.Namespace) -> None:
    from .api import translate_files

    written, source = translate_files(
        args.run,
        args.images,
        direction=args.direction,
        out=args.out,
        size=args.size,
        checkpoint=args.checkpoint,
        device=args.device,
    )
    way = f" ({args.direction})" if args.direction else ""
    print(f"wrote {len(written)} translated images{way} from {source} to {written[0].parent}")


def cmd_inpaint(args: argparse.Namespace) -> None:
    from .api import inpaint_files

    written, source = inpaint_files(
        args.run,
        args.images,
        mask=args.mask,
        box=args.box,
        out=args.out,
        checkpoint=args.checkpoint,
        device=args.device,
    )
    print(f"wrote {len(written)} inpainted images from {source} to {written[0].parent}")


def cmd_upscale(args: argparse.Namespace) -> None:
    from .api import upscale_files

    written, source = upscale_files(
        args.run, args.images, out=args.out, checkpoint=args.checkpoint, device=args.device
    )
    print(f"wrote {len(written)} upscaled images from {source} to {written[0].parent}")


def cmd_studio(args: argparse.Namespace) -> None:
    from .studio import serve

    serve(args.runs or ["runs"], host=args.host, port=args.port, device=args.device)


def cmd_import(args: argparse.Namespace) -> None:
    from .api import import_network

    out = import_network(args.kind, args.file, args.out)
    print(f"imported {args.file} as a {args.kind} run in {out}")


def cmd_export(args: argparse.Namespace) -> None:
    from .api import export

    out = export(args.run, args.dir, checkpoint=args.checkpoint)
    print(f"exported {args.run} to {out}")


COMMANDS = {
    "list": cmd_list,
    "summary": cmd_summary,
    "train": cmd_train,
    "sample": cmd_sample,
    "eval": cmd_eval,
    "features": cmd_features,
    "import": cmd_import,
    "export": cmd_export,
    "interpolate": cmd_interpolate,
    "mix": cmd_mix,
    "project": cmd_project,
    "translate": cmd_translate,
    "inpaint": cmd_inpaint,
    "upscale": cmd_upscale,
    "studio": cmd_studio,
}


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.formatwarning = _one_line_warning  # user-facing notes, not source locations
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded by train
    if args.version:
        from .api import version

        print(f"ganforge {version()}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    # the command's lines only: a program that calls main() keeps its own logging afterwards
    with _logging_for(args.verbose - args.quiet):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        COMMANDS[args.command](args)
    except UserError as err:
        print(f"ganforge: error: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # the file system said no: a name too long, read-only, disk full
        where = f" '{err.filename}'" if err.filename else ""
        print(
            f"ganforge: error: cannot use{where}: {err.strerror or err}; check the path, its "
            "permissions and the free space",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(
            "ganforge: interrupted; the newest checkpoint is intact (resume with --resume)",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

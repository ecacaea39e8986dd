"""Reading StyleGAN2-ADA network pickles without running their code.

The pickles are built here with the same structure the official code writes: every network is
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with ``meta = dict(type='class',
version=6, module_src=..., class_name=..., state=module.__dict__)``. Fake ``torch_utils`` and
``dnnlib`` modules let plain ``pickle.dumps`` name those globals.
"""

from __future__ import annotations

import builtins
import json
import os
import pickle
import re
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from ganforge.errors import UserError
from ganforge.tools.stylegan2_pickle import read_network_pickle

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "stylegan2").glob("*.pkl"))
FILTER = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64
MODULE_SRC = "# not used"


class Persistent:
    """Pickles like an object of a ``@persistence.persistent_class`` class."""

    def __init__(self, class_name: str, state: dict):
        self.class_name, self.state = class_name, state

    def __reduce__(self):
        meta = dict(
            type="class",
            version=6,
            module_src=MODULE_SRC,
            class_name=self.class_name,
            state=self.state,
        )
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,))


@pytest.fixture
def official(monkeypatch):
    """Fake ``torch_utils.persistence`` and ``dnnlib.util`` so pickles can name their globals."""

    def reconstruct(meta):
        raise AssertionError("only for pickling")

    reconstruct.__module__ = "torch_utils.persistence"
    reconstruct.__qualname__ = "_reconstruct_persistent_obj"
    easy_dict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    for name, attrs in {
        "torch_utils": {},
        "torch_utils.persistence": {"_reconstruct_persistent_obj": reconstruct},
        "dnnlib": {"EasyDict": easy_dict},
        "dnnlib.util": {"EasyDict": easy_dict},
    }.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    return easy_dict


def p(*shape: int, start: float = 0.0) -> torch.nn.Parameter:
    """A frozen parameter (snapshots are saved with requires_grad_(False)) holding 0.01 * i."""
    n = int(np.prod(shape))
    values = (torch.arange(n, dtype=torch.float32) * 0.01 + start).reshape(shape)
    return torch.nn.Parameter(values, requires_grad=False)


def module(name, params=(), buffers=(), modules=(), init_kwargs=None, **attrs) -> Persistent:
    """An official layer's ``__dict__`` as nn.Module keeps it."""
    state = dict(training=False, _parameters=OrderedDict(params), _buffers=OrderedDict(buffers))
    state |= dict(_non_persistent_buffers_set=set(), _modules=OrderedDict(modules))
    for hooks in ("_backward_hooks", "_forward_hooks", "_forward_pre_hooks", "_state_dict_hooks"):
        state[hooks] = OrderedDict()
    if init_kwargs is not None:
        state |= dict(_init_args=(), _init_kwargs=init_kwargs)
    return Persistent(name, state | attrs)


def fc(n_in, n_out, lr=1.0, bias=True, act="linear") -> Persistent:
    params = [("weight", p(n_out, n_in))] + ([("bias", p(n_out))] if bias else [])
    gain = np.float64(lr / np.sqrt(n_in))  # numpy scalars, as in the official code
    return module("FullyConnectedLayer", params, activation=act, weight_gain=gain, bias_gain=lr)


def conv2d(n_in, n_out, k, bias=True) -> Persistent:
    params = [("weight", p(n_out, n_in, k, k)), ("bias", p(n_out) if bias else None)]
    return module("Conv2dLayer", params, [("resample_filter", FILTER)], conv_clamp=256)


def synthesis_layer(n_in, n_out, w_dim, res) -> Persistent:
    params = [("weight", p(n_out, n_in, 3, 3)), ("noise_strength", p()), ("bias", p(n_out))]
    buffers = [("resample_filter", FILTER), ("noise_const", torch.zeros(res, res))]
    return module("SynthesisLayer", params, buffers, [("affine", fc(w_dim, n_in))], conv_clamp=256)


def synthesis_block(n_in, n_out, w_dim, res, img_channels) -> Persistent:
    parts = [("conv0", synthesis_layer(n_in, n_out, w_dim, res))] if n_in else []
    parts.append(("conv1", synthesis_layer(n_out, n_out, w_dim, res)))
    torgb = [("weight", p(img_channels, n_out, 1, 1)), ("bias", p(img_channels))]
    parts.append(("torgb", module("ToRGBLayer", torgb, (), [("affine", fc(w_dim, n_out))])))
    const = [] if n_in else [("const", p(n_out, res, res))]
    return module("SynthesisBlock", const, [("resample_filter", FILTER)], parts, use_fp16=res > 4)


def generator(easy_dict, **changes) -> Persistent:
    """Generator(z_dim=6, w_dim=4, c_dim=2, 8x8 RGB, 2 mapping layers, channel_base=32,
    channel_max=8): 8 channels at 4x4, 4 at 8x8."""
    mapping = module(
        "MappingNetwork",
        buffers=[("w_avg", p(4, start=1.0)), ("scratch", torch.zeros(1))],
        modules=[
            ("embed", fc(2, 4)),
            ("fc0", fc(10, 4, 0.01, act="lrelu")),
            ("fc1", fc(4, 4, 0.01, act="lrelu")),
        ],
        _non_persistent_buffers_set={"scratch"},  # left out, as state_dict() does
        w_avg_beta=0.995,
    )
    synthesis = module(
        "SynthesisNetwork",
        modules=[("b4", synthesis_block(0, 8, 4, 4, 3)), ("b8", synthesis_block(8, 4, 4, 8, 3))],
    )
    kwargs = dict(
        z_dim=6,
        w_dim=4,
        c_dim=2,
        img_resolution=8,
        img_channels=3,
        mapping_kwargs=easy_dict(num_layers=2),
        synthesis_kwargs=easy_dict(channel_base=32, channel_max=8, num_fp16_res=4, conv_clamp=256),
    )
    kwargs.update(changes)
    return module("Generator", (), (), [("synthesis", synthesis), ("mapping", mapping)], kwargs)


def discriminator(easy_dict) -> Persistent:
    """Discriminator(c_dim=2, 8x8 RGB, resnet, channel_base=32, channel_max=8, 2 mapping
    layers): b8 has 4 channels, the epilogue b4 has 8, cmap_dim defaults to 8."""
    b8 = module(
        "DiscriminatorBlock",
        buffers=[("resample_filter", FILTER)],
        modules=[
            ("fromrgb", conv2d(3, 4, 1)),
            ("conv0", conv2d(4, 4, 3)),
            ("conv1", conv2d(4, 8, 3)),
            ("skip", conv2d(4, 8, 1, bias=False)),
        ],
    )
    mapping = module(
        "MappingNetwork",
        modules=[("embed", fc(2, 8)), ("fc0", fc(8, 8, 0.01)), ("fc1", fc(8, 8, 0.01))],
        w_avg_beta=None,
    )
    b4 = module(
        "DiscriminatorEpilogue",
        modules=[
            ("mbstd", module("MinibatchStdLayer", group_size=4, num_channels=1)),
            ("conv", conv2d(9, 8, 3)),
            ("fc", fc(8 * 16, 8)),
            ("out", fc(8, 8)),
        ],
    )
    kwargs = dict(
        c_dim=2,
        img_resolution=8,
        img_channels=3,
        architecture="resnet",
        channel_base=32,
        channel_max=8,
        num_fp16_res=4,
        conv_clamp=256,
        block_kwargs=easy_dict(),
        mapping_kwargs=easy_dict(num_layers=2),
        epilogue_kwargs=easy_dict(mbstd_group_size=4),
    )
    return module("Discriminator", (), (), [("b8", b8), ("mapping", mapping), ("b4", b4)], kwargs)


def snapshot(easy_dict) -> dict:
    """The dict training_loop.py pickles into network-snapshot-XXXXXX.pkl."""
    return dict(
        training_set_kwargs=dict(
            class_name="training.dataset.ImageFolderDataset",
            path="x.zip",
            use_labels=True,
            max_size=10,
            xflip=False,
            resolution=8,
        ),
        G=generator(easy_dict),
        D=discriminator(easy_dict),
        G_ema=generator(easy_dict),
        augment_pipe=module("AugmentPipe", buffers=[("p", torch.tensor(0.25))], xflip=1.0),
    )


def write(path: Path, obj: object) -> Path:
    path.write_bytes(pickle.dumps(obj))
    return path


LAYER = [
    "weight",
    "noise_strength",
    "bias",
    "resample_filter",
    "noise_const",
    "affine.weight",
    "affine.bias",
]
TORGB = ["torgb.weight", "torgb.bias", "torgb.affine.weight", "torgb.affine.bias"]
G_NAMES = (
    ["synthesis.b4.const", "synthesis.b4.resample_filter"]
    + [f"synthesis.b4.conv1.{n}" for n in LAYER]
    + [f"synthesis.b4.{n}" for n in TORGB]
    + ["synthesis.b8.resample_filter"]
    + [f"synthesis.b8.conv{i}.{n}" for i in (0, 1) for n in LAYER]
    + [f"synthesis.b8.{n}" for n in TORGB]
    + ["mapping.w_avg", "mapping.embed.weight", "mapping.embed.bias"]
    + [f"mapping.fc{i}.{n}" for i in (0, 1) for n in ("weight", "bias")]
)
CONFIG = dict(
    resolution=8,
    channels=3,
    num_classes=2,
    z_dim=6,
    w_dim=4,
    mapping_layers=2,
    mapping_lr_mult=0.01,
    mapping_embed_features=0,
    mapping_layer_features=0,
    w_avg_beta=0.995,
    channel_base=32,
    channel_max=8,
    g_architecture="skip",
    conv_clamp=256.0,
    use_noise=True,
    num_fp16_res=4,
    resample_filter=[1, 3, 3, 1],
    activation="lrelu",
    d_architecture="resnet",
    d_channel_base=32,
    d_channel_max=8,
    d_conv_clamp=256.0,
    d_cmap_dim=0,
    d_mapping_layers=2,
    mbstd_group_size=4,
    mbstd_channels=1,
)


def test_round_trip_gives_state_dict_names_shapes_values_and_config(official, tmp_path):
    net = read_network_pickle(write(tmp_path / "network-snapshot-000000.pkl", snapshot(official)))
    assert list(net.G_ema) == G_NAMES
    assert list(net.G) == G_NAMES
    assert net.G_ema["synthesis.b4.const"].shape == (8, 4, 4)
    assert net.G_ema["synthesis.b8.conv0.weight"].shape == (4, 8, 3, 3)  # 8 -> 4 channels
    assert net.G_ema["synthesis.b8.conv0.affine.weight"].shape == (8, 4)  # w_dim 4 -> 8 styles
    assert net.G_ema["synthesis.b8.conv1.noise_const"].shape == (8, 8)
    assert net.G_ema["mapping.fc0.weight"].shape == (4, 10)  # z 6 + embedded label 4
    assert net.G_ema["mapping.w_avg"].tolist() == pytest.approx([1.0, 1.01, 1.02, 1.03])
    assert net.G_ema["synthesis.b4.resample_filter"].sum().item() == pytest.approx(1.0)
    assert all(not t.requires_grad and t.is_contiguous() for t in net.G_ema.values())
    assert list(net.D)[:6] == [
        "b8.resample_filter",
        "b8.fromrgb.weight",
        "b8.fromrgb.bias",
        "b8.fromrgb.resample_filter",
        "b8.conv0.weight",
        "b8.conv0.bias",
    ]
    assert "b8.skip.bias" not in net.D and net.D["b8.skip.weight"].shape == (8, 4, 1, 1)
    assert net.D["b4.conv.weight"].shape == (8, 9, 3, 3)  # 8 channels + 1 minibatch-std
    assert net.D["mapping.fc1.bias"].tolist() == pytest.approx([0.01 * i for i in range(8)])
    assert net.config == CONFIG
    assert net.training_set_kwargs["resolution"] == 8
    assert net.source.endswith("network-snapshot-000000.pkl")


def test_without_stored_init_kwargs_the_tensors_give_the_same_config(official, tmp_path):
    data = snapshot(official)
    for key in ("G_ema", "G", "D"):
        del data[key].state["_init_args"], data[key].state["_init_kwargs"]
    net = read_network_pickle(write(tmp_path / "bare.pkl", data))
    # Only the fp16 blocks are visible: at 8x8 num_fp16_res=4 makes just b8 fp16.
    assert net.config == CONFIG | {"num_fp16_res": 1}


def test_only_g_ema_is_required(official, tmp_path):
    g_ema = generator(official)
    g_ema.class_name = "training.networks.Generator"  # official pickles say just "Generator"
    net = read_network_pickle(write(tmp_path / "g.pkl", {"G_ema": g_ema}))
    assert net.G is None and net.D is None and net.training_set_kwargs is None
    assert "d_architecture" not in net.config and net.config["resolution"] == 8


class RunsCode:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("func", [os.system, builtins.exec], ids=["os.system", "exec"])
def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(official, tmp_path, func):
    marker = tmp_path / "pwned"
    code = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w').close()"
    data = snapshot(official)
    data["G_ema"].state["hidden"] = RunsCode(func, code)
    with pytest.raises(UserError, match=f"refusing to load global '[a-z]+\\.{func.__name__}'"):
        read_network_pickle(write(tmp_path / "evil.pkl", data))
    assert not marker.exists()


def test_module_src_is_never_executed(official, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setattr(sys.modules[__name__], "MODULE_SRC", f"open({str(marker)!r}, 'w')")
    net = read_network_pickle(write(tmp_path / "src.pkl", snapshot(official)))
    assert list(net.G_ema) == G_NAMES
    assert not marker.exists()


def test_persistent_ids_are_refused(tmp_path):
    class WithPid(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage" if isinstance(obj, str) else None

    path = tmp_path / "pid.pkl"
    with open(path, "wb") as f:
        WithPid(f).dump({"G_ema": "x"})
    with pytest.raises(UserError, match="refusing a persistent id"):
        read_network_pickle(path)


def test_tensorflow_era_pickle_says_to_convert_with_legacy_py(monkeypatch, tmp_path):
    network = type("Network", (), {"__module__": "dnnlib.tflib.network"})
    for name in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["dnnlib.tflib.network"].Network = network
    path = write(tmp_path / "stylegan2-ffhq-config-f.pkl", (network(), network(), network()))
    with pytest.raises(UserError, match="TensorFlow-era StyleGAN/StyleGAN2 pickle") as err:
        read_network_pickle(path)
    assert "legacy.py" in str(err.value) and "convert_network_pickle" in str(err.value)


def test_truncated_file_is_reported_as_truncated(official, tmp_path):
    whole = pickle.dumps(snapshot(official))
    path = tmp_path / "half.pkl"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError, match="half.pkl is truncated or not a pickle"):
        read_network_pickle(path)


def test_zip_checkpoint_is_not_a_pickle(tmp_path):
    torch.save({"w": torch.zeros(1)}, tmp_path / "ckpt.pt")
    with pytest.raises(UserError, match="not a pickle .*zip file"):
        read_network_pickle(tmp_path / "ckpt.pt")


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_network_pickle(tmp_path / "nope.pkl")


def test_a_dict_without_networks_is_not_a_network_pickle(tmp_path):
    path = write(tmp_path / "plain.pkl", {"step": 3, "weights": [1.0, 2.0]})
    with pytest.raises(UserError, match=r"not a StyleGAN2-ADA network pickle: it holds step \(int"):
        read_network_pickle(path)


def test_a_generator_without_stylegan2_blocks_is_refused(official, tmp_path):
    sg3 = module("Generator", modules=[("synthesis", module("SynthesisNetwork"))], init_kwargs={})
    with pytest.raises(
        UserError, match="not a StyleGAN2-ADA network pickle: its G_ema Generator has no"
    ):
        read_network_pickle(write(tmp_path / "sg3.pkl", {"G_ema": sg3}))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(init_res=[4, 4]), r"option\(s\) \['init_res'\]"),
        (dict(synthesis_kwargs={"resample_filter": [1, 2, 1]}), r"resample_filter is \[1, 2, 1\]"),
        (dict(mapping_kwargs={"num_layers": 2, "activation": "relu"}), "activation is 'relu'"),
        (dict(img_resolution=16), "resolution=16 but its tensors 8"),
        (dict(synthesis_kwargs={"channel_base": 64, "channel_max": 8}), "channel_base=64"),
    ],
)
def test_unsupported_or_inconsistent_generators_are_refused(official, tmp_path, changes, message):
    data = {"G_ema": generator(official, **changes)}
    with pytest.raises(UserError, match=message):
        read_network_pickle(write(tmp_path / "odd.pkl", data))


# The fixture maker's reference metadata (``NAME_ref.safetensors``) -> our config names.
REF_KEYS = dict(
    img_resolution="resolution",
    img_channels="channels",
    c_dim="num_classes",
    z_dim="z_dim",
    w_dim="w_dim",
    mapping_layers="mapping_layers",
    channel_base="channel_base",
    channel_max="channel_max",
    num_fp16_res="num_fp16_res",
    conv_clamp="conv_clamp",
    G_architecture="g_architecture",
    D_architecture="d_architecture",
)


def _expected(path: Path) -> dict:
    """Config values a fixture's reference metadata and file name state (uncond_rgb_skip...)."""
    name, wanted = path.stem, {}
    wanted["channels"] = 3 if "rgb" in name else 1 if re.search("gr[ae]y", name) else None
    wanted["num_classes"] = 0 if "uncond" in name else None
    wanted["g_architecture"] = next((a for a in ("orig", "skip", "resnet") if a in name), None)
    ref = path.with_name(f"{name}_ref.safetensors")
    if ref.exists():
        with safe_open(ref, "pt") as f:
            meta = f.metadata() or {}
        for key, ours in REF_KEYS.items():
            if key in meta:
                raw = key.endswith("architecture")  # a bare word, the others are JSON
                value = meta[key] if raw else json.loads(meta[key])
                wanted[ours] = 0.0 if key == "conv_clamp" and value is None else value
        epilogue = json.loads(meta.get("D_epilogue_kwargs", "{}"))
        wanted["mbstd_group_size"] = epilogue.get("mbstd_group_size", 4)
        wanted["mbstd_channels"] = epilogue.get("mbstd_num_channels", 1)
    return {k: v for k, v in wanted.items() if v is not None}


@pytest.mark.parametrize("path", FIXTURES or [None], ids=lambda x: x.name if x else "none")
def test_real_pickles_made_by_the_official_code(path):
    if path is None:
        pytest.skip("no tests/fixtures/stylegan2/*.pkl")
    net = read_network_pickle(path)
    cfg, g = net.config, net.G_ema
    assert g["mapping.w_avg"].shape == (cfg["w_dim"],)
    assert g["synthesis.b4.const"].shape[1:] == (4, 4)
    res = cfg["resolution"]
    assert g[f"synthesis.b{res}.torgb.weight"].shape[0] == cfg["channels"]
    assert g[f"synthesis.b{res}.conv1.noise_const"].shape == (res, res)
    assert all(re.fullmatch(r"(mapping|synthesis)(\.\w+)+", k) for k in g)
    if "cond" in path.stem and "uncond" not in path.stem:
        assert cfg["num_classes"] > 0 and "mapping.embed.weight" in g
    if "clamp" in path.stem:
        assert cfg["conv_clamp"] > 0
    if net.D is not None:
        assert "b4.out.weight" in net.D and "b4.conv.weight" in net.D
    assert {k: cfg[k] for k in _expected(path)} == _expected(path)

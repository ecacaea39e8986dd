"""StyleGAN2 networks of the StyleGAN3 release (NVlabs/stylegan3, training/networks_stylegan2.py).

Fixtures in fixtures/stylegan3_release/ were made with the unmodified official code (see its
README): the imported networks must give the official outputs to 1e-4, the release's own defaults
(w_avg_beta 0.998, conv_clamp 256, num_fp16_res 4) must be the ones applied, and a StyleGAN3
(alias-free) pickle must point to ``ganforge import stylegan3``.
"""

from __future__ import annotations

import json
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import ganforge
from ganforge.cli import main
from ganforge.errors import UserError
from ganforge.tools import stylegan2_pickle as sp
from ganforge.tools.stylegan2_pickle import SG3, PersistentRecord, read_network_pickle

FIXTURES = Path(__file__).parent / "fixtures" / "stylegan3_release"
CASES = ["trainpy_rgb32", "cond_gray_clamp16", "converted_resnet16"]
TOL = dict(atol=1e-4, rtol=0)


def _import(case: str, tmp_path: Path):
    run = tmp_path / "run"
    pkl = str(FIXTURES / f"{case}.pkl")
    assert main(["-q", "import", "stylegan2", pkl, "--out", str(run)]) == 0
    return ganforge.load(run)


@pytest.mark.parametrize("case", CASES)
def test_imported_networks_reproduce_the_official_outputs(case, tmp_path):
    ref = load_file(str(FIXTURES / f"{case}_ref.safetensors"))
    g = _import(case, tmp_path)
    model = g.model
    z, c = ref["z"], ref.get("c")
    labels = c.argmax(1) if c is not None else None
    with torch.no_grad():
        out = {
            "ws": model.G_ema.mapping(z, c, truncation_psi=0.7),
            "ws_psi1": model.G_ema.mapping(z, c),
            "img_psi07_const": model.G_ema(z, labels, truncation=0.7, noise_mode="const"),
            "img_psi1_const": model.G_ema(z, labels, noise_mode="const"),
            "img_none": model.G_ema(z, labels, noise_mode="none"),
            "g_img_psi07_const": model.G(z, labels, truncation=0.7, noise_mode="const"),
            "g_img_psi1_const": model.G(z, labels, noise_mode="const"),
            "d_logits": model.D(ref["d_img"], labels),
            "d_logits_g_img": model.D(ref["img_psi1_const"], labels),
        }
    for name, value in out.items():
        expected = ref[name].reshape(value.shape)
        assert torch.allclose(value, expected, **TOL), (name, (value - expected).abs().max())
    images = g.generate(z=z, labels=labels, truncation=0.7, noise_mode="const")
    assert torch.allclose(images, ref["img_psi07_const"].clamp(-1, 1), **TOL)


# case -> (w_avg_beta, conv_clamp, d_conv_clamp, num_fp16_res, fused_modconv_default)
RELEASE_VALUES = {
    "trainpy_rgb32": (0.998, 256.0, 256.0, 4, "inference_only"),  # all this release's defaults
    "cond_gray_clamp16": (0.998, 1.0, 1.0, 2, False),
    "converted_resnet16": (0.995, 0.0, 0.0, 0, True),  # legacy.py's explicit values
}


@pytest.mark.parametrize("case", CASES)
def test_the_release_and_its_defaults_are_read(case):
    net = read_network_pickle(FIXTURES / f"{case}.pkl")
    cfg = net.config
    got = (cfg["w_avg_beta"], cfg["conv_clamp"], cfg["d_conv_clamp"], cfg["num_fp16_res"])
    assert got + (net.recorded["fused_modconv_default"],) == RELEASE_VALUES[case]
    assert net.format == SG3
    with safe_open(FIXTURES / f"{case}_ref.safetensors", "pt") as f:
        meta = f.metadata()
    assert cfg["w_avg_beta"] == json.loads(meta["w_avg_beta_effective"])
    g_kwargs = json.loads(meta["G_init_kwargs"])  # at the top level in this release
    assert (cfg["channel_base"], cfg["channel_max"]) == (g_kwargs["channel_base"], 32)
    assert "synthesis_kwargs" not in g_kwargs


def _unclamped(module: torch.nn.Module) -> torch.nn.Module:
    for layer in module.modules():
        if hasattr(layer, "conv_clamp"):
            layer.conv_clamp = None
    return module


def test_the_default_conv_clamp_of_256_is_applied(tmp_path):
    """trainpy_rgb32 stores no conv_clamp; the release's 256 clips its image's channel 0 (its
    last torgb bias is +300): without the clamp the images move by more than 30."""
    ref = load_file(str(FIXTURES / "trainpy_rgb32_ref.safetensors"))
    G = _import("trainpy_rgb32", tmp_path).model.G_ema
    with torch.no_grad():
        clamped = G(ref["z"], noise_mode="const")
        free = _unclamped(G)(ref["z"], noise_mode="const")
    assert torch.allclose(clamped, ref["img_psi1_const"], **TOL)
    assert (free - ref["img_psi1_const"]).abs().max() > 30


def test_a_stylegan3_pickle_points_to_the_stylegan3_importer(tmp_path, capsys):
    out = tmp_path / "run"
    pkl = str(FIXTURES / "stylegan3_t16.pkl")
    assert main(["-q", "import", "stylegan2", pkl, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "this is a StyleGAN3 network; use ganforge import stylegan3" in err
    assert err.count("\n") == 1 and not out.exists()


def test_numpy_arrays_in_a_stylegan3_pickle_come_back_as_plain_numbers():
    data = sp._load(FIXTURES / "stylegan3_t16.pkl")
    synthesis = data["G_ema"].state["_modules"]["synthesis"]
    size = synthesis.state["_modules"]["input"].state["size"]
    assert isinstance(size, np.ndarray) and size.tolist() == [36, 36]  # 16 + 2 * margin 10


# ----- variants of the fixtures, re-pickled as the official code would write them -------------
@pytest.fixture
def repickle(monkeypatch, tmp_path):
    """Write unpickled records back in the official layout (fake torch_utils and dnnlib)."""

    def reconstruct(meta):
        raise AssertionError("only for pickling")

    reconstruct.__module__ = "torch_utils.persistence"
    reconstruct.__qualname__ = "_reconstruct_persistent_obj"
    easy_dict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    for name, attrs in {
        "torch_utils": {},
        "torch_utils.persistence": {"_reconstruct_persistent_obj": reconstruct},
        "dnnlib": {},
        "dnnlib.util": {"EasyDict": easy_dict},
    }.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, PersistentRecord):
                meta = dict(type="class", version=6, module_src="# omitted")
                return reconstruct, (meta | dict(class_name=obj.class_name, state=obj.state),)
            if isinstance(obj, sp._EasyDict):
                return easy_dict, (dict(obj),)
            return NotImplemented

    def write(data: dict, name: str = "variant.pkl") -> Path:
        path = tmp_path / name
        with open(path, "wb") as f:
            Pickler(f, protocol=4).dump(data)
        return path

    return write


def _fixture(case: str) -> dict:
    return sp._load(FIXTURES / f"{case}.pkl")


@pytest.mark.parametrize("case", ["trainpy_rgb32", "cond_gray_clamp16"])
def test_without_stored_init_kwargs_the_layers_give_the_same_config(case, repickle):
    data = _fixture(case)
    for key in ("G", "D", "G_ema"):
        del data[key].state["_init_args"], data[key].state["_init_kwargs"]
    net = read_network_pickle(repickle(data))
    wanted = read_network_pickle(FIXTURES / f"{case}.pkl").config
    # only the blocks that run in fp16 are visible: at 32 px num_fp16_res=4 means 8, 16, 32
    fp16 = {"trainpy_rgb32": 3, "cond_gray_clamp16": 2}[case]
    assert net.config == wanted | {"num_fp16_res": fp16}
    assert net.format == SG3


def test_a_default_the_layers_contradict_is_refused(repickle):
    data = _fixture("cond_gray_clamp16")
    del data["D"].state["_init_kwargs"]["conv_clamp"]  # the release's default is then 256
    with pytest.raises(
        UserError, match=r"D init kwargs give d_conv_clamp=256.0 but its layers 1.0$"
    ):
        read_network_pickle(repickle(data))


def test_stylegan2_ada_nesting_in_a_stylegan3_release_generator_is_refused(repickle):
    data = _fixture("trainpy_rgb32")
    data["G_ema"].state["_init_kwargs"]["synthesis_kwargs"] = {"channel_base": 512}
    with pytest.raises(UserError, match=r"G_ema has option\(s\) \['synthesis_kwargs'\]"):
        read_network_pickle(repickle(data))


def test_object_arrays_are_refused(repickle):
    data = _fixture("converted_resnet16")
    data["G_ema"].state["labels"] = np.array(["a", 1], dtype=object)
    with pytest.raises(UserError, match="numpy array that is not plain numbers"):
        read_network_pickle(repickle(data))

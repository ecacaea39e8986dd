"""The FID Inception-v3: architecture and parameter names against the published weight file, the
TF1 resize by hand, the loader's refusals, and (when torch-fidelity is installed) agreement with
the reference implementation given the same random weights.

The real weights are never needed: a seeded, well-scaled random state dict stands in for them."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import types

import pytest
import torch

from ganforge.errors import UserError
from ganforge.features import inception
from ganforge.features.inception import (
    ENV_VAR,
    WEIGHTS_SHA256,
    WEIGHTS_URL,
    FIDInceptionV3,
    load_inception,
    quantize_to_pixels,
    resize_tf1,
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Inception at 299x299 is about 6 GFLOP an image; on two cores shared with other work an
    # OpenMP team of two waits for its second core at every op (~20x slower here), one thread not.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights that keep activations O(1) through all 94 conv layers (He-scaled convs,
    BatchNorm near identity), so a comparison of outputs compares real numbers, not zeros."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, ref in FIDInceptionV3().state_dict().items():
        shape = ref.shape
        if key.endswith("conv.weight"):
            value = torch.randn(shape, generator=gen) * (2.0 / ref[0].numel()) ** 0.5
        elif key.endswith(("bn.weight", "running_var")):
            value = 0.5 + torch.rand(shape, generator=gen)
        elif key.endswith(("bn.bias", "running_mean", "fc.bias")):
            value = 0.1 * torch.randn(shape, generator=gen)
        elif key == "fc.weight":
            value = torch.randn(shape, generator=gen) / shape[1] ** 0.5
        else:  # num_batches_tracked
            value = ref.clone()
        state[key] = value
    return state


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return random_state()


@pytest.fixture(scope="module")
def net(state) -> FIDInceptionV3:
    model = FIDInceptionV3()
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def weights_file(state, tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "weights.pth"
    torch.save(state, path)
    return path


def uint8_images(n: int, channels: int, size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), generator=gen, dtype=torch.uint8)


def as_model_input(u8: torch.Tensor) -> torch.Tensor:
    """uint8 -> [-1, 1] exactly as GANForge's evaluation feeds images to a feature network."""
    return u8.float().div(127.5).sub(1.0)


# --- architecture ----------------------------------------------------------------------------

# The published file's keys, written out from the reference sources: torchvision's Inception3
# names as pytorch-fid's fid_inception_v3 and torch-fidelity's FeatureExtractorInceptionV3 build
# them (aux_logits off).  Every ConvBN holds conv.weight and bn.{weight, bias, running_mean,
# running_var, num_batches_tracked}; pytorch-fid issue #34 shows the file has the counters.
STEM = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
BRANCHES = {
    "A": "branch1x1 branch5x5_1 branch5x5_2 branch3x3dbl_1 branch3x3dbl_2 branch3x3dbl_3 "
    "branch_pool",
    "B": "branch3x3 branch3x3dbl_1 branch3x3dbl_2 branch3x3dbl_3",
    "C": "branch1x1 branch7x7_1 branch7x7_2 branch7x7_3 branch7x7dbl_1 branch7x7dbl_2 "
    "branch7x7dbl_3 branch7x7dbl_4 branch7x7dbl_5 branch_pool",
    "D": "branch3x3_1 branch3x3_2 branch7x7x3_1 branch7x7x3_2 branch7x7x3_3 branch7x7x3_4",
    "E": "branch1x1 branch3x3_1 branch3x3_2a branch3x3_2b branch3x3dbl_1 branch3x3dbl_2 "
    "branch3x3dbl_3a branch3x3dbl_3b branch_pool",
}
MIXED = {
    "Mixed_5b": "A", "Mixed_5c": "A", "Mixed_5d": "A", "Mixed_6a": "B", "Mixed_6b": "C",
    "Mixed_6c": "C", "Mixed_6d": "C", "Mixed_6e": "C", "Mixed_7a": "D", "Mixed_7b": "E",
    "Mixed_7c": "E",
}  # fmt: skip
CONV_BN = ["conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"]


def published_keys() -> set[str]:
    layers = STEM + [f"{m}.{b}" for m, kind in MIXED.items() for b in BRANCHES[kind].split()]
    keys = {f"{layer}.{t}" for layer in layers for t in CONV_BN + ["bn.num_batches_tracked"]}
    return keys | {"fc.weight", "fc.bias"}


def test_state_dict_keys_are_the_published_files():
    keys = set(FIDInceptionV3().state_dict())
    assert len(published_keys()) == 94 * 6 + 2  # 94 conv+BN layers and the classifier
    assert keys == published_keys()


def test_parameter_shapes_by_hand():
    sd = FIDInceptionV3().state_dict()
    assert sd["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert sd["Mixed_5b.branch_pool.conv.weight"].shape == (32, 192, 1, 1)
    assert sd["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)
    assert sd["Mixed_6e.branch7x7dbl_2.conv.weight"].shape == (192, 192, 7, 1)
    assert sd["Mixed_7b.branch3x3dbl_1.conv.weight"].shape == (448, 1280, 1, 1)
    assert sd["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert sd["fc.weight"].shape == (1008, 2048)
    floats = sum(v.numel() for v in sd.values() if v.is_floating_point())
    # 95,542,320 bytes of float32 payload: just under the published file's 95,628,359 bytes
    assert floats == 23_885_392
    assert 0 < inception.WEIGHTS_BYTES - 4 * floats < 100_000


def test_output_shapes_gray_28_and_rgb_64(net):
    with torch.no_grad():
        gray = net(as_model_input(uint8_images(2, 1, 28, seed=1)))
        rgb = net(as_model_input(uint8_images(2, 3, 64, seed=2)))
    for out in (gray, rgb):
        assert out["pool"].shape == (2, 2048)
        assert out["logits"].shape == (2, 1008)
        assert out["logits_unbiased"].shape == (2, 1008)
        assert torch.isfinite(out["pool"]).all()
        assert out["pool"].min() >= 0  # average of ReLU outputs
        assert out["pool"].std() > 1e-2  # the random weights give real signal, not zeros
        torch.testing.assert_close(out["logits"], out["logits_unbiased"] + net.fc.bias)
    # gray is the same image repeated on three channels
    u8 = uint8_images(1, 1, 28, seed=3)
    with torch.no_grad():
        a = net.features(as_model_input(u8))
        b = net.features(as_model_input(u8.repeat(1, 3, 1, 1)))
    assert torch.equal(a, b)


def test_train_mode_changes_nothing(net, state):
    x = as_model_input(uint8_images(1, 3, 32, seed=4))
    with torch.no_grad():
        before = net.features(x)
        net.train()
        after = net.features(x)
        net.eval()
    assert torch.equal(before, after)
    assert torch.equal(
        net.Mixed_5b.branch1x1.bn.running_mean, state["Mixed_5b.branch1x1.bn.running_mean"]
    )


def test_bad_input_shape_is_refused(net):
    with pytest.raises(ValueError, match=r"\[N, 1 or 3, H, W\]"):
        net(torch.zeros(2, 4, 28, 28))


# --- preprocessing ---------------------------------------------------------------------------


def test_quantize_recovers_every_uint8_value():
    u8 = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(quantize_to_pixels(as_model_input(u8)), u8.float())


def test_resize_tf1_by_hand():
    # TF1 samples output pixel i at input i * in/out = i/2 (no half-pixel shift) and clamps the
    # right/bottom neighbour to the border, so the last row and column repeat.
    x = torch.tensor([[0.0, 10.0], [20.0, 30.0]]).view(1, 1, 2, 2)
    expected = torch.tensor(
        [[0, 5, 10, 10], [10, 15, 20, 20], [20, 25, 30, 30], [20, 25, 30, 30]], dtype=torch.float32
    )
    assert torch.equal(resize_tf1(x, 4)[0, 0], expected)
    # downscaling 4 -> 2 samples positions 0 and 2: plain subsampling
    y = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(resize_tf1(y, 2)[0, 0], torch.tensor([[0.0, 2.0], [8.0, 10.0]]))


def test_preprocess_range(net):
    x = net.preprocess(torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2))
    assert x.shape == (1, 3, 299, 299)
    assert x.min() == -1.0 and x.max() == 127 / 128  # (0 - 128)/128 and (255 - 128)/128


# --- loading ---------------------------------------------------------------------------------


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_missing_weights_say_where_to_get_them(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(UserError) as err:
        load_inception()
    text = one_line(err)
    for part in (
        WEIGHTS_URL,
        WEIGHTS_SHA256,
        inception.WEIGHTS_FILE,
        "--inception-weights",
        ENV_VAR,
        "--features domain",
    ):
        assert part in text


def test_missing_file_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope.pth"))
    with pytest.raises(UserError) as err:
        load_inception()
    text = one_line(err)
    assert "nope.pth" in text and WEIGHTS_URL in text and "domain" in text


def test_wrong_file_is_refused_by_hash(tmp_path):
    path = tmp_path / "other.pth"
    path.write_bytes(b"not the inception weights")
    found = hashlib.sha256(b"not the inception weights").hexdigest()
    with pytest.raises(UserError) as err:
        load_inception(path)
    text = one_line(err)
    assert f"expected sha256 {WEIGHTS_SHA256}" in text and f"found sha256 {found}" in text


def test_loads_a_known_file_with_weights_only(monkeypatch, weights_file, state):
    digest = inception.file_sha256(weights_file)
    monkeypatch.setattr(inception, "KNOWN_WEIGHTS", {digest: "test weights"})
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    monkeypatch.setenv(ENV_VAR, str(weights_file))
    loaded = load_inception()  # from the environment variable
    assert calls == [True]
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key


class NotATensor:
    pass


def test_a_file_holding_objects_is_refused_not_run(monkeypatch, tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"fc.weight": NotATensor()}, path)
    monkeypatch.setattr(inception, "KNOWN_WEIGHTS", {inception.file_sha256(path): "test"})
    with pytest.raises(UserError, match="cannot read") as err:
        load_inception(path)
    one_line(err)


def test_a_file_that_does_not_fit_is_one_line(monkeypatch, tmp_path, state):
    path = tmp_path / "partial.pth"
    partial = {k: v for k, v in state.items() if not k.startswith("Mixed_7c")}
    torch.save(partial, path)
    monkeypatch.setattr(inception, "KNOWN_WEIGHTS", {inception.file_sha256(path): "test"})
    with pytest.raises(UserError, match="missing tensors Mixed_7c") as err:
        load_inception(path)
    one_line(err)


def test_files_without_batchnorm_counters_load(monkeypatch, tmp_path, state):
    # a file converted straight from the TF graph (torch-fidelity's converter) has no counters
    path = tmp_path / "converted.pth"
    torch.save({k: v for k, v in state.items() if "num_batches_tracked" not in k}, path)
    monkeypatch.setattr(inception, "KNOWN_WEIGHTS", {inception.file_sha256(path): "test"})
    assert torch.equal(load_inception(path).fc.weight, state["fc.weight"])


# --- agreement with the reference ------------------------------------------------------------


@pytest.fixture
def torch_fidelity_inception():
    """torch-fidelity's Inception module, imported without running the package ``__init__``
    (which imports torchvision, not installed here): a bare package object whose ``__path__``
    is the installed folder lets ``torch_fidelity.feature_extractor_inceptionv3`` and the three
    modules it needs (feature_extractor_base, helpers, interpolate_compat_tensorflow) import."""
    stub = "torch_fidelity" not in sys.modules
    if stub:
        spec = importlib.util.find_spec("torch_fidelity")  # finds, does not execute
        if spec is None or not spec.submodule_search_locations:
            pytest.skip("torch-fidelity is not installed (pip install --no-deps torch-fidelity)")
        package = types.ModuleType("torch_fidelity")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["torch_fidelity"] = package
    yield pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    if not stub:
        return
    for name in [
        n for n in sys.modules if n == "torch_fidelity" or n.startswith("torch_fidelity.")
    ]:
        del sys.modules[name]


def test_agrees_with_torch_fidelity(torch_fidelity_inception, net, weights_file):
    ref = torch_fidelity_inception.FeatureExtractorInceptionV3(
        "inception-v3-compat",
        ["2048", "logits_unbiased", "logits"],
        feature_extractor_weights_path=str(weights_file),
    )
    batches = [
        uint8_images(2, 1, 28, seed=5),
        uint8_images(1, 3, 64, seed=6),
        uint8_images(1, 3, 299, seed=7),
    ]
    worst = 0.0
    with torch.no_grad():
        for u8 in batches:
            ours = net(as_model_input(u8))
            pool, unbiased, logits = ref(u8.expand(-1, 3, -1, -1).contiguous())
            assert pool.std() > 1e-2 and logits.std() > 1e-2
            for a, b in (
                (ours["pool"], pool),
                (ours["logits_unbiased"], unbiased),
                (ours["logits"], logits),
            ):
                worst = max(worst, (a - b).abs().max().item())
    assert worst <= 1e-4


def test_resize_matches_torch_fidelity_bit_for_bit(torch_fidelity_inception, net):
    compat = importlib.import_module("torch_fidelity.interpolate_compat_tensorflow")
    for size in (28, 64, 300):
        u8 = uint8_images(1, 3, size, seed=size)
        theirs = compat.interpolate_bilinear_2d_like_tensorflow1x(
            u8.float(), size=(299, 299), align_corners=False
        )
        assert torch.equal(net.preprocess(as_model_input(u8)), (theirs - 128) / 128)

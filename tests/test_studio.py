"""ganforge studio: the run listing and its confinement to the given folders, every field
checked with the CLI's one-line message, uploads refused by size and by pixel count before
decoding, concurrent requests served, and the page driven in headless Chromium (generate,
a pix2pix upload, a bad value).

The server runs on the loopback address from a thread (`ganforge.studio.running`); the
requests are plain urllib, so the tests need nothing beyond the studio extra and Selenium."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("starlette", reason="the studio extra is not installed")
pytest.importorskip("uvicorn", reason="the studio extra is not installed")
pytest.importorskip("multipart", reason="the studio extra is not installed")

from conftest import write_ab  # noqa: E402

import ganforge  # noqa: E402
from ganforge.cli import main  # noqa: E402
from ganforge.studio import running  # noqa: E402

QUIET = {"train.progress": False, "train.tensorboard": False}


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    """Two tiny runs under one root (dcgan, logged every step; pix2pix), a run outside it with
    a symbolic link to it from inside, and an evaluation report in the dcgan run."""
    base = tmp_path_factory.mktemp("studio")
    root = base / "runs"
    dcgan = ganforge.train(
        "dcgan",
        preset="tiny",
        dataset="digits",
        steps=2,
        batch_size=8,
        out=root / "dcgan",
        overrides={**QUIET, "train.log_every": 1, "train.sample_every": 2},
    )
    report = {
        "features": {"name": "domain"},
        "generated": {"n": 500},
        "real": {"source": "digits test split"},
        "metrics": {"fid": 12.5, "kid": 0.25},
        "real_vs_real": {"splits": "train vs test", "metrics": {"fid": 0.5, "kid": 0.0}},
    }
    (dcgan / "eval.json").write_text(json.dumps(report))
    write_ab(base / "ab", {"train": 6, "test": 4})
    ganforge.train(
        "pix2pix",
        preset="tiny",
        dataset=f"pix2pix:{base / 'ab'}",
        steps=2,
        out=root / "edges" / "pix2pix",
        overrides=QUIET,
    )
    outside = base / "elsewhere"
    outside.mkdir()
    shutil.copytree(dcgan, outside / "secret")
    (root / "link-out").symlink_to(outside / "secret", target_is_directory=True)
    return {"root": root, "dcgan": dcgan, "secret": outside / "secret", "base": base}


@pytest.fixture(scope="module")
def studio(roots):
    with running([roots["root"]]) as url:
        yield url


def request(url: str, path: str, fields: dict | None = None, files: dict | None = None):
    """(status, JSON body) of a GET (no fields) or POST (JSON, or a form with ``files``)."""
    headers, data = {}, None
    if files is not None:
        boundary = uuid.uuid4().hex
        parts = []
        for key, value in (fields or {}).items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
            )
        body = "".join(parts).encode()
        for key, (name, payload) in files.items():
            body += (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; '
                    f'filename="{name}"\r\nContent-Type: image/png\r\n\r\n'
                ).encode()
                + payload
                + b"\r\n"
            )
        data = body + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    elif fields is not None:
        data = json.dumps(fields).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def run_ids(url: str) -> dict[str, str]:
    status, body = request(url, "/api/runs")
    assert status == 200
    return {run["name"]: run["id"] for run in body["runs"]}


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def decoded(data_url: str) -> Image.Image:
    import base64

    head, payload = data_url.split(",", 1)
    assert head == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(payload)))


# ----- runs and paths -----------------------------------------------------------------------
def test_runs_are_listed_with_family_figures_and_curves(studio):
    _, body = request(studio, "/api/runs")
    runs = {run["name"]: run for run in body["runs"]}
    assert set(runs) == {"dcgan", "pix2pix"}  # the link out of the root is not listed
    dcgan = runs["dcgan"]
    assert (dcgan["id"], dcgan["family"], dcgan["preset"], dcgan["data"]) == (
        "0/dcgan",
        "dcgan",
        "tiny",
        "digits",
    )
    assert dcgan["steps"] == 2 and runs["pix2pix"]["id"] == "0/edges/pix2pix"
    assert dcgan["evaluation"]["metrics"] == {"fid": 12.5, "kid": 0.25}
    assert dcgan["evaluation"]["real_vs_real"]["metrics"]["fid"] == 0.5
    _, info = request(studio, "/api/run?run=0/dcgan")
    assert [p[0] for p in info["curves"]["G/loss"]] == [1, 2]  # logged every step
    with urllib.request.urlopen(f"{studio}/api/run/sample.png?run=0/dcgan") as response:
        assert Image.open(io.BytesIO(response.read())).format == "PNG"


@pytest.mark.parametrize(
    "run_id", ["../dcgan", "0/../runs/dcgan", "/etc", "0//etc", "0/link-out", "1/dcgan", "dcgan"]
)
def test_nothing_outside_the_listed_runs_can_be_named(studio, roots, run_id):
    quoted = urllib.parse.quote(run_id, safe="")
    status, body = request(studio, f"/api/run?run={quoted}")
    assert status == 400 and body["error"].startswith("unknown run")
    status, body = request(studio, "/api/generate", {"run": run_id, "n": 1})
    assert status == 400 and "\n" not in body["error"]
    req = f"{studio}/api/run/sample.png?run={quoted}"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 400


def test_a_run_whose_folder_is_swapped_for_a_link_out_is_refused(roots, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(roots["dcgan"], root / "a")
    with running([root]) as url:
        assert run_ids(url) == {"a": "0/a"}
        shutil.rmtree(root / "a")
        (root / "a").symlink_to(roots["secret"], target_is_directory=True)
        status, body = request(url, "/api/run?run=0/a")
        assert status == 400 and body["error"].startswith("unknown run '0/a'")


# ----- fields ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "argv"),
    [
        ({"n": "0"}, ["--n", "0"]),
        ({"n": "two"}, ["--n", "two"]),
        ({"seed": "-3"}, ["--seed", "-3"]),
        ({"truncation": "1.5"}, ["--truncation", "1.5"]),
        ({"truncation": "lots"}, ["--truncation", "lots"]),
        ({"noise_mode": "loud"}, ["--noise-mode", "loud"]),
        ({"label": "3"}, ["--class", "3"]),
    ],
)
def test_a_bad_field_gets_the_clis_one_line_message(studio, roots, capsys, fields, argv):
    status, body = request(studio, "/api/generate", {"run": "0/dcgan", **fields})
    try:  # argparse's checks exit; the API's return 2
        code = main(["sample", str(roots["dcgan"]), *argv, "--out", str(roots["base"] / "x.png")])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 400 and code == 2
    assert body["error"] in err  # "ganforge sample: error: argument --n: ..." and the like


def test_counts_are_capped_and_seed_ranges_counted_before_they_are_built(studio):
    status, body = request(studio, "/api/generate", {"run": "0/dcgan", "n": 65})
    assert status == 400 and body["error"].startswith("--n 65 is more than the studio makes")
    fields = {"run": "0/dcgan", "seeds": "0-4000000000", "frames": "8"}
    status, body = request(studio, "/api/walk", fields)
    assert status == 400 and "names 4,000,000,001 seeds" in body["error"]
    status, body = request(studio, "/api/walk", {**fields, "seeds": "1,2", "frames": 33})
    assert status == 400 and "--frames 33" in body["error"]


def test_generate_gives_the_grid_and_a_zip_of_the_images(studio):
    status, body = request(studio, "/api/generate", {"run": "0/dcgan", "n": 4, "seed": 7})
    assert status == 200 and body["count"] == 4
    # 4 images of 28 px in a 2 x 2 grid with 2 px borders, enlarged 2x as `sample` does
    assert decoded(body["grid"]).size == ((2 * 30 + 2) * 2, (2 * 30 + 2) * 2)
    import base64
    import zipfile

    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(body["zip"].split(",", 1)[1])))
    assert sorted(archive.namelist())[:2] == ["grid.png", "image-000.png"]
    assert len(archive.namelist()) == 5
    again = request(studio, "/api/generate", {"run": "0/dcgan", "n": 4, "seed": 7})[1]
    assert again["grid"] == body["grid"]  # a seed is the same images every time


def test_explore_walks_and_refuses_what_the_family_cannot(studio):
    fields = {"run": "0/dcgan", "seeds": "1,2,3", "frames": 6}
    status, body = request(studio, "/api/walk", fields)
    assert status == 200 and body["frames"] == 6
    assert decoded(body["strip"]).size[0] == (6 * 30 + 2) * 2  # six frames in a row
    status, body = request(
        studio, "/api/mix", {"run": "0/dcgan", "rows": "1", "cols": "2", "layers": "0"}
    )
    assert status == 400 and "needs a style-based generator" in body["error"]
    status, body = request(studio, "/api/sweep", {"run": "0/dcgan"})
    assert status == 400 and "--vary needs a model with latent codes" in body["error"]


# ----- images in ------------------------------------------------------------------------------
def test_a_pix2pix_upload_is_translated_at_its_size_with_the_apis_notes(studio):
    sketch = png_bytes(np.zeros((13, 21), np.uint8))
    status, body = request(
        studio, "/api/image", {"run": "0/edges/pix2pix"}, {"image": ("sketch.png", sketch)}
    )
    assert status == 200, body
    assert decoded(body["output"]).size == (21, 13)
    assert body["notes"] == [
        "note: 'sketch.png' is 21x13; padded to 32x16 for the network, cropped back"
    ]
    status, body = request(studio, "/api/image", {"run": "0/edges/pix2pix", "test": "3"}, {})
    assert status == 200 and decoded(body["target"]).size == (16, 16)
    status, body = request(studio, "/api/image", {"run": "0/edges/pix2pix", "test": "4"}, {})
    assert status == 400 and body["error"] == "test item 4: choose one from 0 to 3"
    status, body = request(
        studio, "/api/image", {"run": "0/edges/pix2pix", "direction": "a2b", "test": "0"}, {}
    )
    assert status == 400 and "translates one way only" in body["error"]


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height gray pixels, with a few bytes of data: what
    a decompression bomb looks like until it is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\0" * (width + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def test_uploads_are_refused_by_size_pixels_and_content(studio):
    run = {"run": "0/edges/pix2pix"}
    status, body = request(studio, "/api/image", run, {"image": ("b.png", bomb_png(5000, 5000))})
    assert status == 400
    assert body["error"] == (
        "image 'b.png' is 5000x5000 pixels; the studio takes images of at most "
        "16,777,216 pixels (4096x4096)"
    )
    bomb = bomb_png(30000, 30000)  # past Pillow's own limit: it refuses to open it
    status, body = request(studio, "/api/image", run, {"image": ("bomb.png", bomb)})
    assert status == 400
    assert body["error"].startswith("image 'bomb.png' claims more pixels than Pillow opens")
    big = os.urandom(5 * 2**20)
    status, body = request(studio, "/api/image", run, {"image": ("big.png", big)})
    assert status == 400 and "larger than the studio takes" in body["error"]
    status, body = request(studio, "/api/image", run, {"image": ("notes.png", b"plain text")})
    assert status == 400 and body["error"].startswith("cannot read image 'notes.png'")
    wide = png_bytes(np.zeros((8, 1500), np.uint8))
    status, body = request(studio, "/api/image", run, {"image": ("wide.png", wide)})
    assert status == 400 and "at most 1024 px a side" in body["error"]


# ----- load -----------------------------------------------------------------------------------
def test_sixteen_concurrent_requests_are_all_served(studio):
    """A bounded load test on the loopback address: 16 requests at once (generate, the run
    list, a walk and a translation), started together; every one succeeds."""
    start = threading.Barrier(16)
    sketch = png_bytes(np.full((16, 16), 200, np.uint8))

    def one(k: int):
        start.wait(timeout=60)
        if k % 4 == 0:
            return request(studio, "/api/runs")
        if k % 4 == 1:
            return request(studio, "/api/generate", {"run": "0/dcgan", "n": 16, "seed": k})
        if k % 4 == 2:
            return request(studio, "/api/walk", {"run": "0/dcgan", "seeds": "1,2", "frames": 8})
        return request(
            studio, "/api/image", {"run": "0/edges/pix2pix"}, {"image": ("s.png", sketch)}
        )

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    assert [status for status, _ in results] == [200] * 16
    grids = [body["grid"] for status, body in results[1::4]]
    assert len(set(grids)) == 4  # four seeds, four different grids


# ----- the command ----------------------------------------------------------------------------
def test_the_command_prints_its_address_and_warns_off_loopback(roots, monkeypatch, capsys):
    import socket

    import uvicorn

    import ganforge.studio as studio_module

    served = {}

    def bind(host, port):
        served["asked"] = (host, port)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        return sock

    monkeypatch.setattr(studio_module, "_bind", bind)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    assert main(["studio", str(roots["root"]), "--port", "0"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("GANForge studio at http://127.0.0.1:") and err == ""
    assert served["asked"] == ("127.0.0.1", 0)
    assert main(["studio", str(roots["root"]), "--host", "0.0.0.0", "--port", "0"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("GANForge studio at http://0.0.0.0:")
    assert err.startswith("warning: the studio listens on 0.0.0.0: anyone who can reach")


def test_the_command_without_its_extra_or_runs_says_so_in_one_line(roots, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_starlette(name, *args, **kwargs):
        if name.split(".")[0] == "starlette":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    assert main(["studio", str(roots["base"] / "nowhere")]) == 2
    assert "runs folder" in capsys.readouterr().err
    monkeypatch.setattr(builtins, "__import__", no_starlette)
    assert main(["studio", str(roots["root"])]) == 2
    assert capsys.readouterr().err == (
        "ganforge: error: the studio needs its extra: pip install 'ganforge[studio]'\n"
    )


# ----- in a real browser ----------------------------------------------------------------------
def chromium():
    """Selenium's Chrome driver on Debian's chromium and chromium-driver; without them the
    browser tests skip, except under CI (CI=true), where they fail."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    reason = None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        reason = "selenium is not installed (pip install selenium)"
    if reason is None and not (binary and driver):
        reason = "Debian's chromium and chromium-driver are not installed"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI runs the browser tests (.ci/run installs them)")
        pytest.skip(reason)
    options = Options()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@pytest.fixture(scope="module")
def page(studio):
    driver = chromium()
    try:
        driver.get(studio)
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _choose(driver, run_id: str, view: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select

    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'#run option[value="{run_id}"]'))
    Select(driver.find_element(By.ID, "run")).select_by_value(run_id)
    # the page has asked the server what the run can do
    _wait(
        driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-model") == run_id
    )
    tab = (By.CSS_SELECTOR, f'#tabs button[data-view="{view}"]')
    _wait(driver, EC.element_to_be_clickable(tab)).click()
    _wait(driver, EC.visibility_of_element_located((By.ID, f"view-{view}")))


def _loaded_image(driver, element_id: str):
    from selenium.webdriver.common.by import By

    def ready(d):
        img = d.find_element(By.ID, element_id)
        done = d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
        return img if img.is_displayed() and done else False

    return _wait(driver, ready)


def test_browser_generates_from_a_tiny_run_and_finds_the_image(page, studio):
    from selenium.webdriver.common.by import By

    _choose(page, "0/dcgan", "generate")
    page.find_element(By.ID, "gen-n").clear()
    page.find_element(By.ID, "gen-n").send_keys("9")
    page.find_element(By.ID, "gen-go").click()
    img = _loaded_image(page, "gen-grid")
    assert img.get_attribute("src").startswith("data:image/png;base64,")
    # 9 images of 28 px, 3 a row, borders of 2 px, enlarged 2x
    assert page.execute_script("return arguments[0].naturalWidth", img) == (3 * 30 + 2) * 2
    link = page.find_element(By.ID, "gen-download")
    assert link.is_displayed() and link.get_attribute("href").startswith("data:application/zip")
    loaded = page.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(name.startswith(studio) for name in loaded)  # nothing from elsewhere


def test_browser_uploads_an_image_to_pix2pix_and_finds_the_output(page, tmp_path):
    from selenium.webdriver.common.by import By

    sketch = tmp_path / "sketch.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(sketch)
    _choose(page, "0/edges/pix2pix", "image")
    page.find_element(By.ID, "img-file").send_keys(str(sketch))
    page.find_element(By.ID, "img-go").click()
    img = _loaded_image(page, "img-output")
    assert page.execute_script("return arguments[0].naturalWidth", img) == 16
    assert page.find_element(By.ID, "error").is_displayed() is False


def test_browser_shows_the_message_of_a_bad_value(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    _choose(page, "0/dcgan", "generate")
    field = page.find_element(By.ID, "gen-n")
    field.clear()
    field.send_keys("0")
    page.find_element(By.ID, "gen-go").click()
    error = _wait(page, EC.visibility_of_element_located((By.ID, "error")))
    assert error.text == "argument --n: must be at least 1, got 0"


# ----- published networks ---------------------------------------------------------------------
def test_an_imported_network_is_listed_and_generates_like_load(tmp_path):
    """A run made by `ganforge import` (an official StyleGAN2-ADA pickle, the import tests'
    fixture) is listed as imported, and its generate answer is the images `ganforge.load` makes
    for the same seed and truncation."""
    fixture = Path(__file__).parent / "fixtures" / "stylegan2" / "uncond_orig.pkl"
    if not fixture.exists():
        pytest.skip("no tests/fixtures/stylegan2/uncond_orig.pkl")
    root = tmp_path / "published"
    assert main(["-q", "import", "stylegan2", str(fixture), "--out", str(root / "ffhq")]) == 0
    with running([root]) as url:
        _, body = request(url, "/api/runs")
        (run,) = body["runs"]
        assert (run["id"], run["family"], run["kind"]) == ("0/ffhq", "stylegan2", "imported")
        fields = {"run": "0/ffhq", "n": 2, "seed": 3, "truncation": 0.7, "noise_mode": "const"}
        status, answer = request(url, "/api/generate", fields)
    assert status == 200 and answer["count"] == 2
    import base64
    import zipfile

    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(answer["zip"].split(",", 1)[1])))
    first = np.asarray(Image.open(io.BytesIO(archive.read("image-000.png"))))
    expected = ganforge.load(root / "ffhq").generate(2, seed=3, truncation=0.7, noise_mode="const")
    pixels = ((expected[0].clamp(-1, 1) + 1) * 127.5).round().to(dtype=torch.uint8)
    pixels = pixels.permute(1, 2, 0).squeeze(-1).numpy()
    assert first.shape == pixels.shape
    assert np.abs(first.astype(int) - pixels.astype(int)).max() <= 1

"""Screenshots of each studio view, taken in headless Chromium as the browser tests drive it.

    .venv/bin/python scripts/studio_screens.py [RUNS_DIR ...] [--out docs/images/studio]

RUNS_DIR defaults to benchmarks/runs (the quality benchmark's runs); tiny stylegan2 and
infogan runs are trained into a temporary folder beside them (a few steps, seconds) so the
Explore view has style mixing and a code sweep to show.  Needs the studio extra, selenium and
Debian's chromium and chromium-driver.  Prints the files it wrote as JSON."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

import ganforge
from ganforge.studio import running

QUIET = {"train.progress": False, "train.tensorboard": False}


def browser() -> webdriver.Chrome:
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1360,1000",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def tiny_runs(folder: Path) -> None:
    for family in ("stylegan2", "infogan"):
        ganforge.train(
            family,
            preset="tiny",
            dataset="digits",
            steps=4,
            batch_size=8,
            out=folder / f"{family}-tiny",
            overrides=QUIET,
        )


class Page:
    def __init__(self, driver: webdriver.Chrome, url: str, out: Path) -> None:
        self.d, self.url, self.out, self.written = driver, url, out, []

    def wait(self, condition, timeout: float = 300):
        return WebDriverWait(self.d, timeout).until(condition)

    def run_id(self, name: str) -> str:
        options = self.d.find_elements(By.CSS_SELECTOR, "#run option")
        for option in options:
            if option.text.startswith(f"{name} "):
                return option.get_attribute("value")
        raise SystemExit(f"no run named {name!r} under the given folders")

    def choose(self, name: str, view: str) -> None:
        run_id = self.run_id(name)
        Select(self.d.find_element(By.ID, "run")).select_by_value(run_id)
        self.wait(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-model") == run_id
        )
        tab = (By.CSS_SELECTOR, f'#tabs button[data-view="{view}"]')
        self.wait(EC.element_to_be_clickable(tab)).click()

    def fill(self, element_id: str, value: str) -> None:
        field = self.d.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(value)

    def click_and_wait(self, button: str, image: str) -> None:
        self.d.execute_script(f"document.getElementById('{image}').hidden = true")
        self.d.find_element(By.ID, button).click()

        def shown(d):
            img = d.find_element(By.ID, image)
            ok = d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
            return img.is_displayed() and ok

        self.wait(shown)

    def shot(self, name: str) -> None:
        path = self.out / f"{name}.png"
        height = self.d.execute_script("return document.documentElement.scrollHeight")
        self.d.set_window_size(1360, min(max(700, height + 20), 2400))
        self.d.save_screenshot(str(path))
        with Image.open(path) as im:  # keep docs small: a palette PNG
            im.convert("RGB").quantize(256).save(path, optimize=True)
        self.d.set_window_size(1360, 1000)
        self.written.append(str(path))


def take(page: Page, names: set[str]) -> None:
    d = page.d
    d.get(page.url)
    page.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr")) > 0)
    a, b = ("pix2pix", "pix2pix-l1") if {"pix2pix", "pix2pix-l1"} <= names else (None, None)
    if a:
        for which, name in (("a", a), ("b", b)):
            radio = d.find_element(
                By.CSS_SELECTOR, f'input[name="card-{which}"][value="{page.run_id(name)}"]'
            )
            radio.click()
            page.wait(lambda d, w=which: d.find_elements(By.CSS_SELECTOR, f"#card-{w} svg"))
        page.shot("runs")
    generate = "biggan" if "biggan" in names else "stylegan2-tiny"
    page.choose(generate, "generate")
    page.fill("gen-n", "40")
    page.click_and_wait("gen-go", "gen-grid")
    page.shot("generate")
    page.choose(generate, "explore")
    page.fill("walk-seeds", "1,2,3,4")
    page.fill("walk-frames", "16")
    page.click_and_wait("walk-go", "walk-strip")
    page.shot("explore-walk")
    if "stylegan2-tiny" in names:
        page.choose("stylegan2-tiny", "explore")
        page.click_and_wait("mix-go", "mix-grid")
        page.shot("explore-mix")
    if "infogan-tiny" in names:
        page.choose("infogan-tiny", "explore")
        page.click_and_wait("sweep-go", "sweep-grid")
        page.shot("explore-sweep")
    for name, shot, box in (
        ("pix2pix", "image-translate", None),
        ("cyclegan", "image-cyclegan", None),
        ("context-encoder", "image-inpaint", "8,8,14,14"),
        ("srgan", "image-upscale", None),
    ):
        if name not in names:
            continue
        page.choose(name, "image")
        page.fill("img-test", "3")
        d.find_element(By.ID, "img-pick").click()
        page.wait(EC.visibility_of_element_located((By.ID, "img-canvas")))
        if box:
            page.fill("img-box", box)
        page.click_and_wait("img-go", "img-output")
        page.shot(shot)
    if "stackgan" in names:
        page.choose("stackgan", "text")
        page.fill("text-caption", "a dark wide coat with sparkly buttons")
        page.click_and_wait("text-go", "text-grid")
        page.shot("text")
    page.choose(generate, "generate")
    page.fill("gen-n", "500")
    d.find_element(By.ID, "gen-go").click()
    page.wait(EC.visibility_of_element_located((By.ID, "error")))
    page.shot("bad-value")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", default=["benchmarks/runs"])
    parser.add_argument("--out", default="docs/images/studio")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="studio-tiny-") as tiny:
        tiny_runs(Path(tiny))
        roots = [*args.runs, tiny]
        with running(roots) as url:
            driver = browser()
            try:
                driver.get(url)
                page = Page(driver, url, out)
                WebDriverWait(driver, 60).until(
                    lambda d: len(d.find_elements(By.CSS_SELECTOR, "#run option")) > 1
                )
                names = {
                    o.text.split(" ")[0]
                    for o in driver.find_elements(By.CSS_SELECTOR, "#run option")
                }
                take(page, names)
            finally:
                driver.quit()
    json.dump({"roots": roots, "written": page.written}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

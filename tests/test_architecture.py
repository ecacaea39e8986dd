"""The import directions of DESIGN.md, checked on the source: nn/ imports only torch, models/
never reach into the engine, the engine never names a family, the CLI only calls the API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).parents[1] / "src" / "ganforge"


def ganforge_imports(path: Path) -> set[str]:
    """Modules of ganforge that ``path`` imports, as dotted names relative to the package."""
    tree = ast.parse(path.read_text())
    here = path.relative_to(PKG).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(here[: len(here) - node.level + 1])
                mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith("ganforge"):
                mod = node.module.removeprefix("ganforge").lstrip(".")
            else:
                continue
            found.add(mod)
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix("ganforge").lstrip(".")
                for a in node.names
                if a.name.startswith("ganforge")
            }
    return found


def files(sub: str) -> list[Path]:
    return sorted((PKG / sub).rglob("*.py"))


@pytest.mark.parametrize("path", files("nn"), ids=lambda p: p.name)
def test_nn_imports_only_torch(path):
    outside = {m for m in ganforge_imports(path) if not m.startswith("nn")}
    assert not outside, outside


@pytest.mark.parametrize("path", files("models"), ids=lambda p: p.name)
def test_models_never_import_the_engine_or_cli(path):
    bad = {m for m in ganforge_imports(path) if m.startswith(("engine", "cli", "api"))}
    assert not bad, bad


@pytest.mark.parametrize("path", files("engine"), ids=lambda p: p.name)
def test_engine_knows_models_only_through_the_interface(path):
    family_modules = {p.stem for p in files("models")} - {"__init__", "base"}
    bad = {
        m
        for m in ganforge_imports(path)
        if m.startswith("models.") and m.split(".")[1] in family_modules
    }
    assert not bad, bad


def test_cli_only_calls_the_api_layer():
    # the public layers; "" is the package itself (``from . import __version__``)
    allowed = {"api", "config", "errors", "images", "data", "metrics", "models", "registry"}
    allowed |= {"tools", ""}
    bad = {m for m in ganforge_imports(PKG / "cli.py") if m.split(".")[0] not in allowed}
    assert not bad, bad
    assert not {m for m in ganforge_imports(PKG / "cli.py") if m.startswith("engine")}

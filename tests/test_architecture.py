"""The import directions of DESIGN.md, checked on the source.

Every ``import`` and ``from ... import`` in ``src/ganforge`` (function-level ones included, relative
and absolute) is one edge of the import graph; each edge is one test case, so each violation is
its own failure, named ``module -> imported``.  The rules:

- layers: a module imports its own layer or lower (the table below, DESIGN.md's);
- no cycles between modules (a package's ``__init__`` importing its own submodules is not one);
- ``cli`` imports only ``api`` and ``errors``;
- a family module (one that says ``@MODELS.register``) never imports another family module.

``ganforge/__init__.py`` is the public facade above every layer: it may name anything (lazily),
and nothing inside the package may import it.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"
PKG = "ganforge"

#: first dotted part below ``ganforge`` -> layer (DESIGN.md's table)
LAYERS = {
    **dict.fromkeys(["errors", "registry", "_version", "images", "nn"], 0),
    **dict.fromkeys(["data", "losses", "regularizers", "augment", "features"], 1),
    "models": 2,
    **dict.fromkeys(["config", "metrics", "engine"], 3),
    "tools": 4,
    "api": 5,
    "cli": 6,
    "studio": 6,  # the web front end, beside the CLI
}
TOP = 7  # the package facade and ``python -m ganforge``
CLI_MAY_IMPORT = {f"{PKG}.api", f"{PKG}.errors", f"{PKG}.studio"}


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (``pkg/__init__`` is ``pkg``)."""
    found = {}
    for path in sorted((SRC / PKG).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def layer(module: str) -> int | None:
    """The layer of ``module``; None when the table has no row for it."""
    parts = module.split(".")
    if module == PKG or parts[1:] == ["__main__"]:
        return TOP
    return LAYERS.get(parts[1])


def _targets(module: str, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> set[str]:
    """The package's modules that one import statement of ``module`` loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        prefix = node.module or ""
        if node.level:
            here = module.split(".")
            if known[module].name != "__init__.py":
                here = here[:-1]  # a plain module's '.' is its package
            base = here[: len(here) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        # `from pkg import name`: name is a submodule (then that is what it imports) or a name
        # defined in pkg itself (then pkg is)
        subs = [f"{prefix}.{alias.name}" for alias in node.names]
        names = [s if s in known else prefix for s in subs]
    found = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name.split(".")[0] == PKG:
            found.add(name)
    return found


@cache
def edges() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its source (itself excluded)."""
    known = modules()
    graph = {}
    for module, path in known.items():
        graph[module] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph[module] |= _targets(module, node, known)
        graph[module].discard(module)
    return graph


def _registers_a_family(tree: ast.Module) -> bool:
    """Whether a class of the module is decorated with ``@MODELS.register(...)``."""
    for node in ast.walk(tree):
        for deco in getattr(node, "decorator_list", []):
            call = deco.func if isinstance(deco, ast.Call) else deco
            if ast.unparse(call) == "MODELS.register":
                return True
    return False


@cache
def families() -> frozenset[str]:
    """The modules of models/ that register a family."""
    return frozenset(
        m
        for m, path in modules().items()
        if m.startswith(f"{PKG}.models.") and _registers_a_family(ast.parse(path.read_text()))
    )


def _counts_for_cycles(source: str, target: str) -> bool:
    # A package's __init__ importing its own submodules only re-exports them; the facade's
    # imports are lazy (and any import of the facade is already a layer violation).
    return source != PKG and not target.startswith(source + ".")


def import_path(start: str, goal: str) -> list[str] | None:
    """The shortest chain of imports ``start -> ... -> goal`` (breadth first), or None."""
    graph = edges()
    came_from: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for m in frontier:
            for t in sorted(graph[m]):
                if t in came_from or not _counts_for_cycles(m, t):
                    continue
                came_from[t] = m
                if t == goal:
                    chain = [t]
                    while came_from[chain[-1]] is not None:
                        chain.append(came_from[chain[-1]])
                    return chain[::-1]
                nxt.append(t)
        frontier = nxt
    return None


def short(module: str) -> str:
    return module.removeprefix(f"{PKG}.")


ALL_EDGES = sorted((m, t) for m, ts in edges().items() for t in ts)
IDS = [f"{short(m)}->{short(t)}" for m, t in ALL_EDGES]


def test_the_walk_sees_the_package():
    """The walk finds the modules and the imports DESIGN.md's table is about (a guard against a
    walker that sees nothing and so passes everything)."""
    graph = edges()
    assert {f"{PKG}.errors", f"{PKG}.cli", f"{PKG}.api", f"{PKG}.models.base"} <= set(graph)
    assert f"{PKG}.errors" in graph[f"{PKG}.cli"]  # `from .errors import UserError`
    assert f"{PKG}.registry" in graph[f"{PKG}.models.dcgan"]  # `from ..registry import MODELS`
    assert f"{PKG}.models.dcgan" in families() and f"{PKG}.models.base" not in families()


@pytest.mark.parametrize("module", sorted(modules()), ids=short)
def test_every_module_has_a_layer(module):
    assert layer(module) is not None, (
        f"{module} is in no layer of DESIGN.md's table; add its package to LAYERS here and to "
        "the table there"
    )


@pytest.mark.parametrize(("module", "imported"), ALL_EDGES, ids=IDS)
def test_imports_flow_down_the_layers(module, imported):
    a, b = layer(module), layer(imported)
    if a is None or b is None:
        pytest.skip("a module without a layer fails test_every_module_has_a_layer")
    assert b <= a, (
        f"{module} -> {imported} (layer {a} -> layer {b}): a lower layer imports a higher"
    )


CYCLE_EDGES = [(m, t) for m, t in ALL_EDGES if _counts_for_cycles(m, t)]


@pytest.mark.parametrize(
    ("module", "imported"), CYCLE_EDGES, ids=[f"{short(m)}->{short(t)}" for m, t in CYCLE_EDGES]
)
def test_no_import_cycles(module, imported):
    back = import_path(imported, module)
    assert back is None, (
        f"{module} -> {imported} closes an import cycle: {' -> '.join(map(short, [module, *back]))}"
    )


@pytest.mark.parametrize(
    "imported", sorted(edges()[f"{PKG}.cli"]), ids=lambda m: f"cli->{short(m)}"
)
def test_cli_imports_only_the_api_and_errors(imported):
    assert imported in CLI_MAY_IMPORT, (
        f"{PKG}.cli -> {imported}: the CLI may import only api and errors (add a function to "
        "api.py for what it needs)"
    )


FAMILY_EDGES = [(m, t) for m, t in ALL_EDGES if m in families() and t.startswith(f"{PKG}.models")]


@pytest.mark.parametrize(
    ("family", "imported"), FAMILY_EDGES, ids=[f"{short(m)}->{short(t)}" for m, t in FAMILY_EDGES]
)
def test_families_never_import_other_families(family, imported):
    assert imported not in families(), (
        f"{family} -> {imported}: a family imports another family (move what they share to nn/ "
        "or a shared module of models/)"
    )

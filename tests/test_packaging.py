"""What pyproject.toml promises: the license, and scikit-learn only as the `digits` extra."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_is_the_spdx_apache_expression_with_its_text():
    project = _project()
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the whole text, not a stub


def test_scikit_learn_is_only_the_digits_extra_and_test_pulls_it():
    project = _project()
    assert not any(dep.startswith("scikit-learn") for dep in project["dependencies"])
    extras = project["optional-dependencies"]
    assert extras["digits"] == ["scikit-learn>=1.3"]
    assert "ganforge[digits,plots]" in extras["test"]  # the tests draw loss curves too
    assert extras["plots"] == ["matplotlib>=3.7"]
    assert not any(dep.startswith("matplotlib") for dep in project["dependencies"])

"""pyproject.toml lists molgen's packages by hand (conf/ is remapped to molgen.conf): the list must be complete."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def packages_on_disk() -> set[str]:
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "molgen").rglob("__init__.py")}
    found |= {"molgen.conf"} | {f"molgen.conf.{d.name}" for d in (ROOT / "conf").iterdir() if d.is_dir()}
    return {name for name in found if "__pycache__" not in name}


def test_every_package_and_config_group_is_listed():
    pyproject = ROOT / "pyproject.toml"
    if not (ROOT / "conf").is_dir() or not pyproject.is_file():
        pytest.skip("not a source checkout")
    config = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == packages_on_disk()
    assert config["package-dir"]["molgen.conf"] == "conf"

"""The package boundaries of docs/architecture.md, checked on the source and on a running process.

Static: every ``import`` of every module (function-local ones included) is read from
its syntax tree and checked against what its package may import. Dynamic: sampling
from the CLI and from the Python API must not load Lightning (training-only).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import molgen

PACKAGE = Path(molgen.__file__).resolve().parent

# Package (or module) -> the molgen packages it may import (itself always allowed).
ALLOWED = {
    "molgen.graph_batch": set(),
    "molgen.registry": set(),
    "molgen.locks": set(),
    "molgen.checkpoint_files": set(),
    "molgen.dataset_info": set(),
    "molgen.io": set(),
    # target properties of conditional models: statistics, checks, sizes given targets (a leaf, like dataset_info)
    "molgen.targets": set(),
    # the diffusion core: no chemistry, no proteins, no domains, no training, no networks
    "molgen.diffusion": {"molgen.graph_batch", "molgen.registry"},
    # layers: no dataset, no domain, no diffusion process
    "molgen.nn": {"molgen.graph_batch"},
    # denoisers and the model builder; the chain transformer reads its features' definition (angles, the CA
    # trace they rebuild) from the one protein module that defines them (numpy and torch only)
    "molgen.models": {
        "molgen.nn",
        "molgen.diffusion",
        "molgen.graph_batch",
        "molgen.dataset_info",
        "molgen.registry",
        "molgen.proteins.internal_coordinates",
    },
    # the chemistry and protein libraries: parsing, writing, metrics (no domain, no model, no training)
    "molgen.molecules": {"molgen.io", "molgen.dataset_info", "molgen.reports", "molgen.graph_batch", "molgen.targets"},
    "molgen.proteins": {"molgen.io", "molgen.dataset_info", "molgen.reports", "molgen.graph_batch"},
    "molgen.reports": set(),
    # downstream tools: they read and write the files molgen writes, as a user's pipeline would
    "molgen.docking": {"molgen.io", "molgen.locks", "molgen.commands", "molgen.molecules"},
    # the report also draws what the downstream tools compute (docking: scores, the summary figures)
    "molgen.report": {
        "molgen.io",
        "molgen.commands",
        "molgen.molecules",
        "molgen.proteins",
        "molgen.reports",
        "molgen.docking",
    },
    # what inference needs (molgen.nn for the wrapper that runs the network in a config's precision)
    "molgen.sampling": {"molgen.diffusion", "molgen.checkpoint", "molgen.targets", "molgen.nn"},
}
FORBIDDEN_EVERYWHERE_BUT_TRAINING = ("lightning", "pytorch_lightning")
INFERENCE = ("molgen.diffusion", "molgen.nn", "molgen.models", "molgen.domains", "molgen.molecules", "molgen.proteins")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module name imported anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules():
    return [(module_name(path), path) for path in sorted(PACKAGE.rglob("*.py"))]


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(allowed: dict[str, set[str]]) -> list[str]:
    found = []
    for name, path in modules():
        rule = next((pkg for pkg in allowed if within(name, pkg)), None)
        if rule is None:
            continue
        for imported in imports_of(path):
            if not within(imported, "molgen") or within(imported, rule):
                continue
            if not any(within(imported, ok) for ok in allowed[rule]):
                found.append(f"{name} imports {imported}")
    return found


def test_packages_import_only_what_the_architecture_allows():
    assert violations(ALLOWED) == []


def test_the_checker_sees_a_forbidden_import(tmp_path, monkeypatch):
    """The rule set would flag the core importing a domain (guards against a checker that sees nothing)."""
    found = violations({"molgen.diffusion": set()})  # the core without even graph_batch
    assert any(v.startswith("molgen.diffusion") and "molgen.graph_batch" in v for v in found)


def test_inference_packages_do_not_import_lightning():
    found = [
        f"{name} imports {imported}"
        for name, path in modules()
        if any(within(name, pkg) for pkg in INFERENCE)
        for imported in imports_of(path)
        if any(within(imported, bad) for bad in FORBIDDEN_EVERYWHERE_BUT_TRAINING)
    ]
    assert found == []


@pytest.mark.slow
def test_sampling_from_the_cli_and_the_api_does_not_load_lightning(tmp_path):
    out = str(tmp_path / "s.sdf")
    script = f"""
import sys
from molgen.cli import main
assert main(["sample", "--num-samples", "2", "--steps", "2", "--no-progress", "--out", {out!r}]) == 0
import molgen
molgen.load_pretrained("backbone").sample(1, length=(5, 5), steps=2)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning"))
assert not loaded, loaded
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]

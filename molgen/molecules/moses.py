"""The MOSES SMILES files, read from the installed ``molsets`` distribution without importing it.

MOSES (Polykovskiy et al., 2020; MIT) is a lead-like subset of ZINC: elements
C, N, O, S, F, Cl, Br (and H), 250-350 Da, no charged atoms beyond a few
nitro/ammonium groups. The ``molsets`` wheel ships its splits as gzipped CSV
files with one ``SMILES`` column. Its declared dependencies do not install on
current Python, and the files are all molgen needs, so the package is located
with :mod:`importlib.metadata` and never imported; install it with
``pip install --no-deps molsets``.

Splits: ``train`` (1,584,663 molecules), ``test`` (176,074) and
``test_scaffolds`` (176,226, scaffolds absent from train).
"""

from __future__ import annotations

import gzip
import importlib.metadata
from functools import lru_cache
from pathlib import Path

__all__ = ["MOSES_SPLITS", "INSTALL_HINT", "moses_path", "read_moses_smiles"]

MOSES_SPLITS = ("train", "test", "test_scaffolds")
INSTALL_HINT = "pip install --no-deps molsets==0.3.1"
"""How to install the MOSES files (``--no-deps``: its pinned dependencies do not install on current Python)."""


def moses_path(split: str) -> Path:
    """Path of the split's ``.csv.gz`` inside the installed ``molsets`` distribution.

    Raises:
        ValueError: unknown split.
        FileNotFoundError: ``molsets`` is not installed, or lacks the file (one line with the fix).
    """
    if split not in MOSES_SPLITS:
        raise ValueError(f"unknown MOSES split {split!r}; known: {list(MOSES_SPLITS)}")
    try:
        distribution = importlib.metadata.distribution("molsets")
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"the MOSES data needs the molsets wheel: {INSTALL_HINT}") from None
    path = Path(distribution.locate_file(f"moses/dataset/data/{split}.csv.gz"))
    if not path.is_file():
        raise FileNotFoundError(f"molsets is installed but {path} is missing; reinstall it: {INSTALL_HINT}")
    return path


@lru_cache(maxsize=len(MOSES_SPLITS))
def _read(path: Path) -> tuple[str, ...]:
    with gzip.open(path, "rt") as handle:
        header = handle.readline().strip()
        if header.split(",")[0] != "SMILES":
            raise ValueError(f"{path}: expected a SMILES column, got header {header!r}")
        return tuple(line.split(",")[0].strip() for line in handle if line.strip())


def read_moses_smiles(split: str) -> tuple[str, ...]:
    """The SMILES of a MOSES split, in file order (cached per process)."""
    return _read(moses_path(split))

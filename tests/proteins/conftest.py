"""Fixtures for protein tests: the optional real chains in ../shared."""

from pathlib import Path

import pytest

#: Real PDB chains (db55 / dips), present only on development machines.
SHARED_PROTEINS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "proteins"


@pytest.fixture
def shared_proteins() -> Path:
    """Path of ``../shared/data/proteins``; skips the test when it is absent."""
    if not (SHARED_PROTEINS / "db55").is_dir():
        pytest.skip(f"real protein chains not found at {SHARED_PROTEINS}")
    return SHARED_PROTEINS

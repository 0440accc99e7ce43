"""The optional packages docking needs, and the one line that says how to install them.

AutoDock Vina, meeko (with its gemmi and scipy imports) and PDBFixer/OpenMM are the
``molgen[dock]`` extra, not core dependencies: most uses of molgen never dock.
"""

from __future__ import annotations

import importlib.util

__all__ = ["INSTALL_HINT", "missing_docking_packages"]

INSTALL_HINT = "pip install 'molgen[dock]'"
"""Installs vina, meeko (with gemmi and scipy), and pdbfixer with openmm for receptor repair."""

#: Import name -> distribution name of the packages ``molgen dock`` cannot run without.
_REQUIRED = {"vina": "vina", "meeko": "meeko", "gemmi": "gemmi", "scipy": "scipy"}


def missing_docking_packages() -> list[str]:
    """Distribution names of the required docking packages that are not installed ([] when all are)."""
    return [dist for module, dist in _REQUIRED.items() if importlib.util.find_spec(module) is None]

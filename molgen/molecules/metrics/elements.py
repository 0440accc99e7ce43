"""The elements molgen's validation protocols have tables for.

The EDM protocol (:mod:`molgen.molecules.metrics.edm`) tabulates bond lengths
for H, C, N, O and F and valences for a few more elements; graph stability
(:mod:`molgen.molecules.metrics.graph_stability`) tabulates valences per
element and formal charge. RDKit itself knows every element and would
sanitize e.g. XeF2 or UF6, but a molecule holding an element that none of
these tables covers is one molgen's protocols cannot vouch for: every
protocol counts it as invalid and unstable (see
:func:`molgen.molecules.evaluate.evaluate_molecules`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rdkit import Chem

from molgen.molecules.featurize import atomic_number
from molgen.molecules.metrics.edm import ALLOWED_VALENCES, DOUBLE_BOND_PM, SINGLE_BOND_PM, TRIPLE_BOND_PM
from molgen.molecules.metrics.graph_stability import CHARGED_VALENCES

__all__ = ["TABLE_ELEMENTS", "elements_outside_tables"]

TABLE_ELEMENTS: tuple[str, ...] = tuple(
    sorted(
        {s for table in (SINGLE_BOND_PM, DOUBLE_BOND_PM, TRIPLE_BOND_PM) for pair in table for s in pair}
        | set(ALLOWED_VALENCES)
        | {element for element, _ in CHARGED_VALENCES},
        key=atomic_number,
    )
)
"""Every element some table of the EDM or graph-stability protocol covers, by atomic number."""

_TABLE_Z = frozenset(atomic_number(s) for s in TABLE_ELEMENTS)
_PERIODIC_TABLE = Chem.GetPeriodicTable()


def _symbol(z: int) -> str:
    """Element symbol of ``z``; ``*`` for 0 (a dummy atom) and ``Z=<z>`` outside the periodic table."""
    return _PERIODIC_TABLE.GetElementSymbol(z) if 0 <= z <= 118 else f"Z={z}"


def elements_outside_tables(atomic_numbers: Any) -> list[str]:
    """Symbols of the distinct elements in ``atomic_numbers`` ([n] int) outside :data:`TABLE_ELEMENTS`,
    by atomic number (empty when every element is covered)."""
    present = {int(z) for z in np.asarray(atomic_numbers, dtype=np.int64).reshape(-1).tolist()}
    return [_symbol(z) for z in sorted(present - _TABLE_Z)]

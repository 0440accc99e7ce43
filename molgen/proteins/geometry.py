"""Backbone geometry: atom order, Engh–Huber ideal values, internal-coordinate helpers.

A backbone is an array ``[L, 4, 3]`` of coordinates in Å, atoms in the order
of :data:`BACKBONE_ATOMS` for each of its ``L`` residues.
"""

from __future__ import annotations

#: Atom order inside every residue of a backbone array.
BACKBONE_ATOMS: tuple[str, ...] = ("N", "CA", "C", "O")
#: Element symbol of each backbone atom, same order.
BACKBONE_ELEMENTS: tuple[str, ...] = ("N", "C", "C", "O")

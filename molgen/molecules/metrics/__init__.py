"""Chemistry validation of generated (or any) 3D molecules.

One module per protocol; each takes a list of :class:`MoleculeRecord` and
returns a summary of fractions in [0, 1] plus per-molecule results.
"""

from molgen.molecules.record import MoleculeRecord

__all__ = ["MoleculeRecord"]

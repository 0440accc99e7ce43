"""scripts/strand_pairing.py: extended and helical CA-trace residues, and whether extended ones are paired."""

import numpy as np

from molgen.proteins.geometry import ideal_helix, ideal_strand
from tests.helpers import load_script

strand_pairing = load_script("strand_pairing")


def _hairpin_trace(length: int = 8, gap: float = 4.8) -> np.ndarray:
    """Two antiparallel ideal strands ``gap`` Å apart, the second one reversed after the first (CA atoms)."""
    first = ideal_strand(length)[:, 1]
    first = first - first.mean(axis=0)
    axis = (first[-1] - first[0]) / np.linalg.norm(first[-1] - first[0])
    side = np.cross(axis, [0.0, 0.0, 1.0])
    side -= axis * (side @ axis)
    side /= np.linalg.norm(side)
    return np.concatenate([first, first[::-1] + gap * side])


def test_a_helix_is_helical_and_two_strands_side_by_side_are_paired_while_one_alone_is_not():
    residues, extended, helical, paired = strand_pairing.chain_statistics(ideal_helix(12)[:, 1])
    assert extended == 0 and paired == 0 and helical == residues == 9
    residues, extended, helical, paired = strand_pairing.chain_statistics(ideal_strand(12)[:, 1])
    assert helical == 0 and extended == residues == 9 and paired == 0
    residues, extended, _, paired = strand_pairing.chain_statistics(_hairpin_trace())
    # all but the two residues at the junction, whose partner across is their sequence neighbour
    assert extended >= 8 and paired == extended - 2
    _, extended_far, _, paired_far = strand_pairing.chain_statistics(_hairpin_trace(gap=9.0))
    assert extended_far == extended and paired_far == 0

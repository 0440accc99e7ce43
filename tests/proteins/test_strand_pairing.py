"""Strand pairing (molgen.proteins.metrics): extended and helical CA-trace residues, whether extended ones are
paired, in `molgen evaluate`'s report and scripts/strand_pairing.py."""

import numpy as np

from molgen.proteins.ca_trace import backbone_from_ca
from molgen.proteins.geometry import ideal_helix, ideal_strand
from molgen.proteins.metrics import evaluate_backbones, strand_pairing_counts
from molgen.proteins.pdb import write_backbone_pdb
from tests.helpers import load_script


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
    residues, extended, helical, paired = strand_pairing_counts(ideal_helix(12)[:, 1])
    assert extended == 0 and paired == 0 and helical == residues == 9
    residues, extended, helical, paired = strand_pairing_counts(ideal_strand(12)[:, 1])
    assert helical == 0 and extended == residues == 9 and paired == 0
    residues, extended, _, paired = strand_pairing_counts(_hairpin_trace())
    # all but the two residues at the junction, whose partner across is their sequence neighbour
    assert extended >= 8 and paired == extended - 2
    _, extended_far, _, paired_far = strand_pairing_counts(_hairpin_trace(gap=9.0))
    assert extended_far == extended and paired_far == 0


def test_the_evaluation_report_and_the_script_pool_the_same_counts(tmp_path):
    hairpin, lone = backbone_from_ca(_hairpin_trace()), ideal_strand(12)
    counts = np.sum([strand_pairing_counts(b[:, 1]) for b in (hairpin, lone)], axis=0)
    report = evaluate_backbones([hairpin, lone], tm_score=False)["secondary_structure"]
    assert report["extended_fraction"] == counts[1] / counts[0]
    assert report["paired_extended_fraction"] == counts[3] / counts[1]
    assert 0 < report["paired_extended_fraction"] < 1
    for name, backbone in (("hairpin", hairpin), ("lone", lone)):
        write_backbone_pdb(tmp_path / f"{name}.pdb", backbone)
    folder = load_script("strand_pairing").folder_statistics(tmp_path, max_files=10)
    assert (folder["extended"], folder["paired"]) == (report["extended_fraction"], report["paired_extended_fraction"])

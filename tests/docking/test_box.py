"""The docking box: the reference-ligand convention and the option checks."""

from __future__ import annotations

import numpy as np
import pytest

from molgen.docking.box import MIN_EDGE, PADDING, Box, box_from_options
from tests.docking.conftest import embedded, molblock, write_sdf_text


def test_box_around_a_ligand_is_its_heavy_atom_centroid_with_padded_edges(tmp_path):
    mol = embedded("CCCCCCCCCCCCCCCC", center=(1.0, 2.0, 3.0))  # long chain: one edge beyond MIN_EDGE
    path = write_sdf_text(tmp_path / "ligand.sdf", [molblock(mol)])
    box = Box.around_ligand(path)
    heavy = mol.GetConformer().GetPositions()[[a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]]
    np.testing.assert_allclose(box.center, heavy.mean(axis=0), atol=1e-3)
    expected = np.maximum(np.ptp(heavy, axis=0) + PADDING, MIN_EDGE)
    np.testing.assert_allclose(box.size, expected, atol=0.05)
    assert max(box.size) > MIN_EDGE
    assert Box.around_ligand(path, size=(10.0, 11.0, 12.0)).size == (10.0, 11.0, 12.0)


def test_distance_outside_is_zero_inside_and_euclidean_outside():
    box = Box((0.0, 0.0, 0.0), (2.0, 4.0, 6.0))
    np.testing.assert_allclose(
        box.distance_outside(np.array([[0.5, 1.5, -2.5], [4.0, 0.0, 0.0], [4.0, 6.0, 0.0]])), [0.0, 3.0, 5.0]
    )


@pytest.mark.parametrize(
    ("ref", "center", "size", "message"),
    [
        (None, [0.0, 0.0, 0.0], None, "--center needs --size"),
        (None, None, None, "a docking box is needed"),
        (None, None, [20.0, 20.0, 20.0], "a docking box is needed"),
        ("ligand.sdf", [0.0, 0.0, 0.0], [20.0, 20.0, 20.0], "not both"),
        (None, [0.0, 0.0, 0.0], [20.0, -1.0, 20.0], "positive"),
    ],
)
def test_box_options_are_checked_with_one_line(ref, center, size, message):
    with pytest.raises(ValueError, match=message) as err:
        box_from_options(ref, center, size)
    assert "\n" not in str(err.value)


def test_missing_reference_ligand_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="reference ligand not found"):
        box_from_options(str(tmp_path / "absent.sdf"), None, None)

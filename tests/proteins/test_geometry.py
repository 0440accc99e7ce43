"""Backbone geometry: NeRF construction against closed forms, measurements, invariances."""

import numpy as np
import pytest
import torch

from molgen.proteins import geometry as g
from tests.equivariance_utils import random_rotation


def random_rigid(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random proper rotation (det +1) and translation."""
    rot = random_rotation(torch.float64, generator=torch.Generator().manual_seed(int(rng.integers(2**62))))
    return rot.numpy(), rng.normal(scale=20.0, size=3)


def screw(coords: np.ndarray) -> tuple[float, float]:
    """(twist in degrees, signed rise in Å) of the rigid motion from residue 0 to residue 1.

    Frames are built from N, CA, C; the rise is the CA displacement along the rotation
    axis, positive for a right-handed screw.
    """

    def frame(res):
        e1 = res[2] - res[1]
        e1 /= np.linalg.norm(e1)
        e2 = res[0] - res[1]
        e2 -= e2 @ e1 * e1
        e2 /= np.linalg.norm(e2)
        return np.stack([e1, e2, np.cross(e1, e2)], axis=1)

    rot = frame(coords[1]) @ frame(coords[0]).T
    twist = np.degrees(np.arccos((np.trace(rot) - 1) / 2))
    axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    axis /= np.linalg.norm(axis)
    return twist, float(axis @ (coords[1, 1] - coords[0, 1]))


def test_place_atom_closed_form():
    a, b, c = np.array([1.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.zeros(3)
    # bond 2 Å, right angle at c, torsion 90°: d lies along the a-b-c plane normal.
    d = g.place_atom(a, b, c, 2.0, 90.0, 90.0)
    assert np.linalg.norm(d - c) == pytest.approx(2.0)
    assert g.angle(b, c, d) == pytest.approx(90.0)
    assert g.dihedral(a, b, c, d) == pytest.approx(90.0)
    np.testing.assert_allclose(np.abs(d), [0.0, 0.0, 2.0], atol=1e-12)


def test_place_atom_broadcasts_over_leading_dims():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 5, 7, 3))
    torsion = rng.uniform(-180, 180, size=(5, 7))
    d = g.place_atom(a, b, c, 1.5, 110.0, torsion)
    assert d.shape == (5, 7, 3)
    np.testing.assert_allclose(np.linalg.norm(d - c, axis=-1), 1.5)
    np.testing.assert_allclose(g.angle(b, c, d), 110.0)
    np.testing.assert_allclose(g.dihedral(a, b, c, d), torsion, atol=1e-9)


def test_rebuilt_dihedrals_equal_inputs():
    rng = np.random.default_rng(1)
    phi, psi = rng.uniform(-180, 180, size=(2, 40))
    omega = rng.choice([180.0, -175.0, 5.0], size=40)
    phi_out, psi_out, omega_out = g.backbone_dihedrals(g.build_backbone(phi, psi, omega))
    wrap = lambda x: (x + 180.0) % 360.0 - 180.0  # noqa: E731
    np.testing.assert_allclose(wrap(phi_out[1:] - phi[1:]), 0.0, atol=1e-6)
    np.testing.assert_allclose(wrap(psi_out[:-1] - psi[:-1]), 0.0, atol=1e-6)
    np.testing.assert_allclose(wrap(omega_out[:-1] - omega[:-1]), 0.0, atol=1e-6)
    assert np.isnan([phi_out[0], psi_out[-1], omega_out[-1]]).all()


def test_build_backbone_batched_matches_single():
    rng = np.random.default_rng(2)
    phi, psi = rng.uniform(-180, 180, size=(2, 3, 12))
    batch = g.build_backbone(phi, psi)
    assert batch.shape == (3, 12, 4, 3)
    np.testing.assert_allclose(batch[1], g.build_backbone(phi[1], psi[1]), atol=1e-12)


def test_bond_lengths_and_angles_are_ideal():
    rng = np.random.default_rng(3)
    coords = g.build_backbone(*rng.uniform(-180, 180, size=(2, 25)))
    lengths, angles = g.bond_lengths(coords), g.bond_angles(coords)
    assert {k: v.shape for k, v in lengths.items()} == {"N-CA": (25,), "CA-C": (25,), "C-O": (25,), "C-N": (24,)}
    for name, ideal in g.IDEAL_BOND_LENGTHS.items():
        np.testing.assert_allclose(lengths[name], ideal, atol=1e-10)
    for name, ideal in g.IDEAL_BOND_ANGLES.items():
        np.testing.assert_allclose(angles[name], ideal, atol=1e-8)
    # O in the peptide plane: the remaining angle O-C-N closes 360° around C.
    o_c_n = g.angle(coords[:-1, 3], coords[:-1, 2], coords[1:, 0])
    np.testing.assert_allclose(o_c_n, 360.0 - g.ANGLE_CA_C_N - g.ANGLE_CA_C_O, atol=1e-8)


def test_ideal_helix_closed_form():
    helix = g.ideal_helix(30)
    np.testing.assert_allclose(g.ca_distances(helix), g.CA_CA_DISTANCE, atol=0.01)
    twist, rise = screw(helix)
    assert 360.0 / twist == pytest.approx(3.6, abs=0.05)
    # Textbook rise is 1.5 Å; Engh–Huber lengths/angles with (-57°, -47°) give 1.552 Å (pitch 5.6 Å).
    # Positive: right-handed.
    assert rise == pytest.approx(1.55, abs=0.01)
    # Every residue repeats the same screw, so CA(i)-CA(i+k) depends on k only.
    ca = helix[:, 1]
    np.testing.assert_allclose(np.linalg.norm(ca[4:] - ca[:-4], axis=-1), np.linalg.norm(ca[4] - ca[0]), atol=1e-9)
    # n CA atoms on a helix of radius r (from the CA-CA chord), twist t:
    # Rg^2 = r^2 (1 - |mean_k exp(ikt)|^2) + rise^2 (n^2 - 1) / 12.
    n, t = len(ca), np.radians(twist)
    radius_sq = (np.linalg.norm(ca[1] - ca[0]) ** 2 - rise**2) / (2 * (1 - np.cos(t)))
    assert np.sqrt(radius_sq) == pytest.approx(2.3, abs=0.05)  # alpha-helix CA radius 2.3 Å
    centroid_offset = np.sin(n * t / 2) / (n * np.sin(t / 2))
    expected = np.sqrt(radius_sq * (1 - centroid_offset**2) + rise**2 * (n**2 - 1) / 12)
    assert g.radius_of_gyration(helix) == pytest.approx(expected, abs=1e-9)


def test_ideal_strand_is_extended():
    strand = g.ideal_strand(12)
    ca = strand[:, 1]
    i_i2 = np.linalg.norm(ca[2:] - ca[:-2], axis=-1)
    assert np.all((i_i2 > 6.4) & (i_i2 < 7.0))
    np.testing.assert_allclose(g.ca_distances(strand), g.CA_CA_DISTANCE, atol=0.01)
    phi, psi, _ = g.backbone_dihedrals(strand)
    np.testing.assert_allclose(phi[1:], g.STRAND_PHI_PSI[0])
    np.testing.assert_allclose(psi[:-1], g.STRAND_PHI_PSI[1])


def test_random_coil_is_seeded_and_locally_protein_like():
    coil = g.random_coil(200, seed=1)
    assert coil.shape == (200, 4, 3)
    np.testing.assert_array_equal(coil, g.random_coil(200, seed=1))
    assert not np.array_equal(coil, g.random_coil(200, seed=2))
    np.testing.assert_allclose(g.ca_distances(coil), g.CA_CA_DISTANCE, atol=0.01)
    phi, psi, _ = g.backbone_dihedrals(coil)
    pairs = np.stack([phi[1:-1], psi[1:-1]], axis=-1)
    # Every residue lies near one of the basins, and every basin is used.
    offsets = (pairs[:, None, :] - np.asarray(g.COIL_BASINS)[None] + 180.0) % 360.0 - 180.0
    nearest = np.linalg.norm(offsets, axis=-1).argmin(axis=-1)
    assert np.linalg.norm(offsets, axis=-1).min(axis=-1).max() < 6 * g.COIL_SPREAD
    assert set(nearest.tolist()) == {0, 1, 2}


def test_radius_of_gyration_closed_form():
    coords = np.zeros((2, 4, 3))
    coords[1, :, 0] = 3.0  # two CA 3 Å apart: Rg = 1.5
    assert g.radius_of_gyration(coords) == pytest.approx(1.5)


def test_measurements_invariant_under_rigid_motion():
    rng = np.random.default_rng(4)
    coords = g.build_backbone(*rng.uniform(-180, 180, size=(2, 20)))
    coords = coords + rng.normal(scale=0.05, size=coords.shape)  # non-ideal values exercise more than constants
    rot, shift = random_rigid(rng)
    moved = coords @ rot.T + shift
    for measure in (g.bond_lengths, g.bond_angles):
        before, after = measure(coords), measure(moved)
        for key in before:
            np.testing.assert_allclose(after[key], before[key], atol=1e-9)
    for before, after in zip(g.backbone_dihedrals(coords), g.backbone_dihedrals(moved)):
        np.testing.assert_allclose(after, before, atol=1e-9)
    np.testing.assert_allclose(g.ca_distances(moved), g.ca_distances(coords), atol=1e-9)
    assert g.radius_of_gyration(moved) == pytest.approx(g.radius_of_gyration(coords), abs=1e-9)


def test_mirror_flips_dihedral_signs_and_handedness():
    helix = g.ideal_helix(15)
    mirrored = helix * np.array([-1.0, 1.0, 1.0])
    for before, after in zip(g.backbone_dihedrals(helix), g.backbone_dihedrals(mirrored)):
        ok = np.isfinite(before)
        # omega = 180 maps onto -180 = 180: compare on the circle.
        np.testing.assert_allclose(np.cos(np.radians(after[ok])), np.cos(np.radians(before[ok])), atol=1e-9)
        np.testing.assert_allclose(np.sin(np.radians(after[ok])), -np.sin(np.radians(before[ok])), atol=1e-9)
    phi, psi, _ = g.backbone_dihedrals(mirrored)
    np.testing.assert_allclose([phi[1], psi[0]], [57.0, 47.0])
    assert screw(mirrored)[1] == pytest.approx(-1.55, abs=0.01)  # left-handed


@pytest.mark.parametrize(
    "coords, match",
    [
        (np.zeros((5, 3, 3)), "shape"),
        (np.zeros((5, 4)), "shape"),
        (np.zeros((1, 4, 3)), "at least 2"),
        (np.full((5, 4, 3), np.nan), "finite"),
    ],
)
def test_bad_input_raises(coords, match):
    with pytest.raises(ValueError, match=match):
        g.backbone_dihedrals(coords)


def test_build_backbone_rejects_bad_dihedrals():
    with pytest.raises(ValueError, match="share a shape"):
        g.build_backbone(np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        g.build_backbone(np.zeros(5), np.array([0, 0, 0, 0, np.nan]))
    # phi[0] is unused and may be NaN (as backbone_dihedrals returns it).
    assert g.build_backbone(np.array([np.nan, -60.0]), np.array([-45.0, -45.0])).shape == (2, 4, 3)

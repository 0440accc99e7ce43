"""Backbone geometry: atom order, Engh–Huber ideal values, van der Waals radii, internal-coordinate helpers.

A backbone is an array ``[L, 4, 3]`` of coordinates in Å, atoms in the order
of :data:`BACKBONE_ATOMS` for each of its ``L`` residues.

Angles are in degrees, except in the differentiable torch helpers ``angle_radians`` and
``dihedral_radians`` (used by :mod:`molgen.proteins.relax`). Dihedrals follow the IUPAC sign convention
(looking along b→c, positive when a turns clockwise onto d), under which an
alpha helix has phi ≈ −57°, psi ≈ −47° and is right-handed.

Ideal values: Engh & Huber (1991), Acta Cryst. A47, 392–400. Van der Waals radii: Bondi (1964),
J. Phys. Chem. 68, 441–451; the clash checks of :mod:`molgen.proteins.metrics` and the clash
energy of :mod:`molgen.proteins.relax` both scale them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: Atom order inside every residue of a backbone array.
BACKBONE_ATOMS: tuple[str, ...] = ("N", "CA", "C", "O")
#: Element symbol of each backbone atom, same order.
BACKBONE_ELEMENTS: tuple[str, ...] = ("N", "C", "C", "O")

#: Engh–Huber bond lengths (Å). ``C-N`` is the peptide bond C(i)–N(i+1).
BOND_N_CA = 1.459
BOND_CA_C = 1.525
BOND_C_N = 1.329
BOND_C_O = 1.229
#: Engh–Huber bond angles (degrees); CA–C–N and C–N–CA span the peptide bond.
ANGLE_N_CA_C = 111.0
ANGLE_CA_C_N = 116.2
ANGLE_C_N_CA = 121.7
ANGLE_CA_C_O = 120.1
#: Distance between consecutive CA atoms across a trans peptide bond (Å).
CA_CA_DISTANCE = 3.80
#: Consecutive CA atoms farther apart than this (Å) are not peptide-bonded: a chain break.
CHAIN_BREAK_CA_DISTANCE = 4.2
#: Bondi van der Waals radii (Å) of the backbone atoms, in :data:`BACKBONE_ATOMS` order (N, CA, C, O).
VDW_RADII = np.array([1.55, 1.70, 1.70, 1.52])

#: Ideal values keyed like the dicts returned by :func:`bond_lengths` and :func:`bond_angles`.
IDEAL_BOND_LENGTHS: dict[str, float] = {"N-CA": BOND_N_CA, "CA-C": BOND_CA_C, "C-O": BOND_C_O, "C-N": BOND_C_N}
IDEAL_BOND_ANGLES: dict[str, float] = {
    "N-CA-C": ANGLE_N_CA_C,
    "CA-C-O": ANGLE_CA_C_O,
    "CA-C-N": ANGLE_CA_C_N,
    "C-N-CA": ANGLE_C_N_CA,
}

#: Alpha helix (phi, psi), degrees. With Engh–Huber geometry: 3.62 residues per turn, 1.55 Å rise per residue.
HELIX_PHI_PSI = (-57.0, -47.0)
#: Beta strand (phi, psi), degrees: between the parallel (−119°, +113°) and antiparallel
#: (−139°, +135°) sheet values, giving an extended chain with CA(i)–CA(i+2) ≈ 6.6 Å.
STRAND_PHI_PSI = (-120.0, 130.0)
#: Polyproline II (phi, psi), degrees: the left-handed extended conformation common in coil.
PPII_PHI_PSI = (-75.0, 145.0)
#: The populated Ramachandran basins a :func:`random_coil` draws from, and their spread (degrees, SD).
COIL_BASINS = (HELIX_PHI_PSI, STRAND_PHI_PSI, PPII_PHI_PSI)
COIL_SPREAD = 15.0


def as_backbone(coords, min_residues: int = 1) -> np.ndarray:
    """``coords`` as a float64 ``[L, 4, 3]`` array, checked.

    Raises:
        ValueError: wrong shape, fewer than ``min_residues`` residues, or non-finite coordinates.
    """
    array = np.asarray(coords, dtype=np.float64)
    if array.ndim != 3 or array.shape[1:] != (len(BACKBONE_ATOMS), 3):
        raise ValueError(f"a backbone must have shape [L, 4, 3] (atoms N, CA, C, O), got {array.shape}")
    if len(array) < min_residues:
        raise ValueError(f"this measurement needs at least {min_residues} residues, got {len(array)}")
    bad = np.count_nonzero(~np.isfinite(array))
    if bad:
        raise ValueError(f"backbone coordinates must be finite, found {bad} NaN/inf values")
    return array


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def angle_radians(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Angle a–b–c at ``b`` in radians, differentiable. Shapes: ``[..., 3]`` each → ``[...]``."""
    u, v = a - b, c - b
    # arctan2 of |u×v| and u·v stays accurate near 0° and 180°, unlike arccos.
    return torch.atan2(torch.linalg.vector_norm(torch.linalg.cross(u, v), dim=-1), (u * v).sum(-1))


def dihedral_radians(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    """Dihedral a–b–c–d in radians, in (−π, π], differentiable. Shapes: ``[..., 3]`` each → ``[...]``."""
    axis = c - b
    axis = axis / torch.linalg.vector_norm(axis, dim=-1, keepdim=True)
    # Components of the two outer bonds perpendicular to the central one.
    v = (a - b) - ((a - b) * axis).sum(-1, keepdim=True) * axis
    w = (d - c) - ((d - c) * axis).sum(-1, keepdim=True) * axis
    return torch.atan2((torch.linalg.cross(axis, v) * w).sum(-1), (v * w).sum(-1))


def _as_float64_tensors(*arrays) -> list[Tensor]:
    return [torch.tensor(np.asarray(x, dtype=np.float64)) for x in arrays]  # a copy: inputs may be read-only


def angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Angle a–b–c at ``b`` in degrees (float64). Shapes: ``[..., 3]`` each → ``[...]``."""
    return np.degrees(angle_radians(*_as_float64_tensors(a, b, c)).numpy())


def dihedral(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Dihedral a–b–c–d in degrees (float64), in (−180, 180]. Shapes: ``[..., 3]`` each → ``[...]``."""
    return np.degrees(dihedral_radians(*_as_float64_tensors(a, b, c, d)).numpy())


def place_atom(a, b, c, bond_length, bond_angle_deg, torsion_deg) -> np.ndarray:
    """Position of atom ``d`` from the three atoms before it (NeRF, Parsons et al. 2005).

    ``d`` satisfies ``|d − c| = bond_length``, ``angle(b, c, d) = bond_angle_deg`` and
    ``dihedral(a, b, c, d) = torsion_deg``.

    Shapes: ``a, b, c`` ``[..., 3]`` (Å); the three internal coordinates are scalars or arrays
    broadcastable to ``[...]``. Returns ``[..., 3]``; NaN where a, b, c are collinear.
    """
    a, b, c = (np.asarray(x, dtype=np.float64) for x in (a, b, c))
    theta = np.radians(np.asarray(bond_angle_deg, dtype=np.float64))[..., None]
    tau = np.radians(np.asarray(torsion_deg, dtype=np.float64))[..., None]
    length = np.asarray(bond_length, dtype=np.float64)[..., None]
    # Local frame at c: x along b→c, z normal to the a–b–c plane, y completing it.
    x_axis = _unit(c - b)
    z_axis = _unit(np.cross(b - a, x_axis))
    y_axis = np.cross(z_axis, x_axis)
    return c + length * (
        -np.cos(theta) * x_axis + np.sin(theta) * np.cos(tau) * y_axis + np.sin(theta) * np.sin(tau) * z_axis
    )


def build_backbone(phi, psi, omega=None) -> np.ndarray:
    """Backbone from dihedrals with Engh–Huber bond lengths and angles.

    Residue ``i`` owns ``phi[i]`` = C(i−1)–N–CA–C, ``psi[i]`` = N–CA–C–N(i+1) and
    ``omega[i]`` = CA(i)–C(i)–N(i+1)–CA(i+1) (the peptide bond after it), the same
    convention as :func:`backbone_dihedrals`. ``phi[..., 0]`` and ``omega[..., -1]``
    are unused (may be NaN). O(i) lies in the peptide plane, anti to N(i+1): its
    N–CA–C–O torsion is ``psi[i] + 180``; the last residue's O uses its own psi,
    so every psi must be finite.

    Args:
        phi, psi: ``[..., L]`` degrees.
        omega: ``[..., L]`` degrees; None = all trans (180°).

    Returns:
        ``[..., L, 4, 3]`` Å; the first residue has N at the origin, CA on +x, C in the xy-plane.
    """
    phi = np.asarray(phi, dtype=np.float64)
    psi = np.asarray(psi, dtype=np.float64)
    omega = np.full_like(phi, 180.0) if omega is None else np.asarray(omega, dtype=np.float64)
    if phi.ndim == 0 or phi.shape[-1] < 1 or psi.shape != phi.shape or omega.shape != phi.shape:
        raise ValueError(
            f"phi, psi, omega must share a shape [..., L] with L >= 1, got {phi.shape}, {psi.shape}, {omega.shape}"
        )
    if not (np.isfinite(phi[..., 1:]).all() and np.isfinite(psi).all() and np.isfinite(omega[..., :-1]).all()):
        raise ValueError("dihedrals must be finite (only phi[..., 0] and omega[..., -1] are unused)")
    length = phi.shape[-1]
    n, ca, c = (np.zeros(phi.shape + (3,)) for _ in range(3))
    ca[..., 0, 0] = BOND_N_CA
    c[..., 0, :2] = ca[..., 0, :2] + BOND_CA_C * np.array(
        [np.cos(np.radians(180.0 - ANGLE_N_CA_C)), np.sin(np.radians(180.0 - ANGLE_N_CA_C))]
    )
    # Growing a chain is sequential (each atom hangs on the previous three); batch dims are vectorised.
    for i in range(length - 1):
        n[..., i + 1, :] = place_atom(n[..., i, :], ca[..., i, :], c[..., i, :], BOND_C_N, ANGLE_CA_C_N, psi[..., i])
        ca[..., i + 1, :] = place_atom(
            ca[..., i, :], c[..., i, :], n[..., i + 1, :], BOND_N_CA, ANGLE_C_N_CA, omega[..., i]
        )
        c[..., i + 1, :] = place_atom(
            c[..., i, :], n[..., i + 1, :], ca[..., i + 1, :], BOND_CA_C, ANGLE_N_CA_C, phi[..., i + 1]
        )
    o = place_atom(n, ca, c, BOND_C_O, ANGLE_CA_C_O, psi + 180.0)
    return np.stack([n, ca, c, o], axis=-2)


def ideal_helix(length: int) -> np.ndarray:
    """Ideal right-handed alpha helix, ``[length, 4, 3]`` Å (phi −57°, psi −47°, omega 180°)."""
    return build_backbone(np.full(length, HELIX_PHI_PSI[0]), np.full(length, HELIX_PHI_PSI[1]))


def ideal_strand(length: int) -> np.ndarray:
    """Ideal extended beta strand, ``[length, 4, 3]`` Å (phi −120°, psi +130°, omega 180°)."""
    return build_backbone(np.full(length, STRAND_PHI_PSI[0]), np.full(length, STRAND_PHI_PSI[1]))


def random_coil(length: int, seed: int = 0) -> np.ndarray:
    """A statistical random coil, ``[length, 4, 3]`` Å: Engh–Huber bond geometry and trans peptides, each
    residue's (phi, psi) drawn independently from one of :data:`COIL_BASINS` (equal odds) with a Gaussian
    spread of :data:`COIL_SPREAD` degrees. Every residue is locally protein-like, but the chain has no
    tertiary structure (and may clash with itself). Seeded: the same ``seed`` gives the same chain."""
    rng = np.random.default_rng(seed)
    dihedrals = np.asarray(COIL_BASINS)[rng.integers(len(COIL_BASINS), size=length)]
    dihedrals = dihedrals + rng.normal(0.0, COIL_SPREAD, size=dihedrals.shape)
    return build_backbone(dihedrals[:, 0], dihedrals[:, 1])


def bond_lengths(coords) -> dict[str, np.ndarray]:
    """Covalent backbone bond lengths in Å.

    Returns ``{"N-CA": [L], "CA-C": [L], "C-O": [L], "C-N": [L-1]}``; ``C-N[i]`` is the
    peptide bond C(i)–N(i+1).
    """
    x = as_backbone(coords)
    n, ca, c, o = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
    return {
        "N-CA": np.linalg.norm(ca - n, axis=-1),
        "CA-C": np.linalg.norm(c - ca, axis=-1),
        "C-O": np.linalg.norm(o - c, axis=-1),
        "C-N": np.linalg.norm(n[1:] - c[:-1], axis=-1),
    }


def bond_angles(coords) -> dict[str, np.ndarray]:
    """Backbone bond angles in degrees.

    Returns ``{"N-CA-C": [L], "CA-C-O": [L], "CA-C-N": [L-1], "C-N-CA": [L-1]}``; the last
    two span the peptide bond between residues i and i+1 and are indexed by i.
    """
    x = as_backbone(coords)
    n, ca, c, o = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
    return {
        "N-CA-C": angle(n, ca, c),
        "CA-C-O": angle(ca, c, o),
        "CA-C-N": angle(ca[:-1], c[:-1], n[1:]),
        "C-N-CA": angle(c[:-1], n[1:], ca[1:]),
    }


def backbone_dihedrals(coords) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backbone dihedrals ``(phi, psi, omega)``, each ``[L]`` degrees in (−180, 180].

    ``phi[i]`` = C(i−1)–N–CA–C, ``psi[i]`` = N–CA–C–N(i+1), ``omega[i]`` =
    CA(i)–C(i)–N(i+1)–CA(i+1) (the peptide bond following residue i). Undefined
    entries are NaN: ``phi[0]``, ``psi[-1]``, ``omega[-1]``. Needs L >= 2.
    """
    x = as_backbone(coords, min_residues=2)
    n, ca, c = x[:, 0], x[:, 1], x[:, 2]
    phi, psi, omega = (np.full(len(x), np.nan) for _ in range(3))
    phi[1:] = dihedral(c[:-1], n[1:], ca[1:], c[1:])
    psi[:-1] = dihedral(n[:-1], ca[:-1], c[:-1], n[1:])
    omega[:-1] = dihedral(ca[:-1], c[:-1], n[1:], ca[1:])
    return phi, psi, omega


def ca_distances(coords) -> np.ndarray:
    """Distances between consecutive CA atoms, ``[L-1]`` Å. Needs L >= 2."""
    ca = as_backbone(coords, min_residues=2)[:, 1]
    return np.linalg.norm(ca[1:] - ca[:-1], axis=-1)


def radius_of_gyration(coords) -> float:
    """Radius of gyration of the CA atoms in Å (unweighted)."""
    ca = as_backbone(coords)[:, 1]
    return float(np.sqrt(np.mean(np.sum((ca - ca.mean(axis=0)) ** 2, axis=-1))))

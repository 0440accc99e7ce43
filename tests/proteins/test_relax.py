"""Restrained backbone relaxation: ideal input stays put, noise and clashes are repaired, E(3) commutes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from molgen.proteins.geometry import build_backbone, ideal_helix, ideal_strand
from molgen.proteins.metrics import validate_backbone
from molgen.proteins.relax import covalent_energy, relax_backbone, relax_backbones, relaxation_summary
from tests.equivariance_utils import random_rotation


def _noisy_helix(length: int = 24, noise: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    ideal = ideal_helix(length)
    return ideal, ideal + np.random.default_rng(seed).normal(scale=noise, size=ideal.shape)


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a - b) ** 2).sum(-1).mean()))


@pytest.mark.parametrize("backbone", [ideal_helix(30), ideal_strand(20)], ids=["helix", "strand"])
def test_ideal_backbones_stay_put(backbone):
    assert float(covalent_energy(torch.as_tensor(backbone))) < 1e-12
    relaxed = relax_backbone(backbone)
    assert relaxed.rmsd < 1e-6 and relaxed.ca_rmsd < 1e-6
    assert validate_backbone(relaxed.coords).passes


def test_relaxation_repairs_noisy_geometry_towards_the_truth():
    ideal, noisy = _noisy_helix()
    before = validate_backbone(noisy)
    assert before.residue_pass_fraction < 0.9 and not before.passes
    relaxed = relax_backbone(noisy)
    after = validate_backbone(relaxed.coords)
    assert after.passes and after.residue_pass_fraction == 1.0
    # The restraint keeps the structure, the covalent terms remove most of the noise.
    assert _rms(relaxed.coords, ideal) < 0.6 * _rms(noisy, ideal)
    assert relaxed.rmsd == pytest.approx(_rms(relaxed.coords, noisy))
    assert after.secondary_structure == validate_backbone(ideal).secondary_structure


def test_relaxation_removes_clashes_between_chain_segments():
    """Random dihedrals on ideal bonds: a chain that runs into itself, with nothing else wrong."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        backbone = build_backbone(rng.uniform(-180, 180, 30), rng.uniform(-180, 180, 30))
        before = validate_backbone(backbone)
        if before.num_clashes and before.num_chain_breaks == 0:
            break
    assert before.num_clashes > 0 and before.residue_pass_fraction == 1.0
    relaxed = relax_backbone(backbone)
    after = validate_backbone(relaxed.coords)
    assert after.num_clashes == 0 and after.passes
    assert relaxed.rmsd < 1.0


def test_a_tighter_restraint_moves_atoms_less():
    _, noisy = _noisy_helix(noise=0.3, seed=1)
    moved = [relax_backbone(noisy, restraint_sigma=sigma).rmsd for sigma in (0.01, 0.1, 1.0)]
    assert moved[0] < 0.3 * moved[2] and moved[0] < moved[1] < moved[2]


def test_a_per_residue_restraint_holds_those_residues():
    """What `sample --motif --relax` uses: an intact motif held with a tight restraint stays put while the
    noisy rest repairs its geometry (and a loose restraint lets the motif move)."""
    ideal, noisy = _noisy_helix(noise=0.3, seed=1)
    start = noisy.copy()
    start[:10] = ideal[:10]  # the motif: ideal geometry, next to a noisy generated part
    sigma = np.full(len(noisy), 1.0)
    sigma[:10] = 0.05

    def moved(restraint):
        relaxed = relax_backbone(start, restraint_sigma=restraint)
        assert validate_backbone(relaxed.coords).passes
        return np.sqrt(((relaxed.coords - start) ** 2).sum(-1).mean(-1))  # per residue, Å

    held, loose = moved(sigma), moved(1.0)
    assert held[:10].max() < 0.1 and held[:10].mean() < 0.5 * loose[:10].mean()
    with pytest.raises(ValueError, match="per-residue restraint_sigma must be"):
        relax_backbone(noisy, restraint_sigma=np.ones(3))
    with pytest.raises(ValueError, match="positive"):
        relax_backbone(noisy, restraint_sigma=np.zeros(len(noisy)))


def test_relaxation_commutes_with_rotation_and_translation():
    _, noisy = _noisy_helix(length=16, noise=0.2, seed=2)
    rotation = random_rotation(torch.float64, generator=torch.Generator().manual_seed(3)).numpy()
    shift = np.array([5.0, -12.0, 30.0])
    # Run to convergence: L-BFGS stopped early stops at slightly different points (~1e-4 Å).
    moved = relax_backbone(noisy @ rotation.T + shift, max_iterations=3000)
    plain = relax_backbone(noisy, max_iterations=3000)
    np.testing.assert_allclose(moved.coords, plain.coords @ rotation.T + shift, atol=1e-5)
    assert moved.rmsd == pytest.approx(plain.rmsd, abs=1e-6)


def test_many_backbones_and_their_summary():
    ideal, noisy = _noisy_helix(length=12)
    relaxed = relax_backbones([ideal, noisy])
    assert relaxed[0].rmsd < 1e-6 < relaxed[1].rmsd
    summary = relaxation_summary(relaxed)
    assert summary["num_structures"] == 2
    assert summary["rmsd_max"] == pytest.approx(relaxed[1].rmsd)
    assert summary["rmsd_mean"] == pytest.approx(relaxed[1].rmsd / 2)


@pytest.mark.parametrize(
    "coords,options,message",
    [
        (np.full((5, 4, 3), np.nan), {}, "finite"),
        (np.zeros((5, 3, 3)), {}, "shape"),
        (ideal_helix(5), {"restraint_sigma": 0.0}, "restraint_sigma"),
        (ideal_helix(5), {"restraint_sigma": float("nan")}, "restraint_sigma"),
        (ideal_helix(5), {"max_iterations": 0}, "max_iterations"),
    ],
)
def test_bad_input_is_refused(coords, options, message):
    with pytest.raises(ValueError, match=message):
        relax_backbone(coords, **options)

"""Tests for molgen.proteins.internal_coordinates: a CA trace's virtual angles and the trace rebuilt from them."""

import math

import numpy as np
import pytest
import torch

from molgen.proteins.geometry import ideal_helix, ideal_strand
from molgen.proteins.internal_coordinates import (
    THETA_RANGE,
    angle_features,
    angles_from_features,
    ca_internal_coordinates,
    ca_trace_from_internal,
    ca_traces_from_features,
    feature_angles,
)
from tests.equivariance_utils import random_rotation


def _kabsch_rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """RMSD after the best proper rotation and translation (no reflection)."""
    a, b = a - a.mean(0), b - b.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    return float(np.sqrt(((a @ (u @ d @ vt) - b) ** 2).sum(-1).mean()))


def _random_trace(length: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    theta = np.radians(rng.uniform(80, 150, length))
    tau = rng.uniform(-math.pi, math.pi, length)
    return ca_trace_from_internal(theta, tau)


def test_ideal_helix_and_strand_have_the_textbook_virtual_angles():
    """CA virtual bond angle / torsion: alpha helix about 91° / +50°, strand about 120° / -170° (or +190°)."""
    theta, tau = ca_internal_coordinates(ideal_helix(12)[:, 1])
    assert np.degrees(np.nanmean(theta)) == pytest.approx(91, abs=3)
    assert np.degrees(np.nanmean(tau)) == pytest.approx(50, abs=5)
    theta, tau = ca_internal_coordinates(ideal_strand(12)[:, 1])
    assert np.degrees(np.nanmean(theta)) == pytest.approx(120, abs=8)
    assert np.all(np.abs(np.degrees(tau[1:-2])) > 150)


def test_undefined_entries_are_nan_at_the_chain_ends():
    theta, tau = ca_internal_coordinates(_random_trace(6))
    assert np.isnan(theta[[0, -1]]).all() and np.isfinite(theta[1:-1]).all()
    assert np.isnan(tau[[0, -2, -1]]).all() and np.isfinite(tau[1:-2]).all()
    features = angle_features(theta, tau)
    assert features.dtype == np.float32 and features.shape == (6, 3)
    assert (features[0] == 0).all() and (features[-1] == 0).all() and (features[-2, 1:] == 0).all()


def test_rigid_motions_keep_the_angles_and_a_reflection_flips_the_torsions():
    """Float64: rotation and translation change nothing; a mirror image has every torsion negated."""
    ca = _random_trace(20, seed=1)
    theta, tau = ca_internal_coordinates(ca)
    rotation = random_rotation().numpy()
    moved = ca @ rotation.T + np.array([3.0, -7.0, 11.0])
    theta_moved, tau_moved = ca_internal_coordinates(moved)
    np.testing.assert_allclose(theta_moved, theta, atol=1e-12)
    np.testing.assert_allclose(tau_moved, tau, atol=1e-12)
    theta_mirror, tau_mirror = ca_internal_coordinates(ca * np.array([-1.0, 1.0, 1.0]))
    np.testing.assert_allclose(theta_mirror, theta, atol=1e-12)
    np.testing.assert_allclose(tau_mirror, -tau, atol=1e-12)


def test_a_trace_is_rebuilt_from_its_angles_up_to_a_rigid_motion():
    """An ideal helix's and strand's traces come back within 0.05 Å RMSD (their CA-CA steps are within 0.01 Å of
    the rebuild's 3.80; a mirror image would be Å away), and a rebuilt trace's angles are the ones given, to 1e-9
    rad."""
    for coords in (ideal_helix(15), ideal_strand(15)):
        ca = coords[:, 1]
        rebuilt = ca_trace_from_internal(*ca_internal_coordinates(ca))
        np.testing.assert_allclose(np.linalg.norm(np.diff(rebuilt, axis=0), axis=1), 3.80)
        assert np.abs(np.linalg.norm(np.diff(ca, axis=0), axis=1) - 3.80).max() < 0.01
        assert _kabsch_rmsd(rebuilt, ca) < 0.05
        assert _kabsch_rmsd(rebuilt * np.array([1.0, 1.0, -1.0]), ca) > 1.0
    ca = _random_trace(30, seed=2)
    theta, tau = ca_internal_coordinates(ca)
    theta2, tau2 = ca_internal_coordinates(ca_trace_from_internal(theta, tau))
    np.testing.assert_allclose(theta2[1:-1], theta[1:-1], atol=1e-9)
    np.testing.assert_allclose(np.angle(np.exp(1j * (tau2[1:-2] - tau[1:-2]))), 0.0, atol=1e-9)


def test_features_read_back_to_the_angles():
    ca = _random_trace(12, seed=3)
    theta, tau = ca_internal_coordinates(ca)
    back_theta, back_tau = angles_from_features(angle_features(theta, tau))
    np.testing.assert_allclose(back_theta[1:-1], theta[1:-1], atol=1e-5)
    np.testing.assert_allclose(back_tau[1:-2], tau[1:-2], atol=1e-5)
    # a scaled (cos, sin) pair gives the same torsion; an angle beyond the range is clipped
    scaled = np.array([[10.0, 0.3, 0.4], [-10.0, -2.0, 0.0]])
    theta, tau = angles_from_features(scaled)
    np.testing.assert_allclose(np.degrees(theta), [THETA_RANGE[1], THETA_RANGE[0]])
    np.testing.assert_allclose(tau, [math.atan2(0.4, 0.3), math.pi])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"\[L, 3\]"):
        ca_internal_coordinates(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="finite"):
        ca_trace_from_internal(np.full(6, np.nan), np.zeros(6))
    with pytest.raises(ValueError, match="theta and tau"):
        ca_trace_from_internal(np.zeros(6), np.zeros(5))


def test_batched_torch_rebuild_matches_the_numpy_one_whatever_the_padding():
    """Float64: padded chains of a batch rebuild, atom for atom, as each chain alone does with numpy (an atom
    depends only on the features before it)."""
    rng = np.random.default_rng(3)
    lengths = [12, 5, 2, 1]
    features = torch.zeros(len(lengths), max(lengths), 3, dtype=torch.float64)
    expected = []
    for row, length in enumerate(lengths):
        theta, tau = np.radians(rng.uniform(80, 150, length)), rng.uniform(-np.pi, np.pi, length)
        chain = angle_features(theta, tau).astype(np.float64)
        features[row, :length] = torch.from_numpy(chain)
        features[row, length:] = torch.from_numpy(rng.normal(size=(max(lengths) - length, 3)))  # padding
        expected.append(ca_trace_from_internal(*angles_from_features(chain)))
    traces = ca_traces_from_features(features)
    assert traces.shape == (4, 12, 3) and traces.dtype == torch.float64
    for row, length in enumerate(lengths):
        np.testing.assert_allclose(traces[row, :length].numpy(), expected[row], atol=1e-10)
    theta, tau = feature_angles(features)
    np.testing.assert_allclose(theta[0].numpy(), angles_from_features(features[0].numpy())[0], atol=1e-12)

"""Tests for molgen.nn.radial.GaussianRadialBasis."""

import pytest
import torch

from molgen.nn.radial import GaussianRadialBasis


def test_values_at_centres_and_spacing():
    basis = GaussianRadialBasis(num_basis=5, cutoff=2.0)  # centres 0, 0.5, 1, 1.5, 2
    features = basis(torch.tensor([0.0, 1.0, 1.25, 10.0], dtype=torch.float64))
    assert features.shape == (4, 5) and features.dtype == torch.float64
    torch.testing.assert_close(features[0, 0], torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(features[1, 2], torch.tensor(1.0, dtype=torch.float64))
    # Half-way between two centres both read exp(-(0.5)^2).
    expected = torch.exp(torch.tensor(-0.25, dtype=torch.float64))
    torch.testing.assert_close(features[2, 2:4], expected.repeat(2))
    assert features[3].max() < 1e-30, "far beyond the cutoff every feature vanishes"


def test_features_are_smooth_in_distance():
    basis = GaussianRadialBasis(num_basis=16, cutoff=2.0)
    d = torch.linspace(0.0, 2.0, 201, dtype=torch.float64)
    steps = basis(d).diff(dim=0).abs().max()
    assert steps < 0.1, "a 0.01 step in distance must not jump a feature"


@pytest.mark.parametrize("num_basis, cutoff", [(1, 2.0), (8, 0.0), (8, -1.0)])
def test_invalid_options_raise(num_basis, cutoff):
    with pytest.raises(ValueError):
        GaussianRadialBasis(num_basis, cutoff)

"""Inpainting (a fixed part) on the Gaussian toy, whose conditional is known in closed form."""

import pytest
import torch

from molgen.diffusion import GaussianDiffusion, PolynomialSchedule, make_sampler
from molgen.diffusion.inpainting import KnownPart
from molgen.graph_batch import graph_mean
from tests.diffusion.test_samplers import H_MEAN, H_STD, POS_STD, gaussian_oracle

N_KNOWN, N_UNKNOWN = 3, 4


def known_part(graphs, offset=(0.0, 0.0, 0.0), dtype=torch.float64):
    """The same 3 known nodes (first in each graph), at fixed user coordinates, and their features."""
    n = N_KNOWN + N_UNKNOWN
    shape = torch.tensor([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.3, 2.0, -0.4]], dtype=dtype) + torch.tensor(offset)
    mask = torch.zeros(graphs, n, dtype=torch.bool)
    mask[:, :N_KNOWN] = True
    pos = torch.zeros(graphs, n, 3, dtype=dtype)
    pos[:, :N_KNOWN] = shape
    h = torch.zeros(graphs, n, 2, dtype=dtype)
    h[:, :N_KNOWN] = torch.tensor([[2.0, -1.0], [0.0, 0.5], [1.0, 1.0]], dtype=dtype)
    return KnownPart(mask.reshape(-1), pos.reshape(-1, 3), h.reshape(-1, 2)), shape


def run(sampler_name, graphs, known, steps=100, seed=0, **options):
    schedule = PolynomialSchedule()
    sampler = make_sampler(sampler_name, GaussianDiffusion(schedule), steps, **options)
    return sampler.sample(
        gaussian_oracle(schedule),
        torch.full((graphs,), N_KNOWN + N_UNKNOWN),
        2,
        known=known,
        generator=torch.Generator().manual_seed(seed),
        dtype=torch.float64,
    )


@pytest.mark.parametrize(
    "name, options",
    [
        ("ddpm", {}),
        ("ddim", {}),
        ("dpm-solver", {"eta": 1.0, "refine_steps": 2}),
        ("dpm-solver", {"eta": 1.0, "refine_steps": 3, "refine_time": 0.1, "polish_steps": 1}),
        ("ddpm", {"resample": 3}),
        ("dpm-solver", {"resample": 2}),
        ("consistency", {"resample": 2}),
    ],
)
def test_the_known_part_comes_back_exactly_where_it_was_given(name, options):
    known, shape = known_part(5)
    out = run(name, 5, known, steps=20, **options)
    pos = out.pos.view(5, -1, 3)
    assert (pos[:, :N_KNOWN] - shape).abs().max() < 1e-9
    assert (out.h.view(5, -1, 2)[:, :N_KNOWN] - known.h.view(5, -1, 2)[:, :N_KNOWN]).abs().max() < 1e-9
    assert (pos[:, N_KNOWN:] - shape.mean(0)).norm(dim=-1).max() > 0.1  # the rest is generated around it


def test_the_unknown_part_follows_the_closed_form_conditional():
    """For the isotropic target, given the known part's shape: the unknown part's shape has per-dof
    variance POS_STD**2 and the offset between the two centroids is N(0, POS_STD**2 (1/nK + 1/nU))
    per coordinate; unknown features keep their N(H_MEAN, H_STD**2). (400 steps: at 100, ancestral
    sampling itself shrinks the variances by about 5 %.)"""
    graphs = 4000
    known, shape = known_part(graphs)
    out = run("ddpm", graphs, known, steps=400)
    pos = out.pos.view(graphs, -1, 3)
    unknown = pos[:, N_KNOWN:]
    offset = unknown.mean(1) - shape.mean(0)
    centred = unknown - unknown.mean(1, keepdim=True)
    shape_var = centred.square().sum() / (graphs * 3 * (N_UNKNOWN - 1))
    assert shape_var.item() == pytest.approx(POS_STD**2, rel=0.05)
    assert offset.mean(0).abs().max() < 0.1
    expected = POS_STD**2 * (1 / N_KNOWN + 1 / N_UNKNOWN)
    torch.testing.assert_close(offset.var(0), torch.full((3,), expected, dtype=torch.float64), rtol=0.08, atol=0)
    h = out.h.view(graphs, -1, 2)[:, N_KNOWN:]
    assert h.mean().item() == pytest.approx(H_MEAN, abs=0.02)
    assert h.var().item() == pytest.approx(H_STD**2, rel=0.08)


def test_resampling_jumps_keep_the_conditional():
    """RePaint's jumps re-noise each step's result back to its start: on the toy the conditional is
    already exact, and it must stay so (shape and offset variances as above)."""
    graphs = 3000
    known, shape = known_part(graphs)
    out = run("ddpm", graphs, known, steps=200, resample=3)
    unknown = out.pos.view(graphs, -1, 3)[:, N_KNOWN:]
    centred = unknown - unknown.mean(1, keepdim=True)
    assert (centred.square().sum() / (graphs * 3 * (N_UNKNOWN - 1))).item() == pytest.approx(POS_STD**2, rel=0.06)
    offset = unknown.mean(1) - shape.mean(0)
    assert offset.var(0).mean().item() == pytest.approx(POS_STD**2 * (1 / N_KNOWN + 1 / N_UNKNOWN), rel=0.08)


def test_resampling_needs_a_fixed_part():
    with pytest.raises(ValueError, match="resample applies only when sampling with a fixed part"):
        run("ddpm", 2, None, steps=2, resample=2)


def test_translating_the_known_part_translates_the_samples():
    known, _ = known_part(6)
    moved, _ = known_part(6, offset=(10.0, -3.0, 2.5))
    a = run("ddpm", 6, known, steps=10, seed=4).pos
    b = run("ddpm", 6, moved, steps=10, seed=4).pos
    torch.testing.assert_close(b - a, torch.tensor([10.0, -3.0, 2.5], dtype=torch.float64).expand_as(a))


def test_every_graph_needs_a_known_node():
    known, _ = known_part(2)
    known.mask[N_KNOWN + N_UNKNOWN :] = False
    with pytest.raises(ValueError, match="at least one known node"):
        run("ddpm", 2, known, steps=2)


def test_without_a_known_part_nothing_changes():
    plain = run("ddpm", 3, None, steps=5)
    assert graph_mean(plain.pos, plain.batch).abs().max() < 1e-10

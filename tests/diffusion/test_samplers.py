"""Samplers against a Gaussian toy whose optimal denoiser is known in closed form."""

import pytest
import torch

from molgen.diffusion import GaussianDiffusion, PolynomialSchedule, make_sampler
from molgen.diffusion.gaussian import graph_mean, remove_mean

POS_STD, H_MEAN, H_STD = 1.7, 0.5, 0.3


def gaussian_oracle(schedule):
    """Exact E[eps | z_t] when pos ~ N(0, POS_STD^2) on the zero-CoM subspace and h ~ N(H_MEAN, H_STD^2)."""

    def denoiser(pos, h, t, batch):
        a, s = schedule.alpha(t)[batch, None], schedule.sigma(t)[batch, None]
        eps_pos = s * remove_mean(pos, batch) / (a**2 * POS_STD**2 + s**2)
        eps_h = s * (h - a * H_MEAN) / (a**2 * H_STD**2 + s**2)
        return eps_pos, eps_h

    return denoiser


def test_ancestral_sampler_recovers_gaussian_target():
    schedule = PolynomialSchedule()
    diffusion = GaussianDiffusion(schedule)
    sampler = make_sampler("ddpm", diffusion, num_steps=500)
    n, graphs = 4, 3000
    pos, h, batch = sampler.sample(
        gaussian_oracle(schedule),
        torch.full((graphs,), n),
        num_features=2,
        generator=torch.Generator().manual_seed(0),
        dtype=torch.float64,
    )
    assert graph_mean(pos, batch).abs().max() < 1e-10
    # per-dof variance of positions on the subspace: ||x||^2 / (3 (n - 1))
    per_dof_var = (pos**2).sum() / (graphs * 3 * (n - 1))
    assert per_dof_var.item() == pytest.approx(POS_STD**2, rel=0.05)
    assert h.mean().item() == pytest.approx(H_MEAN, abs=0.02)
    assert h.std().item() == pytest.approx(H_STD, rel=0.05)


def test_sampler_is_reproducible_and_conditions():
    schedule = PolynomialSchedule()
    sampler = make_sampler("ddpm", GaussianDiffusion(schedule, diffuse_features=False), num_steps=20)
    h_cond = torch.randn(7, 2)
    runs = [
        sampler.sample(
            gaussian_oracle(schedule),
            torch.tensor([3, 4]),
            2,
            h_condition=h_cond,
            generator=torch.Generator().manual_seed(3),
        )
        for _ in range(2)
    ]
    torch.testing.assert_close(runs[0][0], runs[1][0], rtol=0, atol=0)
    assert torch.equal(runs[0][1], h_cond)
    with pytest.raises(ValueError, match="h_condition"):
        sampler.sample(gaussian_oracle(schedule), torch.tensor([3]), 2)


def test_bad_sampler_arguments():
    diffusion = GaussianDiffusion(PolynomialSchedule())
    with pytest.raises(ValueError, match="unknown sampler"):
        make_sampler("euler", diffusion, 10)
    with pytest.raises(ValueError, match="num_steps"):
        make_sampler("ddpm", diffusion, 0)

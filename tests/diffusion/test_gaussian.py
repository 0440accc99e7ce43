import pytest
import torch

from molgen.diffusion.gaussian import GaussianDiffusion, zero_com_noise
from molgen.diffusion.process import GraphState
from molgen.diffusion.schedules import PolynomialSchedule
from molgen.graph_batch import graph_mean


def _batch(sizes):
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def test_zero_com_noise_is_standard_normal_on_subspace():
    n, reps = 4, 20000
    batch = _batch([n] * reps)
    g = torch.Generator().manual_seed(0)
    noise = zero_com_noise(torch.empty(n * reps, 3, dtype=torch.float64), batch, g)
    assert graph_mean(noise, batch).abs().max() < 1e-12
    # E ||noise||^2 per graph = 3 (n - 1): the dimension of the subspace
    sq = torch.zeros(reps, dtype=torch.float64).index_add_(0, batch, (noise**2).sum(1))
    assert sq.mean().item() == pytest.approx(3 * (n - 1), rel=0.02)


def test_forward_process_moments_match_closed_form():
    """q(z_t | x): mean alpha_t x (centred), per-coordinate variance sigma_t^2 (1 - 1/n)."""
    diffusion = GaussianDiffusion(PolynomialSchedule())
    n, reps = 5, 40000
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(n, 3, dtype=torch.float64, generator=g) + 2.0
    h0 = torch.randn(n, 2, dtype=torch.float64, generator=g)
    batch = _batch([n] * reps)
    t = torch.full((reps,), 0.6, dtype=torch.float64)
    pos_t, h_t, eps_pos, _ = diffusion.add_noise(x0.repeat(reps, 1), h0.repeat(reps, 1), t, batch, g)

    alpha = diffusion.schedule.alpha(t[0]).item()
    sigma = diffusion.schedule.sigma(t[0]).item()
    pos_t = pos_t.view(reps, n, 3)
    h_t = h_t.view(reps, n, 2)
    x0c = x0 - x0.mean(0)
    torch.testing.assert_close(pos_t.mean(0), alpha * x0c, atol=0.02, rtol=0)
    torch.testing.assert_close(
        pos_t.var(0), torch.full((n, 3), sigma**2 * (1 - 1 / n), dtype=torch.float64), atol=0.02, rtol=0
    )
    torch.testing.assert_close(h_t.mean(0), alpha * h0, atol=0.02, rtol=0)
    torch.testing.assert_close(h_t.var(0), torch.full((n, 2), sigma**2, dtype=torch.float64), atol=0.02, rtol=0)
    assert graph_mean(pos_t.view(-1, 3), batch).abs().max() < 1e-10
    assert graph_mean(eps_pos, batch).abs().max() < 1e-10


def test_loss_is_normalised_per_degree_of_freedom():
    """A zero predictor scores exactly E||eps||^2 / dof = 1; the true noise scores 0."""
    diffusion = GaussianDiffusion(PolynomialSchedule())
    sizes = [3, 9] * 2000
    batch = _batch(sizes)
    pos = torch.randn(len(batch), 3, dtype=torch.float64)
    h = torch.randn(len(batch), 6, dtype=torch.float64)

    def zero(pos_t, h_t, t, batch):
        return torch.zeros_like(pos_t), torch.zeros_like(h_t)

    clean = GraphState(pos, h, batch, len(sizes))
    loss, parts = diffusion.loss(zero, clean, generator=torch.Generator().manual_seed(0))
    assert parts == {}
    assert loss.shape == (len(sizes),)
    assert loss.mean().item() == pytest.approx(1.0, abs=0.02)

    t = torch.rand(len(sizes), dtype=torch.float64)
    _, _, eps_pos, eps_h = diffusion.add_noise(pos, h, t, batch, torch.Generator().manual_seed(5))

    def oracle(pos_t, h_t, t, batch):
        return eps_pos, eps_h

    exact, _ = diffusion.loss(oracle, clean, t=t, generator=torch.Generator().manual_seed(5))
    assert exact.abs().max() < 1e-20


def test_a_model_without_coordinates_diffuses_its_features_alone():
    """Positions [N, 0] (internal-coordinate chains): no position degrees of freedom, so the loss is the features'
    squared error per feature (a zero predictor scores E||eps||^2 / (n F) = 1, each graph exactly its own mean), and
    a sampler draws and keeps [N, 0] positions."""
    from molgen.diffusion.samplers import AncestralSampler

    diffusion = GaussianDiffusion(PolynomialSchedule())
    sizes = [3, 9] * 2000
    batch = _batch(sizes)
    h = torch.randn(len(batch), 3, dtype=torch.float64)
    clean = GraphState(torch.zeros(len(batch), 0, dtype=torch.float64), h, batch, len(sizes))
    t = torch.rand(len(sizes), dtype=torch.float64)
    _, _, eps_pos, eps_h = diffusion.add_noise(clean.pos, h, t, batch, torch.Generator().manual_seed(5))
    assert eps_pos.shape == (len(batch), 0)

    def zero(pos_t, h_t, t, batch):
        return torch.zeros_like(pos_t), torch.zeros_like(h_t)

    loss, _ = diffusion.loss(zero, clean, t=t, generator=torch.Generator().manual_seed(5))
    per_graph = torch.zeros(len(sizes), dtype=torch.float64).index_add_(0, batch, (eps_h**2).sum(1))
    torch.testing.assert_close(loss, per_graph / (3 * torch.tensor(sizes, dtype=torch.float64)))
    assert loss.mean().item() == pytest.approx(1.0, abs=0.02)

    state = AncestralSampler(diffusion, 4).sample(
        zero, torch.tensor([5, 2]), 3, generator=torch.Generator().manual_seed(0), position_dims=0
    )
    assert state.pos.shape == (7, 0) and state.h.shape == (7, 3) and torch.isfinite(state.h).all()


def test_conditioning_features_are_not_noised():
    diffusion = GaussianDiffusion(PolynomialSchedule(), diffuse_features=False)
    batch = _batch([4, 4])
    pos, h = torch.randn(8, 3), torch.randn(8, 4)
    _, h_t, _, eps_h = diffusion.add_noise(pos, h, torch.tensor([0.5, 0.9]), batch)
    assert torch.equal(h_t, h) and not eps_h.any()

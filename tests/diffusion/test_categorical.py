"""Marginal-transition categorical diffusion: forward law, posterior (against Bayes by brute force), reverse chain."""

import pytest
import torch

from molgen.diffusion.categorical import CategoricalDiffusion, sample_categorical
from molgen.diffusion.schedules import CosineSchedule, PolynomialSchedule

M = [0.6, 0.25, 0.1, 0.05]


def make(power=1.0, schedule=None, marginals=M):
    return CategoricalDiffusion(marginals, schedule or CosineSchedule(), power=power)


def test_sample_categorical_frequencies_and_one_draw_per_row():
    probs = torch.tensor([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    draws = sample_categorical(probs.repeat(20000, 1), torch.Generator().manual_seed(0)).view(20000, 3)
    freq = torch.stack([torch.bincount(draws[:, r], minlength=3) for r in range(3)]).double() / 20000
    torch.testing.assert_close(freq, probs, atol=0.012, rtol=0)
    # exactly one uniform per row: the generator state after N rows equals that after N plain draws
    a, b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    sample_categorical(probs, a)
    torch.rand(3, 1, generator=b, dtype=torch.float64)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))


@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_forward_frequencies_match_closed_form(t):
    diffusion = make(power=1.5)
    n = 40000
    x0 = torch.arange(4).repeat_interleave(n // 4)
    tt = torch.full((n,), t, dtype=torch.float64)
    xt = diffusion.add_noise(x0, tt, torch.Generator().manual_seed(1))
    abar = diffusion.abar(torch.tensor(t, dtype=torch.float64))
    for k in range(4):
        freq = torch.bincount(xt[x0 == k], minlength=4).double() / (n // 4)
        expected = abar * torch.nn.functional.one_hot(torch.tensor(k), 4) + (1 - abar) * torch.tensor(M).double()
        torch.testing.assert_close(freq, expected, atol=0.015, rtol=0)


def test_t1_is_the_marginal_and_t0_is_the_data():
    diffusion = make(power=1.5, schedule=PolynomialSchedule())
    x0 = torch.arange(4)
    one = diffusion.forward_probs(x0, torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(one, torch.tensor(M).double().expand(4, 4), atol=1e-6, rtol=0)
    zero = diffusion.forward_probs(x0, torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(zero, torch.eye(4, dtype=torch.float64), atol=1e-4, rtol=0)
    assert diffusion.abar(torch.tensor(1.0)).item() == pytest.approx(1e-5**1.5, rel=1e-3)
    # the prior is the marginal
    prior = diffusion.sample_prior(40000, torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(
        torch.bincount(prior, minlength=4).double() / 40000, torch.tensor(M).double(), atol=0.01, rtol=0
    )


def _transition(abar, m):
    """Q[i, j] = q(next = j | previous = i) of a marginal transition with keep-probability abar."""
    return abar * torch.eye(len(m), dtype=torch.float64) + (1 - abar) * m[None, :]


@pytest.mark.parametrize("t, s", [(0.9, 0.6), (0.5, 0.45), (0.3, 0.0), (1.0, 0.99)])
def test_posterior_equals_bayes_by_brute_force(t, s):
    diffusion = make(power=1.3, marginals=[0.7, 0.2, 0.1])
    m = diffusion.marginals()
    t_, s_ = torch.tensor(t, dtype=torch.float64), torch.tensor(s, dtype=torch.float64)
    abar_t, abar_s = diffusion.abar(t_), diffusion.abar(s_)
    q_s = _transition(abar_s, m)  # q(x_s | x_0)
    q_ts = _transition(abar_t / abar_s, m)  # q(x_t | x_s)
    # the two-step chain composes to q(x_t | x_0) of the closed form
    torch.testing.assert_close(q_s @ q_ts, _transition(abar_t, m), atol=1e-12, rtol=0)
    for x0 in range(3):
        for xt in range(3):
            joint = q_s[x0, :] * q_ts[:, xt]  # p(x_s, x_t | x_0) over x_s
            bayes = joint / joint.sum()
            p0 = torch.nn.functional.one_hot(torch.tensor([x0]), 3).double()
            got = diffusion.posterior(torch.tensor([xt]), p0, t_, s_)[0]
            torch.testing.assert_close(got, bayes, atol=1e-12, rtol=0)
    # a soft prediction mixes the exact posteriors with its own weights
    p0 = torch.tensor([[0.2, 0.5, 0.3]], dtype=torch.float64)
    for xt in range(3):
        expected = sum(
            p0[0, k] * diffusion.posterior(torch.tensor([xt]), torch.eye(3, dtype=torch.float64)[k : k + 1], t_, s_)[0]
            for k in range(3)
        )
        torch.testing.assert_close(diffusion.posterior(torch.tensor([xt]), p0, t_, s_)[0], expected, atol=1e-12, rtol=0)


def test_oracle_reverse_chain_recovers_data_and_follows_forward_marginals():
    diffusion = make(power=1.5)
    n, steps = 4000, 40
    gen = torch.Generator().manual_seed(3)
    x0 = sample_categorical(torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64).expand(n, 4), gen)
    logits = 50.0 * torch.nn.functional.one_hot(x0, 4).double()  # an oracle that knows x_0
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    x = diffusion.sample_prior(n, gen, dtype=torch.float64)
    for i in range(steps):
        x = diffusion.reverse_step(x, logits, grid[i], grid[i + 1], gen)
        if i + 1 == steps // 2:  # halfway, the chain's law is the forward marginal q(x_s | x_0)
            abar = diffusion.abar(grid[i + 1])
            kept = (x == x0).double().mean().item()
            m_of_x0 = diffusion.marginals()[x0].mean().item()
            assert kept == pytest.approx(abar.item() + (1 - abar.item()) * m_of_x0, abs=0.025)
    assert torch.equal(x, x0)


def test_temperature_sharpens_the_predicted_clean_classes():
    """At s = 0 the posterior is the predicted clean distribution, so draws at temperature T
    follow softmax(logits / T): p ∝ [0.6, 0.3, 0.1, 0] ** (1 / T)."""
    diffusion = make()
    n = 40000
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([0.6, 0.3, 0.1, 1e-12], dtype=torch.float64).log().expand(n, 4)
    x_t = diffusion.sample_prior(n, gen, dtype=torch.float64)
    t, s = torch.tensor(0.5, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    for temperature, expected in ((1.0, [0.6, 0.3, 0.1]), (0.5, [0.36 / 0.46, 0.09 / 0.46, 0.01 / 0.46])):
        draws = diffusion.reverse_step(x_t, logits, t, s, gen, temperature=temperature)
        freq = torch.bincount(draws, minlength=4).double() / n
        torch.testing.assert_close(freq[:3], torch.tensor(expected, dtype=torch.float64), atol=0.01, rtol=0)


def test_zero_marginals_are_floored_and_bad_arguments():
    diffusion = make(marginals=[0.5, 0.5, 0.0])
    assert diffusion.marginals()[2] > 0 and diffusion.marginals().sum().item() == pytest.approx(1.0)
    # a class that never occurs in the data still gets a finite posterior
    post = diffusion.posterior(torch.tensor([2]), torch.tensor([[0.5, 0.5, 0.0]]), torch.tensor(0.5), torch.tensor(0.4))
    assert torch.isfinite(post).all() and post.sum().item() == pytest.approx(1.0, abs=1e-5)
    for bad in ([1.0], [0.5, -0.1], [0.0, 0.0], [float("nan"), 1.0]):
        with pytest.raises(ValueError, match="marginals"):
            CategoricalDiffusion(bad, CosineSchedule())
    with pytest.raises(ValueError, match="power"):
        CategoricalDiffusion(M, CosineSchedule(), power=0.0)


def test_loss_is_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    x0 = torch.tensor([0, 2])
    expected = -torch.log_softmax(logits, -1)[torch.arange(2), x0]
    torch.testing.assert_close(CategoricalDiffusion.loss(logits, x0), expected)

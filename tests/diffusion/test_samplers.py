"""Samplers against a Gaussian toy whose optimal denoiser is known in closed form."""

import pytest
import torch

from molgen.diffusion import CosineSchedule, GaussianDiffusion, LogLinearSchedule, PolynomialSchedule, make_sampler
from molgen.diffusion.process import GraphState, Prediction
from molgen.diffusion.samplers import DDIMSampler, DPMSolverSampler, sampler_names
from molgen.graph_batch import graph_mean, remove_mean

POS_STD, H_MEAN, H_STD = 1.7, 0.5, 0.3


def gaussian_oracle(schedule):
    """Exact E[eps | z_t] when pos ~ N(0, POS_STD^2) on the zero-CoM subspace and h ~ N(H_MEAN, H_STD^2)."""

    def denoiser(pos, h, t, batch):
        a, s = schedule.alpha(t)[batch, None], schedule.sigma(t)[batch, None]
        eps_pos = s * remove_mean(pos, batch) / (a**2 * POS_STD**2 + s**2)
        eps_h = s * (h - a * H_MEAN) / (a**2 * H_STD**2 + s**2)
        return eps_pos, eps_h

    return denoiser


@pytest.mark.parametrize("schedule", [PolynomialSchedule(), LogLinearSchedule()], ids=lambda s: s.name)
def test_ancestral_sampler_recovers_gaussian_target(schedule):
    diffusion = GaussianDiffusion(schedule)
    sampler = make_sampler("ddpm", diffusion, num_steps=500)
    n, graphs = 4, 3000
    out = sampler.sample(
        gaussian_oracle(schedule),
        torch.full((graphs,), n),
        num_features=2,
        generator=torch.Generator().manual_seed(0),
        dtype=torch.float64,
    )
    pos, h, batch = out.pos, out.h, out.batch
    assert graph_mean(pos, batch).abs().max() < 1e-10
    # per-dof variance of positions on the subspace: ||x||^2 / (3 (n - 1))
    per_dof_var = (pos**2).sum() / (graphs * 3 * (n - 1))
    assert per_dof_var.item() == pytest.approx(POS_STD**2, rel=0.05)
    assert h.mean().item() == pytest.approx(H_MEAN, abs=0.02)
    assert h.std().item() == pytest.approx(H_STD, rel=0.05)


def ancestral_variance(schedule, grid, noise_scale, var=POS_STD**2):
    """Closed-form per-dof output variance of ancestral sampling on the toy, noise scaled by ``noise_scale``.

    The toy's optimal denoiser is linear, so each step is ``z_s = m z_t + noise_scale * std * noise``
    and the variance follows ``v_s = m**2 v_t + noise_scale**2 std**2`` from the prior's 1; the final
    clean prediction at ``t = 0`` multiplies by ``alpha_0 var / (alpha_0**2 var + sigma_0**2)``.
    """
    alpha, sigma = schedule.alpha(grid), schedule.sigma(grid)
    v = torch.tensor(1.0, dtype=torch.float64)
    for i in range(len(grid) - 1):
        alpha_ts = alpha[i] / alpha[i + 1]
        sigma_ts_sq = sigma[i] ** 2 - alpha_ts**2 * sigma[i + 1] ** 2
        eps_slope = sigma[i] / (alpha[i] ** 2 * var + sigma[i] ** 2)
        m = 1 / alpha_ts - sigma_ts_sq / (alpha_ts * sigma[i]) * eps_slope
        v = m**2 * v + noise_scale**2 * sigma_ts_sq * sigma[i + 1] ** 2 / sigma[i] ** 2
    final = alpha[-1] * var / (alpha[-1] ** 2 * var + sigma[-1] ** 2)
    return (final**2 * v).item()


@pytest.mark.parametrize("noise_scale", [1.0, 0.5, 0.25])
def test_ancestral_noise_scale_matches_the_closed_form_variance(noise_scale):
    # closed form on this 50-step grid: 2.32, 0.58, 0.14 (the target is 2.89: coarse ancestral steps
    # lose variance); a lower scale shrinks the samples roughly by its square
    schedule = LogLinearSchedule()
    sampler = make_sampler("ddpm", GaussianDiffusion(schedule), 50, noise_scale=noise_scale, grid="logsnr")
    expected = ancestral_variance(schedule, sampler.timesteps(dtype=torch.float64), noise_scale)
    graphs, n = 3000, 4
    pos, h, batch = sample_toy(sampler, graphs, n)
    assert graph_mean(pos, batch).abs().max() < 1e-10
    per_dof_var = (pos**2).sum() / (graphs * 3 * (n - 1))
    assert per_dof_var.item() == pytest.approx(expected, rel=0.04)  # Monte Carlo: ~1 % standard error
    # diffused features take the same temperature (a model that generates only features, such as a chain's
    # internal coordinates, is sampled at low temperature the same way)
    expected_h = ancestral_variance(schedule, sampler.timesteps(dtype=torch.float64), noise_scale, var=H_STD**2)
    assert h.var().item() == pytest.approx(expected_h, rel=0.04)


def test_ancestral_variance_closed_form_reaches_the_target_with_many_steps():
    schedule = LogLinearSchedule()
    grid = make_sampler("ddpm", GaussianDiffusion(schedule), 1000, grid="logsnr").timesteps(dtype=torch.float64)
    assert ancestral_variance(schedule, grid, 1.0) == pytest.approx(POS_STD**2, rel=0.02)  # 2.857
    assert ancestral_variance(schedule, grid, 0.0) < 1e-3  # posterior means alone collapse onto the mean (8e-5)


def test_bad_sampler_arguments():
    diffusion = GaussianDiffusion(PolynomialSchedule())
    with pytest.raises(ValueError, match="unknown sampler"):
        make_sampler("euler", diffusion, 10)
    with pytest.raises(ValueError, match="num_steps"):
        make_sampler("ddpm", diffusion, 0)
    valid = (
        r"\['noise_scale', 'grid', 'refine_steps', 'refine_time', 'class_temperature', 'constrained_decoding', "
        r"'resample', 'guidance', 'final_call', 'refine_classes', 'polish_steps', 'polish_time', 'polish_average'\]"
    )
    with pytest.raises(ValueError, match=r"unknown option.*eta.*valid options: " + valid):
        make_sampler("ddpm", diffusion, 10, eta=0.5)
    with pytest.raises(ValueError, match="unknown option"):
        make_sampler("dpm-solver", diffusion, 10, order=3)
    with pytest.raises(ValueError, match="eta"):
        make_sampler("ddim", diffusion, 10, eta=1.5)
    with pytest.raises(ValueError, match=r"noise_scale must be in \[0, 1\], got -0.1"):
        make_sampler("ddpm", diffusion, 10, noise_scale=-0.1)
    with pytest.raises(ValueError, match="unknown option.*noise_scale"):
        make_sampler("ddim", diffusion, 10, noise_scale=0.5)
    with pytest.raises(ValueError, match="time grid"):
        make_sampler("ddim", diffusion, 10, grid="karras")
    with pytest.raises(ValueError, match="refine_steps"):
        make_sampler("ddpm", diffusion, 10, refine_steps=-1)
    with pytest.raises(ValueError, match="refine_steps"):
        make_sampler("dpm-solver", diffusion, 10, refine_steps=1.5)
    with pytest.raises(ValueError, match="refine_time"):
        make_sampler("ddim", diffusion, 10, refine_time=0.0)
    with pytest.raises(ValueError, match=r"refine_time must be in \(0, 1\), got 1.5"):
        make_sampler("ddim", diffusion, 10, refine_steps=[2, 2], refine_time=[0.3, 1.5])
    with pytest.raises(ValueError, match=r"refine_time must list as many stages as refine_steps \(3\), got 2"):
        make_sampler("ddim", diffusion, 10, refine_steps=[2, 2, 1], refine_time=[0.3, 0.1])
    with pytest.raises(ValueError, match=r"refine_steps must be a number or a non-empty list, got \[\]"):
        make_sampler("ddim", diffusion, 10, refine_steps=[])
    with pytest.raises(ValueError, match="polish_steps must be a whole number >= 0, got -2"):
        make_sampler("ddim", diffusion, 10, polish_steps=-2)
    with pytest.raises(ValueError, match=r"polish_time must be in \(0, 1\), got 1.0"):
        make_sampler("ddim", diffusion, 10, polish_time=1.0)
    with pytest.raises(ValueError, match="polish_average must be a whole number >= 0, got 0.5"):
        make_sampler("ddim", diffusion, 10, polish_average=0.5)
    with pytest.raises(ValueError, match="class_temperature applies to models that generate bonds"):
        make_sampler("ddpm", diffusion, 10, class_temperature=0.5)
    with pytest.raises(ValueError, match="refine_classes applies to models that generate bonds"):
        make_sampler("ddpm", diffusion, 10, refine_steps=1, refine_classes=True)


def test_registry_and_options():
    diffusion = GaussianDiffusion(PolynomialSchedule())
    assert {"ddpm", "ddim", "dpm-solver"} <= set(sampler_names())
    ddim = make_sampler("ddim", diffusion, 10, eta=0.3)
    assert isinstance(ddim, DDIMSampler) and ddim.eta == 0.3 and ddim.grid == "time"
    solver = make_sampler("dpm-solver", diffusion, 10)
    assert isinstance(solver, DPMSolverSampler) and solver.grid == "logsnr"
    assert make_sampler("dpm-solver", diffusion, 10, grid="time").grid == "time"
    refined = make_sampler("dpm-solver", diffusion, 10, eta=1.0, refine_steps=2, refine_time=0.05)
    assert (refined.eta, refined.ladder) == (1.0, [(2, 0.05)])


@pytest.mark.parametrize("schedule", [PolynomialSchedule(), CosineSchedule(), LogLinearSchedule()])
def test_logsnr_grid_is_uniform_in_log_snr(schedule):
    sampler = make_sampler("dpm-solver", GaussianDiffusion(schedule), 8)
    grid = sampler.timesteps(dtype=torch.float64)
    assert grid[0].item() == 1.0 and grid[-1].item() == 0.0
    assert (grid[1:] < grid[:-1]).all()
    steps = schedule.log_snr(grid).diff()
    torch.testing.assert_close(steps, steps.mean().expand(8), rtol=1e-9, atol=0)


# ----- DDIM and DPM-Solver++(2M) --------------------------------------------


def sample_toy(sampler, num_graphs=3000, n=4, seed=0, record=None):
    """Run ``sampler`` on the toy in float64: ``(pos, h, batch)``; ``record`` (a dict) receives the prior draw."""
    oracle = gaussian_oracle(sampler.diffusion.schedule)

    def denoiser(pos, h, t, batch):
        if record is not None and not record:  # the first call sees the prior draw
            record.update(pos=pos.clone(), h=h.clone())
        return oracle(pos, h, t, batch)

    out = sampler.sample(
        denoiser,
        torch.full((num_graphs,), n),
        num_features=2,
        generator=torch.Generator().manual_seed(seed),
        dtype=torch.float64,
    )
    return out.pos, out.h, out.batch


def exact_ode_gain(schedule, var):
    """Variance gain (output / prior) of the exact probability-flow ODE plus the final clean prediction.

    For data ``N(mu, var)`` the marginals are ``N(alpha_t mu, m_t)`` with
    ``m_t = alpha_t**2 var + sigma_t**2`` and the flow is affine with slope
    ``sqrt(m_t / m_1)``; the loop's final ``predict_clean`` at ``t = 0`` has
    slope ``alpha_0 var / m_0``. Because ``log_snr`` is finite at both ends
    this is ``var`` to about 1e-5, not exactly.
    """
    ends = torch.tensor([1.0, 0.0], dtype=torch.float64)
    alpha, sigma = schedule.alpha(ends), schedule.sigma(ends)
    m = alpha**2 * var + sigma**2
    return (alpha[1] ** 2 * var**2 / (m[0] * m[1])).item()


def ode_errors(name, num_steps, **options):
    """Relative errors of a deterministic sampler's variance gain on the toy, (positions, features).

    The toy's optimal denoiser is linear, so a deterministic sampler maps the
    prior affinely with one slope per channel; comparing that slope with the
    exact flow's measures the discretisation error free of Monte Carlo noise.
    """
    schedule = PolynomialSchedule()
    prior = {}
    pos, h, _ = sample_toy(make_sampler(name, GaussianDiffusion(schedule), num_steps, **options), 2, record=prior)
    gain_pos = (pos**2).sum() / (prior["pos"] ** 2).sum()
    h_in, h_out = prior["h"] - prior["h"].mean(), h - h.mean()
    gain_h = ((h_in * h_out).sum() / (h_in**2).sum()) ** 2
    exact_pos, exact_h = exact_ode_gain(schedule, POS_STD**2), exact_ode_gain(schedule, H_STD**2)
    return abs(gain_pos.item() / exact_pos - 1), abs(gain_h.item() / exact_h - 1)


@pytest.mark.parametrize(
    "name, num_steps, options, tol",
    [
        # measured with this seed: variance -2.3%, -2.0%, +4.4%; feature std -2.0%, -2.3%, +1.8%
        # (DPM-Solver's 20-step bias alone is +3.7%, see the convergence tests)
        ("ddim", 100, {}, 0.05),
        ("ddim", 100, {"eta": 0.5}, 0.05),
        ("dpm-solver", 20, {}, 0.06),
    ],
)
def test_sampler_recovers_gaussian_target(name, num_steps, options, tol):
    graphs, n = 3000, 4
    pos, h, batch = sample_toy(make_sampler(name, GaussianDiffusion(PolynomialSchedule()), num_steps, **options))
    assert graph_mean(pos, batch).abs().max() < 1e-10
    per_dof_var = (pos**2).sum() / (graphs * 3 * (n - 1))
    assert per_dof_var.item() == pytest.approx(POS_STD**2, rel=tol)
    assert h.mean().item() == pytest.approx(H_MEAN, abs=0.02)
    assert h.std().item() == pytest.approx(H_STD, rel=tol)


def test_ddim_with_eta_one_is_the_ancestral_sampler():
    diffusion = GaussianDiffusion(PolynomialSchedule())
    ancestral = sample_toy(make_sampler("ddpm", diffusion, 20), 5)
    ddim = sample_toy(make_sampler("ddim", diffusion, 20, eta=1.0), 5)
    torch.testing.assert_close(ddim[0], ancestral[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(ddim[1], ancestral[1], rtol=0, atol=1e-10)


@pytest.mark.parametrize("name, options", [("ddpm", {}), ("ddim", {}), ("ddim", {"eta": 0.5}), ("dpm-solver", {})])
def test_samplers_are_reproducible_and_condition(name, options):
    schedule = PolynomialSchedule()
    sampler = make_sampler(name, GaussianDiffusion(schedule, diffuse_features=False), 10, **options)
    h_cond = torch.randn(7, 2, dtype=torch.float64)
    # the same instance twice: multistep state must not leak from one call into the next
    runs = [
        sampler.sample(
            gaussian_oracle(schedule),
            torch.tensor([3, 4]),
            2,
            condition=h_cond,
            generator=torch.Generator().manual_seed(3),
            dtype=torch.float64,
        )
        for _ in range(2)
    ]
    torch.testing.assert_close(runs[0].pos, runs[1].pos, rtol=0, atol=0)
    assert graph_mean(runs[0].pos, runs[0].batch).abs().max() < 1e-12
    assert torch.equal(runs[0].h, h_cond)
    with pytest.raises(ValueError, match="condition"):
        sampler.sample(gaussian_oracle(schedule), torch.tensor([3]), 2)


def test_ddim_eta_zero_is_a_converging_ode_solver():
    diffusion = GaussianDiffusion(PolynomialSchedule())
    # same seed = same prior draw; eta = 0 uses no further randomness
    coarse, fine = (sample_toy(make_sampler("ddim", diffusion, steps), 2)[0] for steps in (200, 400))
    assert (coarse - fine).abs().max() < 0.01 * fine.abs().max()
    # for Gaussian data the exact flow reproduces the target variance (up to the schedule's 1e-5 ends)
    assert exact_ode_gain(diffusion.schedule, POS_STD**2) == pytest.approx(POS_STD**2, rel=1e-4)
    # first order: the error against the exact flow halves with every doubling of steps
    errors = [ode_errors("ddim", steps)[0] for steps in (50, 100, 200, 400)]
    ratios = [b / a for a, b in zip(errors, errors[1:])]
    assert all(0.4 < r < 0.6 for r in ratios), errors
    assert errors[-1] < 0.01


def test_dpm_solver_is_second_order_and_beats_ddim_with_half_the_steps():
    # measured (positions, features) relative variance errors, default grids:
    #   DPM-Solver++(2M) 5/10/20 steps: 0.146/0.119, 0.085/0.076, 0.037/0.036
    #   DDIM(eta=0)     10/20/40 steps: 0.263/0.334, 0.141/0.182, 0.073/0.095
    for steps in (5, 10, 20):
        solver, ddim = ode_errors("dpm-solver", steps), ode_errors("ddim", 2 * steps)
        assert solver[0] < 0.75 * ddim[0] and solver[1] < 0.75 * ddim[1], (steps, solver, ddim)
    # second order: doubling the steps cuts the error about fourfold (measured 0.25)
    errors = [ode_errors("dpm-solver", steps)[0] for steps in (40, 80, 160)]
    assert all(b < 0.35 * a for a, b in zip(errors, errors[1:])), errors


def test_sde_dpm_solver_first_step_is_the_ancestral_step():
    # one step has no history (D = x0_hat): with eta = 1 it is the posterior draw, noise drawn in the same order
    diffusion = GaussianDiffusion(PolynomialSchedule())
    ancestral = sample_toy(make_sampler("ddpm", diffusion, 1), 5)
    sde = sample_toy(make_sampler("dpm-solver", diffusion, 1, eta=1.0), 5)
    torch.testing.assert_close(sde[0], ancestral[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(sde[1], ancestral[1], rtol=0, atol=1e-10)
    assert not torch.equal(sde[0], sample_toy(make_sampler("dpm-solver", diffusion, 1), 5)[0])


def test_sde_dpm_solver_recovers_gaussian_target_closer_than_ancestral():
    # measured relative errors (position variance, feature std), this seed, at 20 steps; at 50 steps:
    #   SDE-DPM-Solver++(2M), eta = 1:  (+8.0, +4.0) %;  (+2.0, +0.8) %
    #   DDPM, time grid:              (-16.9, -16.8) %;  (-7.4, -8.7) %
    graphs, n = 3000, 4
    diffusion = GaussianDiffusion(PolynomialSchedule())

    def errors(name, steps, **options):
        pos, h, batch = sample_toy(make_sampler(name, diffusion, steps, **options))
        assert graph_mean(pos, batch).abs().max() < 1e-10
        per_dof_var = (pos**2).sum() / (graphs * 3 * (n - 1))
        assert h.mean().item() == pytest.approx(H_MEAN, abs=0.03)
        return abs(per_dof_var.item() / POS_STD**2 - 1), abs(h.std().item() / H_STD - 1)

    for steps in (20, 50):
        sde, ancestral = errors("dpm-solver", steps, eta=1.0), errors("ddpm", steps)
        assert sde[0] < 0.6 * ancestral[0] and sde[1] < 0.6 * ancestral[1], (steps, sde, ancestral)
    assert max(errors("dpm-solver", 50, eta=1.0)) < 0.035
    assert max(errors("dpm-solver", 50, eta=0.5)) < 0.05


# ----- refinement after the loop ---------------------------------------------


@pytest.mark.parametrize("refine_steps, polish_steps, polish_average", [(1, 0, 0), (2, 0, 0), (2, 1, 0), (1, 1, 4)])
def test_refinement_shrinks_the_target_as_the_posterior_mean_predicts(refine_steps, polish_steps, polish_average):
    """Exact target samples through ``refine_steps`` refinements at 0.6, ``polish_steps`` at 0.3 and the mean of
    ``polish_average`` more at 0.3 with the exact denoiser.

    A round at time t maps a component of variance ``v_in`` to ``k**2 (alpha**2 v_in + sigma**2)``
    with ``k = alpha v / (alpha**2 v + sigma**2)``, ``v`` the data variance the denoiser
    knows; large times make the shrinkage large enough to check. The mean of K rounds from the same
    state keeps ``k**2 (alpha**2 v_in + sigma**2 / K)``: its noise averages out, its signal does not.
    """
    schedule = PolynomialSchedule()
    sampler = make_sampler(
        "ddpm",
        GaussianDiffusion(schedule),
        5,
        refine_steps=refine_steps,
        refine_time=0.6,
        polish_steps=polish_steps,
        polish_time=0.3,
        polish_average=polish_average,
    )
    graphs, n = 20000, 4
    gen = torch.Generator().manual_seed(0)
    batch = torch.arange(graphs).repeat_interleave(n)
    # per-dof variance POS_STD**2 on the zero-CoM subspace
    pos = POS_STD * remove_mean(torch.randn(graphs * n, 3, generator=gen, dtype=torch.float64), batch)
    h = H_MEAN + H_STD * torch.randn(graphs * n, 2, generator=gen, dtype=torch.float64)
    oracle = gaussian_oracle(schedule)
    calls = []

    def predict(state, t):
        calls.append(t.item())
        eps_pos, eps_h = oracle(state.pos, state.h, t.expand(graphs), batch)
        return Prediction(remove_mean(eps_pos, batch), eps_h)

    refined = sampler.refine(predict, GraphState(pos, h, batch, graphs), gen)
    out_pos, out_h = refined.pos, refined.h
    times = [0.6] * refine_steps + [0.3] * polish_steps
    assert calls == pytest.approx(times + [0.3] * polish_average)
    assert graph_mean(out_pos, batch).abs().max() < 1e-10

    def expected(v):
        v_out = v
        for time, averaged in [(time, 1) for time in times] + [(0.3, polish_average)] * bool(polish_average):
            t = torch.tensor(time, dtype=torch.float64)
            alpha, sigma = schedule.alpha(t).item(), schedule.sigma(t).item()
            k = alpha * v / (alpha**2 * v + sigma**2)
            v_out = k**2 * (alpha**2 * v_out + sigma**2 / averaged)
        return v_out

    assert expected(POS_STD**2) < 0.8 * POS_STD**2  # the check below can see the shrinkage
    per_dof_var = (out_pos**2).sum() / (graphs * 3 * (n - 1))
    assert per_dof_var.item() == pytest.approx(expected(POS_STD**2), rel=0.03)
    assert out_h.mean().item() == pytest.approx(H_MEAN, abs=0.01)
    assert out_h.var().item() == pytest.approx(expected(H_STD**2), rel=0.03)


def timed_toy_run(diffusion, name, **options):
    """Sample 3 toy graphs of 5 nodes with ``name`` (4 steps, seed 0, float64): ``(sample, the times of the
    network's calls, the sampler)``."""
    times = []
    oracle = gaussian_oracle(diffusion.schedule)

    def counting(pos, h, t, batch):
        times.append(t[0].item())
        return oracle(pos, h, t, batch)

    sampler = make_sampler(name, diffusion, 4, **options)
    out = sampler.sample(
        counting, torch.full((3,), 5), 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    return out, times, sampler


def test_refinement_runs_after_the_loop_and_is_off_by_default():
    diffusion = GaussianDiffusion(PolynomialSchedule())

    def run(**options):
        out, times, _ = timed_toy_run(diffusion, "ddpm", **options)
        return out, times

    plain, plain_times = run()
    refined, refined_times = run(refine_steps=2, refine_time=0.1)
    polished, polished_times = run(refine_steps=2, refine_time=0.1, polish_steps=1)
    assert plain_times == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert refined_times == plain_times + [pytest.approx(0.1)] * 2
    assert polished_times == refined_times + [pytest.approx(0.02)]
    assert make_sampler("ddpm", diffusion, 4, refine_steps=2, polish_steps=3).network_calls == 5 + 2 + 3
    laddered, laddered_times, sampler = timed_toy_run(
        diffusion, "ddpm", refine_steps=[2, 1], refine_time=[0.3, 0.1], polish_steps=1, polish_time=0.05
    )
    assert laddered_times == plain_times + [pytest.approx(t) for t in (0.3, 0.3, 0.1, 0.05)]
    assert sampler.network_calls == 5 + 3 + 1
    # a number beside a list applies to every stage
    assert make_sampler("ddpm", diffusion, 4, refine_steps=3, refine_time=[0.3, 0.1]).ladder == [(3, 0.3), (3, 0.1)]
    averaged, averaged_times, sampler = timed_toy_run(diffusion, "ddpm", polish_steps=1, polish_average=3)
    assert averaged_times == plain_times + [pytest.approx(0.02)] * 4 and sampler.network_calls == 5 + 1 + 3
    assert graph_mean(averaged.pos, averaged.batch).abs().max() < 1e-10
    assert not torch.allclose(refined.pos, plain.pos)
    assert graph_mean(refined.pos, refined.batch).abs().max() < 1e-10


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpm-solver"])
def test_without_the_final_call_the_sample_is_the_last_step_state(name):
    """``final_call=False`` skips the clean prediction ``(z_0 - sigma(0) eps) / alpha(0)`` at ``t = 0``: one call
    fewer, and the sample keeps ``z_0``, which differs by about ``sigma(0)`` times the predicted noise."""
    diffusion = GaussianDiffusion(PolynomialSchedule())
    oracle = gaussian_oracle(diffusion.schedule)

    def run(**options):
        out, times, sampler = timed_toy_run(diffusion, name, grid="time", **options)
        assert len(times) == sampler.network_calls
        return out, times

    with_call, with_times = run()
    without, without_times = run(final_call=False)
    assert with_times == [1.0, 0.75, 0.5, 0.25, 0.0] and without_times == with_times[:-1]
    assert graph_mean(without.pos, without.batch).abs().max() < 1e-10
    zero = torch.zeros((), dtype=torch.float64)
    alpha, sigma = diffusion.schedule.alpha(zero), diffusion.schedule.sigma(zero)
    eps_pos, eps_h = oracle(without.pos, without.h, zero.expand(3), without.batch)
    torch.testing.assert_close(with_call.pos, (without.pos - sigma * eps_pos) / alpha, rtol=0, atol=1e-12)
    torch.testing.assert_close(with_call.h, (without.h - sigma * eps_h) / alpha, rtol=0, atol=1e-12)
    assert 0 < sigma < 0.01 and not torch.equal(with_call.pos, without.pos)


def test_the_consistency_sampler_refuses_to_skip_its_last_call():
    with pytest.raises(ValueError, match="final_call=false does not apply to the consistency sampler"):
        make_sampler("consistency", GaussianDiffusion(PolynomialSchedule()), 4, final_call=False)
    with pytest.raises(ValueError, match="final_call must be true or false"):
        make_sampler("ddim", GaussianDiffusion(PolynomialSchedule()), 4, final_call="no")


def test_option_values_written_as_text():
    """The cells of scripts/quality_per_step.py and scripts/inpainting_quality.py give options as text."""
    from molgen.sampler_arguments import option_value

    assert option_value("True") is True and option_value("false") is False
    assert option_value("16") == 16 and isinstance(option_value("16"), int) and option_value("0.1") == 0.1
    assert option_value("time") == "time"
    assert option_value("64,16") == [64, 16] and option_value("0.3,0.1") == [0.3, 0.1]
    sampler = make_sampler("ddim", GaussianDiffusion(PolynomialSchedule()), 4, polish_steps=option_value("2"))
    assert sampler.polish_steps == 2

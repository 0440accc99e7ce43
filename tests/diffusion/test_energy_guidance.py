"""Energy guidance in the core (molgen.diffusion.energy_guidance): the closed-form step on a quadratic energy,
where it applies, and sampling with it."""

import pytest
import torch

from molgen.diffusion import make_sampler
from molgen.diffusion.conditioning import GraphCondition
from molgen.diffusion.energy_guidance import EnergyGuidance
from molgen.diffusion.schedules import PolynomialSchedule
from molgen.graph_batch import graph_sum, node_batch
from tests.diffusion.test_conditioning import some_condition, tiny_conditional_module

SIZES = [5, 3]  # node channels of the fake denoiser: 5 atom types, 3 charges


class FixedOutputs(torch.nn.Module):
    """A denoiser whose outputs are given tensors, whatever its inputs."""

    def __init__(self, eps, node_logits, edge_logits):
        super().__init__()
        self.outputs = (eps, node_logits, edge_logits)

    def forward(self, *inputs, condition=None):
        return self.outputs


def quadratic_energy(anchor, weights):
    """``E = 1/2 sum_i ||x_i - anchor_i||^2 + sum_i weights . p_i`` per graph, for given properties only."""

    def energy(pos, probabilities, batch, num_graphs, condition):
        per_node = 0.5 * (pos - anchor).square().sum(dim=-1) + probabilities @ weights
        return graph_sum(per_node[:, None], batch, num_graphs)[:, 0] * condition.mask.any(dim=1)

    return energy


def guided_call(
    t, scale=0.3, class_scale=2.0, max_time=0.5, condition=True, min_time=0.0, through_network=False, max_step=None
):
    gen = torch.Generator().manual_seed(0)
    batch = node_batch(torch.tensor([3, 2]))
    n = batch.numel()
    z = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    eps = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    logits = torch.randn(n, sum(SIZES), generator=gen, dtype=torch.float64)
    edges = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    anchor = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    weights = torch.randn(sum(SIZES), generator=gen, dtype=torch.float64)
    schedule = PolynomialSchedule()
    energy = quadratic_energy(anchor, weights)
    guidance = EnergyGuidance(energy, scale, class_scale, max_time, min_time, through_network, max_step)
    denoiser = guidance.wrap(FixedOutputs(eps, logits, edges), schedule, SIZES)
    cond = GraphCondition(torch.zeros(2, 1, dtype=torch.float64), torch.tensor([[True], [False]]))
    times = torch.full((2,), t, dtype=torch.float64)
    out = denoiser(z, None, None, None, times, batch, condition=cond if condition else None)
    return out, (z, eps, logits, edges, anchor, weights, schedule, times, batch)


@pytest.mark.parametrize("through_network", [False, True], ids=["at_estimate", "through_network"])
def test_the_clean_estimate_takes_one_gradient_step_and_the_logits_tilt_by_the_gradient(through_network):
    # a network ignoring its input: the gradient through it is the gradient at the estimate
    guided = guided_call(0.2, through_network=through_network)
    (eps_g, logits_g, edges_g), (z, eps, logits, edges, anchor, weights, schedule, t, batch) = guided
    alpha, sigma = schedule.alpha(t)[batch, None], schedule.sigma(t)[batch, None]
    clean = (z - sigma * eps) / alpha
    guided_clean = (z - sigma * eps_g) / alpha
    given = torch.tensor([True, True, True, False, False])  # graph 0 has a target, graph 1 none
    # dE/dx = x - anchor, so the step moves the estimate 30 % of the way to the anchor
    torch.testing.assert_close(guided_clean[given], clean[given] - 0.3 * (clean[given] - anchor[given]))
    torch.testing.assert_close(guided_clean[~given], clean[~given])
    torch.testing.assert_close(logits_g[given], logits[given] - 2.0 * weights)  # dE/dp = weights
    torch.testing.assert_close(logits_g[~given], logits[~given])
    assert torch.equal(edges_g, edges)


def test_max_step_shortens_long_steps_and_keeps_their_direction():
    (eps_free, _, _), (z, eps, _, _, _, _, schedule, t, batch) = guided_call(0.2)
    (eps_capped, _, _), _ = guided_call(0.2, max_step=0.05)
    alpha, sigma = schedule.alpha(t)[batch, None], schedule.sigma(t)[batch, None]
    free, capped = ((eps - e) * sigma / alpha for e in (eps_free, eps_capped))  # the clean estimate's steps
    lengths = free.norm(dim=-1)
    assert lengths.max() > 0.05 and capped.norm(dim=-1).max() <= 0.05 + 1e-12
    long = lengths > 0.05
    torch.testing.assert_close(capped[long], free[long] * (0.05 / lengths[long, None]))
    torch.testing.assert_close(capped[~long], free[~long])


class RestoringDenoiser(torch.nn.Module):
    """A denoiser whose clean estimate is ``target`` whatever its noisy input: ``eps = (z - alpha target) / sigma``."""

    def __init__(self, target, logits, edges, schedule):
        super().__init__()
        self.target, self.logits, self.edges, self.schedule = target, logits, edges, schedule

    def forward(self, z, h, e, pairs, t, batch, condition=None):
        alpha, sigma = self.schedule.alpha(t)[batch, None], self.schedule.sigma(t)[batch, None]
        return (z - alpha * self.target) / sigma, self.logits, self.edges


def test_through_the_network_the_directions_the_network_restores_get_no_step():
    (_, _, _), (z, _, logits, edges, anchor, weights, schedule, t, batch) = guided_call(0.2)
    target = torch.randn_like(z)
    network = RestoringDenoiser(target, logits, edges, schedule)
    cond = GraphCondition(torch.zeros(2, 1, dtype=torch.float64), torch.tensor([[True], [True]]))

    def clean_after_guidance(through_network):
        guidance = EnergyGuidance(quadratic_energy(anchor, weights), 0.3, 0.0, 0.5, 0.0, through_network)
        with torch.inference_mode():  # as in sampling
            eps, _, _ = guidance.wrap(network, schedule, SIZES)(z, None, None, None, t, batch, condition=cond)
        alpha, sigma = schedule.alpha(t)[batch, None], schedule.sigma(t)[batch, None]
        return (z - sigma * eps) / alpha

    torch.testing.assert_close(clean_after_guidance(True), target)  # the estimate does not depend on z
    torch.testing.assert_close(clean_after_guidance(False), target - 0.3 * (target - anchor))


@pytest.mark.parametrize(
    "t, condition, min_time",
    [(0.6, True, 0.0), (0.05, True, 0.05), (0.2, False, 0.0)],
    ids=["after_max_time", "at_min_time", "no_condition"],
)
def test_calls_it_does_not_apply_to_pass_through(t, condition, min_time):
    (eps_g, logits_g, _), (_, eps, logits, *_) = guided_call(t, condition=condition, min_time=min_time)
    assert eps_g is eps and logits_g is logits


def test_scales_and_max_time_are_checked():
    with pytest.raises(ValueError, match=">= 0"):
        EnergyGuidance(quadratic_energy(0, 0), scale=-1.0)
    with pytest.raises(ValueError, match=r"max_time must be in \(0, 1\]"):
        EnergyGuidance(quadratic_energy(0, 0), max_time=0.0)
    with pytest.raises(ValueError, match=r"min_time must be in \[0, max_time=0.3\)"):
        EnergyGuidance(quadratic_energy(0, 0), min_time=0.3)
    with pytest.raises(ValueError, match="max_step must be > 0"):
        EnergyGuidance(quadratic_energy(0, 0), max_step=0.0)


def shrinking_energy(pos, probabilities, batch, num_graphs, condition):
    """Half the summed squared distance of the atoms from their centre: guidance down it makes graphs compact."""
    return graph_sum(0.5 * pos.square().sum(dim=-1, keepdim=True), batch, num_graphs)[:, 0]


def test_sampling_with_energy_guidance_runs_under_inference_mode_and_moves_the_samples():
    module = tiny_conditional_module()
    sizes = torch.tensor([5, 4, 6])
    cond = some_condition(3, torch.float32)

    def sample(energy_guidance):
        sampler = make_sampler("ddim", module.diffusion, 8, eta=1.0, refine_steps=1, refine_time=0.1)
        return sampler.sample(
            module.denoiser,
            sizes,
            graph_condition=cond,
            energy_guidance=energy_guidance,
            generator=torch.Generator().manual_seed(3),
        )

    plain = sample(None)
    idle = sample(EnergyGuidance(shrinking_energy, scale=0.0, class_scale=0.0, max_time=1.0))
    assert torch.equal(plain.pos, idle.pos) and torch.equal(plain.node_classes, idle.node_classes)
    for through_network in (False, True):
        shrunk = sample(EnergyGuidance(shrinking_energy, scale=0.5, max_time=1.0, through_network=through_network))
        assert shrunk.pos.square().sum() < 0.5 * plain.pos.square().sum()
        assert torch.isfinite(shrunk.pos).all()


def test_energy_guidance_needs_a_condition_and_a_process_with_classes():
    from tests.helpers import tiny_molecule_module

    module = tiny_conditional_module()
    sampler = make_sampler("ddim", module.diffusion, 2)
    with pytest.raises(ValueError, match="energy guidance needs a condition"):
        sampler.sample(module.denoiser, torch.tensor([3]), energy_guidance=EnergyGuidance(shrinking_energy))
    plain = tiny_molecule_module()
    with pytest.raises(ValueError, match="categorical node classes"):
        plain.diffusion.guide_with_energy(plain.denoiser, EnergyGuidance(shrinking_energy))

"""Self-conditioning: the model input, its training draw, and the estimate chain of the samplers."""

import pytest
import torch

from molgen.diffusion import GaussianDiffusion, LogLinearSchedule, PolynomialSchedule, make_sampler
from molgen.diffusion.prediction import VelocityDenoiser
from molgen.diffusion.process import GraphState
from molgen.diffusion.self_conditioning import (
    ESTIMATE_RATE,
    EstimateFeedback,
    GaussianEstimate,
    is_self_conditioned,
    training_estimate,
)
from molgen.graph_batch import graph_mean, remove_mean
from molgen.models.egnn_denoiser import EGNNDenoiser
from molgen.nn.compiled import CompiledDenoiser
from tests.diffusion.test_samplers import gaussian_oracle
from tests.equivariance_utils import assert_denoiser_equivariant, random_rotation
from tests.models.test_egnn_denoiser import F, amplify_coordinate_updates, make_inputs


def self_conditioned_model(seed=0, **kwargs):
    """A small self-conditioned EGNN whose estimate embedding is no longer zero (as after training)."""
    torch.manual_seed(seed)
    model = EGNNDenoiser(in_node_dim=F, hidden_dim=16, num_layers=3, distance_rbf=8, self_conditioning=True, **kwargs)
    with torch.no_grad():
        model.estimate_embedding.weight.normal_(0.0, 1.0)
    return amplify_coordinate_updates(model)


class WithEstimate(torch.nn.Module):
    """The model called with an estimate that is an equivariant function of its input: each centred
    position stretched by its length (rotation- and permutation-equivariant, translation-invariant)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pos, h, t, batch):
        centred = remove_mean(pos, batch)
        estimate = centred * (0.5 + 0.2 * centred.square().sum(dim=1, keepdim=True))
        return self.model(pos, h, t, batch, self_condition=GaussianEstimate(estimate, None))


def test_estimate_embedding_starts_at_zero_and_then_changes_the_output():
    torch.manual_seed(0)
    fresh = EGNNDenoiser(in_node_dim=F, hidden_dim=16, num_layers=2, distance_rbf=8, self_conditioning=True)
    pos, h, t, batch = make_inputs(dtype=torch.float32)
    estimate = GaussianEstimate(remove_mean(torch.randn_like(pos), batch), None)
    plain = fresh(pos, h, t, batch)
    torch.testing.assert_close(fresh(pos, h, t, batch, self_condition=estimate), plain, rtol=0, atol=0)
    trained = self_conditioned_model()
    without = trained(pos, h, t, batch)
    with_estimate = trained(pos, h, t, batch, self_condition=estimate)
    assert (with_estimate[0] - without[0]).abs().max() > 1e-3
    assert graph_mean(with_estimate[0], batch).abs().max() < 1e-5


@pytest.mark.parametrize("graph", [{}, {"graph": "knn+chain", "knn_k": 3, "atoms_per_residue": 2, "chain_window": 1}])
def test_self_conditioned_denoiser_is_equivariant_with_its_estimate(graph):
    """Rotating, reflecting or translating inputs and estimate together rotates the prediction (float64)."""
    model = self_conditioned_model(**graph)
    sizes = [8, 12, 6] if graph else [5, 9, 3]
    pos, h, t, batch = make_inputs(sizes=sizes)
    assert_denoiser_equivariant(WithEstimate(model), pos, h, t, batch, torch.float64, node_permutations=not graph)
    # The estimate's internal geometry is read, not its frame: moving it rigidly alone changes
    # nothing, deforming it does.
    gen = torch.Generator().manual_seed(1)
    estimate = 0.5 * pos
    moved = estimate @ random_rotation(generator=gen).T + 1.0
    deformed = estimate * torch.tensor([1.0, 1.0, 1.5], dtype=torch.float64)
    base, _ = model(pos, h, t, batch, self_condition=GaussianEstimate(estimate, None))
    moved_out, _ = model(pos, h, t, batch, self_condition=GaussianEstimate(moved, None))
    torch.testing.assert_close(moved_out, base, rtol=1e-9, atol=1e-9)
    assert (model(pos, h, t, batch, self_condition=GaussianEstimate(deformed, None))[0] - base).abs().max() > 1e-3


def test_plain_denoiser_refuses_an_estimate_and_wrappers_report_the_flag():
    pos, h, t, batch = make_inputs(dtype=torch.float32)
    plain = EGNNDenoiser(in_node_dim=F, hidden_dim=8, num_layers=1)
    with pytest.raises(ValueError, match="without self_conditioning"):
        plain(pos, h, t, batch, self_condition=GaussianEstimate(pos, None))
    conditioned = EGNNDenoiser(in_node_dim=F, hidden_dim=8, num_layers=1, self_conditioning=True)
    schedule = PolynomialSchedule()
    assert not is_self_conditioned(plain) and not is_self_conditioned(VelocityDenoiser(plain, schedule, True))
    assert is_self_conditioned(conditioned)
    assert is_self_conditioned(VelocityDenoiser(conditioned, schedule, True))
    assert is_self_conditioned(CompiledDenoiser(conditioned))


def test_training_estimate_is_the_detached_clean_prediction_for_half_of_the_batches():
    model = self_conditioned_model()
    diffusion = GaussianDiffusion(LogLinearSchedule(), diffuse_features=True)
    pos, h, t, batch = make_inputs(dtype=torch.float32)
    estimator = diffusion.self_condition_estimate
    drawn = [
        training_estimate(model, (pos, h, t, batch), estimator, torch.Generator().manual_seed(s)) for s in range(400)
    ]
    given = [e for e in drawn if e is not None]
    assert len(given) / len(drawn) == pytest.approx(ESTIMATE_RATE, abs=0.08)
    eps, eps_h = model(pos, h, t, batch)
    expected = remove_mean(diffusion.predict_clean(pos, remove_mean(eps, batch), t[batch, None]), batch)
    torch.testing.assert_close(given[0].pos, expected)
    # the process diffuses the features, so their clean estimate comes too
    torch.testing.assert_close(given[0].h, diffusion.predict_clean(h, eps_h, t[batch, None]))
    assert not given[0].pos.requires_grad and not given[0].h.requires_grad
    without_features = GaussianDiffusion(LogLinearSchedule(), diffuse_features=False).self_condition_estimate
    assert without_features((pos, h, t, batch), (eps, eps_h)).h is None


def test_loss_trains_the_estimate_embedding_only_when_an_estimate_is_drawn():
    diffusion = GaussianDiffusion(LogLinearSchedule(), diffuse_features=True)
    pos, h, _, batch = make_inputs(dtype=torch.float32)
    grads = []
    for seed in range(8):
        model = self_conditioned_model()
        generator = torch.Generator().manual_seed(seed)
        diffusion.loss(model, GraphState(pos, h, batch, 3), generator=generator)[0].sum().backward()
        grads.append(model.estimate_embedding.weight.grad.abs().max().item())
    assert any(g == 0.0 for g in grads) and any(g > 0.0 for g in grads)


def test_samplers_feed_back_the_previous_clean_prediction():
    """Every call after the first gets the clean prediction of the call before, through the loop, the final
    prediction and the refinement rounds; on the toy, an oracle that ignores it samples exactly as before."""
    schedule = PolynomialSchedule()
    diffusion = GaussianDiffusion(schedule)
    oracle = gaussian_oracle(schedule)
    received, predicted = [], []

    class RecordingOracle(torch.nn.Module):
        self_conditioning = True

        def forward(self, pos, h, t, batch, self_condition=None):
            received.append(self_condition)
            eps_pos, eps_h = oracle(pos, h, t, batch)
            predicted.append(remove_mean(diffusion.predict_clean(pos, eps_pos, t[batch, None]), batch))
            return eps_pos, eps_h

    def run(denoiser, name):
        sampler = make_sampler(name, diffusion, 6, refine_steps=2)
        return sampler.sample(
            denoiser, torch.full((50,), 4), 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64
        )

    for name in ("ddpm", "ddim", "dpm-solver"):
        received.clear(), predicted.clear()
        conditioned = run(RecordingOracle(), name)
        assert len(received) == 6 + 1 + 2 and received[0] is None
        for got, previous in zip(received[1:], predicted[:-1]):
            torch.testing.assert_close(got.pos, previous, rtol=1e-12, atol=1e-12)
        plain = run(oracle, name)
        for a, b in ((conditioned.pos, plain.pos), (conditioned.h, plain.h)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_estimate_feedback_calls_a_plain_denoiser_plainly():
    calls = []

    def plain(pos, h, t, batch):
        calls.append(t)
        return pos, h

    batch = torch.tensor([0, 0, 1])
    feedback = EstimateFeedback(plain, GaussianDiffusion(PolynomialSchedule()).self_condition_estimate)
    feedback(torch.zeros(3, 3), torch.zeros(3, 1), torch.full((2,), 0.5), batch)
    assert calls[0].shape == (2,) and feedback.estimate is None

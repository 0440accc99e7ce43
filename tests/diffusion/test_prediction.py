"""The v-parameterization: exact conversion to eps, its loss, equivariance, configuration."""

import pytest
import torch
from torch import nn

from molgen.dataset_info import BackboneInfo
from molgen.diffusion.build import build_diffusion
from molgen.diffusion.gaussian import GaussianDiffusion
from molgen.diffusion.prediction import JointVelocityDenoiser, VelocityDenoiser
from molgen.diffusion.process import GraphState
from molgen.diffusion.schedules import LogLinearSchedule, PolynomialSchedule
from molgen.graph_batch import remove_mean
from molgen.models import build_model
from molgen.models.egnn_denoiser import EGNNDenoiser
from tests.equivariance_utils import assert_denoiser_equivariant
from tests.joint_helpers import JOINT_DIFFUSION, TINY_JOINT_MODEL, joint_dataset_info, tiny_molecules

SIZES = [4, 9, 6]


def _batch(sizes=SIZES):
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


class Constant(nn.Module):
    """A 'network' that returns fixed outputs, whatever its input."""

    def __init__(self, out_pos, out_h):
        super().__init__()
        self.out_pos, self.out_h = out_pos, out_h

    def forward(self, pos, h, t, batch):
        return self.out_pos, self.out_h


@pytest.mark.parametrize("diffuse_features", [True, False])
def test_true_velocity_converts_to_true_noise(diffuse_features):
    """v = alpha eps - sigma x fed through the wrapper gives back eps to round-off, at every t."""
    schedule = LogLinearSchedule()
    diffusion = GaussianDiffusion(schedule, diffuse_features=diffuse_features, prediction="v")
    batch = _batch()
    g = torch.Generator().manual_seed(0)
    x = remove_mean(torch.randn(len(batch), 3, dtype=torch.float64, generator=g), batch)
    h = torch.randn(len(batch), 5, dtype=torch.float64, generator=g)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    pos_t, h_t, eps_pos, eps_h = diffusion.add_noise(x, h, t, batch, g)
    alpha, sigma = schedule.alpha(t)[batch, None], schedule.sigma(t)[batch, None]
    v_h = alpha * eps_h - sigma * h if diffuse_features else h
    wrapped = VelocityDenoiser(Constant(alpha * eps_pos - sigma * x, v_h), schedule, diffuse_features)

    got_pos, got_h = wrapped(pos_t, h_t, t, batch)
    torch.testing.assert_close(got_pos, eps_pos, rtol=0, atol=1e-12)
    torch.testing.assert_close(got_h, eps_h if diffuse_features else h, rtol=0, atol=1e-12)
    # The clean prediction the samplers form from it is x itself, even at t = 1.
    torch.testing.assert_close(diffusion.predict_clean(pos_t, got_pos, t[batch, None]), x, rtol=0, atol=1e-9)


def test_loss_is_the_velocity_squared_error_per_degree_of_freedom():
    schedule = PolynomialSchedule()
    diffusion = GaussianDiffusion(schedule, prediction="v")
    batch = _batch()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(len(batch), 3, dtype=torch.float64, generator=g)
    h = torch.randn(len(batch), 2, dtype=torch.float64, generator=g)
    t = torch.tensor([0.05, 0.5, 0.97], dtype=torch.float64)
    v_hat_pos = remove_mean(torch.randn(len(batch), 3, dtype=torch.float64, generator=g), batch)
    v_hat_h = torch.randn(len(batch), 2, dtype=torch.float64, generator=g)
    wrapped = VelocityDenoiser(Constant(v_hat_pos, v_hat_h), schedule, diffuse_features=True)

    clean = GraphState(x, h, batch, len(SIZES))
    loss, _ = diffusion.loss(wrapped, clean, t=t, generator=torch.Generator().manual_seed(2))

    _, _, eps_pos, eps_h = diffusion.add_noise(x, h, t, batch, torch.Generator().manual_seed(2))
    alpha, sigma = schedule.alpha(t)[batch, None], schedule.sigma(t)[batch, None]
    v_pos = alpha * eps_pos - sigma * remove_mean(x, batch)
    v_h = alpha * eps_h - sigma * h
    sq = ((v_pos - v_hat_pos) ** 2).sum(1) + ((v_h - v_hat_h) ** 2).sum(1)
    sizes = torch.tensor(SIZES, dtype=torch.float64)
    expected = torch.zeros(len(SIZES), dtype=torch.float64).index_add_(0, batch, sq) / (3 * (sizes - 1) + 2 * sizes)
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=0)
    # Not the eps loss: at t = 0.97 alpha^2 is small, so the two differ many-fold.
    eps_loss, _ = GaussianDiffusion(schedule).loss(wrapped, clean, t=t, generator=torch.Generator().manual_seed(2))
    assert loss[2] > 10 * eps_loss[2]


def test_wrapped_denoiser_stays_equivariant():
    torch.manual_seed(0)
    net = EGNNDenoiser(in_node_dim=3, hidden_dim=16, num_layers=2)
    with torch.no_grad():
        for layer in net.layers:
            layer.phi_x[-1].weight.mul_(300.0)
    model = VelocityDenoiser(net, LogLinearSchedule(), diffuse_features=True).double()
    batch = _batch()
    g = torch.Generator().manual_seed(3)
    pos = remove_mean(torch.randn(len(batch), 3, dtype=torch.float64, generator=g), batch)
    h = torch.randn(len(batch), 3, dtype=torch.float64, generator=g)
    t = torch.tensor([0.1, 0.6, 0.99], dtype=torch.float64)
    assert_denoiser_equivariant(model, pos, h, t, batch, torch.float64)


def test_config_selects_and_validates_the_prediction():
    config = {"schedule": {"name": "loglinear"}, "diffuse_features": False}
    info = BackboneInfo(
        dataset="toy", num_features=4, size_histogram=[0, 1], atom_types=["N", "CA", "C", "O"], length_scale=10.0
    )
    model = {"name": "egnn", "hidden_dim": 8, "num_layers": 1}
    denoiser, process = build_model(model, {**config, "prediction": "v"}, info)
    assert isinstance(denoiser, VelocityDenoiser) and process.prediction == "v"
    denoiser, process = build_model(model, config, info)
    assert not isinstance(denoiser, VelocityDenoiser) and process.prediction == "eps"
    with pytest.raises(ValueError, match=r"unknown diffusion.prediction 'x0'; choose from \['eps', 'v'\]"):
        build_diffusion({**config, "prediction": "x0"})


class ConstantJoint(nn.Module):
    """A joint 'network' that returns fixed positions and logits, whatever its input."""

    def __init__(self, out_pos, node_logits, edge_logits):
        super().__init__()
        self.out = out_pos, node_logits, edge_logits

    def forward(self, pos, node_features, edge_features, pair_index, t, batch):
        return self.out


def test_joint_velocity_converts_positions_and_passes_logits_and_its_loss_is_the_v_mse():
    clean = tiny_molecules()
    clean = clean.replace(pos=clean.pos.double())
    process = build_diffusion({**JOINT_DIFFUSION, "prediction": "v"}, joint_dataset_info().categorical)
    schedule, batch = process.schedule, clean.batch
    t = torch.tensor([0.02, 0.5, 1.0], dtype=torch.float64)
    noisy = process.noise(clean, t, torch.Generator().manual_seed(0))
    alpha, sigma = schedule.alpha(t)[batch, None], schedule.sigma(t)[batch, None]
    eps = (noisy.pos - alpha * clean.pos) / sigma
    node_logits, edge_logits = torch.randn(11, 8, dtype=torch.float64), torch.randn(len(clean.edge_classes), 4)
    network = ConstantJoint(alpha * eps - sigma * clean.pos, node_logits, edge_logits)
    wrapped = process.wrap_network(network)
    assert isinstance(wrapped, JointVelocityDenoiser)
    out = process.predictor(wrapped, noisy)(noisy, t)
    torch.testing.assert_close(out.eps_pos, eps, rtol=0, atol=1e-12)
    assert out.node_logits is node_logits and out.edge_logits is edge_logits
    # the clean prediction is exact even at t = 1, where an eps-network's error is multiplied by 1 / alpha ~ 300
    torch.testing.assert_close(process.gaussian.predict_clean(noisy.pos, out.eps_pos, t[batch, None]), clean.pos)

    v_hat = remove_mean(torch.randn(11, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4)), batch)
    guess = process.wrap_network(ConstantJoint(v_hat, node_logits, edge_logits))
    _, parts = process.loss(guess, clean, t=t, generator=torch.Generator().manual_seed(0))
    _, eps_pos, _, _ = process.add_noise(
        clean.pos, clean.node_classes, clean.pair_index, clean.edge_classes, t, batch, torch.Generator().manual_seed(0)
    )
    v = alpha * eps_pos - sigma * clean.pos
    sq = torch.zeros(3, dtype=torch.float64).index_add_(0, batch, ((v - v_hat) ** 2).sum(1))
    torch.testing.assert_close(parts["positions"], sq / (3 * (torch.tensor([5.0, 3, 3], dtype=torch.float64) - 1)))


def test_a_joint_v_model_is_built_from_its_config_and_stays_equivariant():
    info = joint_dataset_info()
    denoiser, process = build_model(TINY_JOINT_MODEL, {**JOINT_DIFFUSION, "prediction": "v"}, info)
    assert isinstance(denoiser, JointVelocityDenoiser) and process.prediction == "v"
    assert not isinstance(build_model(TINY_JOINT_MODEL, JOINT_DIFFUSION, info)[0], VelocityDenoiser)
    torch.manual_seed(0)
    denoiser = denoiser.double()
    state = tiny_molecules()
    rotation = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    t = torch.tensor([0.3, 0.7, 0.99], dtype=torch.float64)
    node = process.node_features(state.node_classes, torch.float64)
    edge = process.edge_features(state.edge_classes, torch.float64)
    pos = state.pos.double()
    args = (node, edge, state.pair_index, t, state.batch)
    eps, node_logits, edge_logits = denoiser(pos, *args)
    eps_r, node_logits_r, edge_logits_r = denoiser(pos @ rotation.T, *args)
    torch.testing.assert_close(eps_r, eps @ rotation.T, rtol=0, atol=1e-10)
    torch.testing.assert_close(node_logits_r, node_logits, rtol=0, atol=1e-10)
    torch.testing.assert_close(edge_logits_r, edge_logits, rtol=0, atol=1e-10)

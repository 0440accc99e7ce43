"""Tests for molgen.nn.egnn.EGNNLayer."""

import pytest
import torch
from torch import nn

from molgen.nn.egnn import EGNNLayer
from molgen.nn.graphs import fully_connected_edges
from tests.equivariance_utils import assert_denoiser_equivariant

HIDDEN = 16
SIZES = [5, 9, 3]


def make_inputs(seed=0, sizes=SIZES, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    pos = torch.randn(batch.numel(), 3, generator=gen, dtype=dtype)
    h = torch.randn(batch.numel(), HIDDEN, generator=gen, dtype=dtype)
    t = torch.rand(len(sizes), generator=gen, dtype=dtype)
    return pos, h, t, batch


class LayerStack(nn.Module):
    """Two EGNN layers behind the denoiser signature, so the shared helper applies.

    Edge features are the input squared distances (an invariant ``a_ij``).
    """

    def __init__(self, **kwargs):
        super().__init__()
        self.layers = nn.ModuleList(EGNNLayer(HIDDEN, edge_attr_dim=1, **kwargs) for _ in range(2))

    def forward(self, pos, h, t, batch):
        edge_index = fully_connected_edges(batch)
        edge_attr = (pos[edge_index[1]] - pos[edge_index[0]]).square().sum(-1, keepdim=True)
        x = pos
        for layer in self.layers:
            x, h = layer(x, h, edge_index, edge_attr)
        return x - pos, h


CONFIGS = [
    {},
    {"attention": True, "tanh": True},
    {"aggregation": "mean"},
    {"aggregation": "sum", "normalization_factor": 4.0, "norm_constant": 0.0},
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_layer_equivariance(config, dtype):
    torch.manual_seed(0)
    model = LayerStack(**config)
    # Scale up phi_x so that coordinates really move (its init gain is tiny).
    with torch.no_grad():
        for layer in model.layers:
            layer.phi_x[-1].weight.mul_(1000.0)
    pos, h, t, batch = make_inputs()
    eps_pos, _ = model.to(dtype)(pos.to(dtype), h.to(dtype), t, batch)
    assert eps_pos.abs().max() > 1e-3, "coordinates barely move: the test would be vacuous"
    assert_denoiser_equivariant(model, pos, h, t, batch, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layer_shapes_and_dtype(dtype):
    torch.manual_seed(0)
    layer = EGNNLayer(HIDDEN, attention=True).to(dtype)
    pos, h, _, batch = make_inputs(dtype=dtype)
    pos_out, h_out = layer(pos, h, fully_connected_edges(batch))
    assert h_out.shape == h.shape and pos_out.shape == pos.shape
    assert h_out.dtype == dtype and pos_out.dtype == dtype


def test_layer_isolated_and_coincident_nodes_are_finite():
    torch.manual_seed(0)
    layer = EGNNLayer(HIDDEN, attention=True, tanh=True)
    # Graph 0: a single node (no edges). Graph 1: two coincident atoms.
    batch = torch.tensor([0, 1, 1])
    pos = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], requires_grad=True)
    h = torch.randn(3, HIDDEN, requires_grad=True)
    pos_out, h_out = layer(pos, h, fully_connected_edges(batch))
    assert torch.isfinite(h_out).all() and torch.isfinite(pos_out).all()
    torch.testing.assert_close(pos_out[0], pos[0])  # no neighbours -> no move
    (h_out.square().sum() + pos_out.square().sum()).backward()
    for tensor in [pos.grad, h.grad, *(p.grad for p in layer.parameters())]:
        assert tensor is not None and torch.isfinite(tensor).all()


def test_layer_rejects_bad_options():
    with pytest.raises(ValueError):
        EGNNLayer(HIDDEN, aggregation="max")
    layer = EGNNLayer(HIDDEN, edge_attr_dim=2)
    pos, h, _, batch = make_inputs(dtype=torch.float32)
    with pytest.raises(ValueError):
        layer(pos, h, fully_connected_edges(batch))  # edge_attr missing


def test_reset_parameters_reinitialises():
    torch.manual_seed(0)
    layer = EGNNLayer(HIDDEN, attention=True)
    before = [p.detach().clone() for p in layer.parameters()]
    layer.reset_parameters()
    after = list(layer.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after))
    assert layer.phi_x[-1].weight.abs().max() < 1e-2  # small-gain init of the coordinate head


def _reference_layer(layer: EGNNLayer, pos, h, edge_index, edge_attr):
    """The class docstring's update rule, written out edge by edge with the full phi_e input."""
    src, dst = edge_index
    diff = pos[dst] - pos[src]
    dist = diff.norm(dim=-1, keepdim=True)
    m = layer.phi_e(torch.cat([h[dst], h[src], dist.square(), edge_attr], dim=-1))
    if layer.phi_att is not None:
        m = m * torch.sigmoid(layer.phi_att(m))
    scale = layer.phi_x(m)
    if layer.tanh:
        scale = layer.coords_range * torch.tanh(scale)
    step = diff / (dist + layer.norm_constant) * scale
    agg_m = torch.zeros_like(h).index_add_(0, dst, m)
    agg_x = torch.zeros_like(pos).index_add_(0, dst, step)
    if layer.aggregation == "mean":
        count = torch.zeros(h.shape[0], 1, dtype=h.dtype).index_add_(0, dst, torch.ones_like(dist)).clamp(min=1)
        agg_m, agg_x = agg_m / count, agg_x / count
    else:
        agg_m, agg_x = agg_m / layer.normalization_factor, agg_x / layer.normalization_factor
    return pos + agg_x, h + layer.phi_h(torch.cat([h, agg_m], dim=-1))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_layer_matches_written_out_update_rule(config):
    """The node-level split of phi_e's first layer is an exact rewrite, not an approximation."""
    torch.manual_seed(0)
    layer = EGNNLayer(HIDDEN, edge_attr_dim=2, **config).double()
    nn.init.normal_(layer.phi_x[-1].weight)  # make coordinate steps visible
    pos, h, _, batch = make_inputs(seed=3)
    edge_index = fully_connected_edges(batch)
    edge_attr = torch.randn(edge_index.shape[1], 2, dtype=torch.float64)
    got_pos, got_h = layer(pos, h, edge_index, edge_attr)
    want_pos, want_h = _reference_layer(layer, pos, h, edge_index, edge_attr)
    torch.testing.assert_close(got_h, want_h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_pos, want_pos, rtol=1e-12, atol=1e-12)
    assert (got_pos - pos).abs().max() > 1e-3


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_layer_gradients_match_written_out_update_rule(config):
    """The in-place buffer and plain index_add_ aggregation leave every gradient exact."""
    torch.manual_seed(0)
    layer = EGNNLayer(HIDDEN, edge_attr_dim=2, **config).double()
    nn.init.normal_(layer.phi_x[-1].weight)
    pos, h, _, batch = make_inputs(seed=4)
    pos, h = pos.requires_grad_(), h.requires_grad_()
    edge_index = fully_connected_edges(batch)
    edge_attr = torch.randn(edge_index.shape[1], 2, dtype=torch.float64, requires_grad=True)
    inputs = [h, pos, edge_attr, *layer.parameters()]

    def gradients(forward):
        out_pos, out_h = forward(layer, pos, h, edge_index, edge_attr)
        loss = out_h.sin().sum() + out_pos.square().sum()  # non-trivial upstream gradients
        return torch.autograd.grad(loss, inputs)

    got = gradients(lambda layer, *args: layer(*args))
    want = gradients(_reference_layer)
    assert all(g.abs().max() > 0 for g in got[:3])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


def test_layer_runs_under_bfloat16_autocast():
    """What trainer.precision=bf16-mixed runs: same function as float32, to bfloat16 precision."""
    torch.manual_seed(0)
    layer = EGNNLayer(HIDDEN, edge_attr_dim=2, attention=True, tanh=True)
    nn.init.normal_(layer.phi_x[-1].weight, std=0.1)
    pos, h, _, batch = make_inputs(seed=5)
    pos, h = pos.float(), h.float().requires_grad_()
    edge_index = fully_connected_edges(batch)
    edge_attr = torch.randn(edge_index.shape[1], 2)
    want_pos, want_h = layer(pos, h, edge_index, edge_attr)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got_pos, got_h = layer(pos, h, edge_index, edge_attr)
    (got_h.float().sum() + got_pos.float().sum()).backward()
    assert h.grad is not None and torch.isfinite(h.grad).all()
    torch.testing.assert_close(got_h.float(), want_h, rtol=0.05, atol=0.05)
    torch.testing.assert_close(got_pos.float(), want_pos, rtol=0.05, atol=0.05)

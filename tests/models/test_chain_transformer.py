"""Tests for molgen.models.chain_transformer: the denoiser of chains in internal coordinates."""

import numpy as np
import torch

from molgen.models import build_denoiser
from molgen.proteins.internal_coordinates import angle_features, ca_internal_coordinates, ca_trace_from_internal
from tests.equivariance_utils import permute_graphs, random_rotation


def _model(dtype=torch.float64):
    torch.manual_seed(0)
    model = build_denoiser(
        {"name": "chain_transformer", "hidden_dim": 16, "num_layers": 2, "num_heads": 2, "feedforward_dim": 32},
        in_node_dim=3,
    )
    return model.to(dtype).eval()


def _batch(lengths, dtype=torch.float64):
    generator = torch.Generator().manual_seed(1)
    h = torch.randn(sum(lengths), 3, generator=generator, dtype=dtype)
    batch = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    t = torch.rand(len(lengths), generator=generator, dtype=dtype)
    return torch.zeros(sum(lengths), 0, dtype=dtype), h, t, batch


@torch.no_grad()
def test_shapes_and_no_coordinates():
    pos, h, t, batch = _batch([5, 3, 7])
    eps_pos, eps_h = _model()(pos, h, t, batch)
    assert eps_pos.shape == (15, 0) and eps_h.shape == (15, 3) and eps_h.dtype == torch.float64


@torch.no_grad()
def test_reordering_chains_in_a_batch_reorders_the_output_and_chains_do_not_see_each_other():
    """Float64: whole chains permuted within a batch give the same per-chain outputs; a chain alone in its batch
    (no padding) gets what it gets beside longer chains (padding is masked)."""
    model = _model()
    pos, h, t, batch = _batch([6, 4, 9, 5])
    _, out = model(pos, h, t, batch)
    node_perm, graph_perm, new_batch = permute_graphs(batch, generator=torch.Generator().manual_seed(2))
    _, permuted = model(pos[node_perm], h[node_perm], t[graph_perm], new_batch)
    torch.testing.assert_close(permuted, out[node_perm], atol=1e-12, rtol=1e-10)
    first = batch == 1
    _, alone = model(pos[first], h[first], t[1:2], torch.zeros(int(first.sum()), dtype=torch.long))
    torch.testing.assert_close(alone, out[first], atol=1e-12, rtol=1e-10)


@torch.no_grad()
def test_rigid_motions_leave_the_inputs_and_so_the_output_unchanged_and_a_mirror_image_is_another_chain():
    """The model sees internal coordinates: a rotated and translated trace is the same input (float64), while its
    mirror image has negated torsion sines, a different input with a different prediction (the model is chiral)."""
    model = _model()
    rng = np.random.default_rng(0)
    ca = ca_trace_from_internal(np.radians(rng.uniform(80, 150, 12)), rng.uniform(-np.pi, np.pi, 12))

    def predict(trace):
        h = torch.from_numpy(angle_features(*ca_internal_coordinates(trace))).double()
        return model(
            torch.zeros(12, 0, dtype=torch.float64),
            h,
            torch.tensor([0.3], dtype=torch.float64),
            torch.zeros(12, dtype=torch.long),
        )[1]

    out = predict(ca)
    moved = ca @ random_rotation().numpy().T + 5.0
    torch.testing.assert_close(predict(moved), out, atol=1e-6, rtol=1e-6)  # features are float32
    assert (predict(ca * np.array([1.0, 1.0, -1.0])) - out).abs().max() > 1e-3

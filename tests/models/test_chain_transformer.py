"""Tests for molgen.models.chain_transformer: the denoiser of chains in internal coordinates."""

import numpy as np
import pytest
import torch

from molgen.diffusion.self_conditioning import GaussianEstimate
from molgen.models import build_denoiser
from molgen.proteins.geometry import ideal_helix
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


def _self_conditioned(dtype=torch.float64, trained=True):
    """A small self-conditioned transformer; ``trained``: its zero-initialised estimate maps made non-zero."""
    torch.manual_seed(0)
    config = {"name": "chain_transformer", "hidden_dim": 16, "num_layers": 2, "num_heads": 2, "feedforward_dim": 32}
    model = build_denoiser({**config, "self_conditioning": True, "distance_rbf": 8, "rbf_cutoff": 20.0}, in_node_dim=3)
    if trained:
        with torch.no_grad():
            model.estimate_embedding.weight.normal_(0.0, 1.0)
            model.distance_bias.weight.normal_(0.0, 3.0)
    return model.to(dtype).eval()


def _estimate(h, seed=5):
    generator = torch.Generator().manual_seed(seed)
    return GaussianEstimate(
        torch.zeros(h.shape[0], 0, dtype=h.dtype), torch.randn(h.shape, generator=generator, dtype=h.dtype)
    )


@torch.no_grad()
def test_self_conditioned_model_starts_as_the_plain_one_and_then_reads_its_estimate():
    plain = _model()
    fresh = _self_conditioned(trained=False)
    assert set(fresh.state_dict()) - set(plain.state_dict()) == {
        "estimate_embedding.weight",
        "estimate_embedding.bias",
        "distance_bias.weight",
        "distance_bias.bias",
    }
    fresh.load_state_dict(plain.state_dict(), strict=False)  # what init_from does
    pos, h, t, batch = _batch([6, 4, 9])
    out = plain(pos, h, t, batch)[1]
    torch.testing.assert_close(fresh(pos, h, t, batch)[1], out, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(fresh(pos, h, t, batch, self_condition=_estimate(h))[1], out, atol=1e-12, rtol=1e-10)
    trained = _self_conditioned()
    assert (trained(pos, h, t, batch, self_condition=_estimate(h))[1] - trained(pos, h, t, batch)[1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="without self_conditioning"):
        plain(pos, h, t, batch, self_condition=_estimate(h))


@torch.no_grad()
def test_self_conditioned_chains_do_not_see_each_other_and_inference_matches_training_mode():
    """Float64: with an estimate, chain reordering and padding change nothing; torch's inference fast path
    (which gives NaN for a per-head float mask) is bypassed, so eval and train modes agree, and restored."""
    model = _self_conditioned()
    pos, h, t, batch = _batch([6, 4, 9, 5])
    estimate = _estimate(h)
    _, out = model(pos, h, t, batch, self_condition=estimate)
    assert torch.isfinite(out).all() and torch.backends.mha.get_fastpath_enabled()
    torch.testing.assert_close(model.train()(pos, h, t, batch, self_condition=estimate)[1], out, atol=1e-12, rtol=0)
    model.eval()
    node_perm, graph_perm, new_batch = permute_graphs(batch, generator=torch.Generator().manual_seed(2))
    moved = GaussianEstimate(estimate.pos[node_perm], estimate.h[node_perm])
    _, permuted = model(pos[node_perm], h[node_perm], t[graph_perm], new_batch, self_condition=moved)
    torch.testing.assert_close(permuted, out[node_perm], atol=1e-12, rtol=1e-10)
    first = batch == 1
    alone = GaussianEstimate(estimate.pos[first], estimate.h[first])
    _, out_alone = model(pos[first], h[first], t[1:2], torch.zeros(int(first.sum()), dtype=torch.long), alone)
    torch.testing.assert_close(out_alone, out[first], atol=1e-12, rtol=1e-10)


@torch.no_grad()
def test_the_attention_bias_reads_the_estimate_in_space():
    """The estimate of an ideal helix, given as its angle features, biases attention by the CA-CA distances of
    the helix rebuilt with 3.80 Å steps (float64): its trace is rebuilt in space, not read residue by residue."""
    model = _self_conditioned()
    theta, tau = ca_internal_coordinates(ideal_helix(20)[:, 1])
    features = torch.from_numpy(angle_features(theta, tau)).double()[None]
    _, bias = model._estimate_inputs(features, features)
    ca = torch.from_numpy(ca_trace_from_internal(theta, tau))
    distances = torch.cdist(ca, ca)
    assert distances[0, 4] < 7.0 and distances[0, 19] > 25.0  # a helix: i, i+4 close, the ends far apart
    expected = model.distance_bias(model.distances(distances.flatten()).unflatten(0, (20, 20)))
    # float32 features; the bias is interpolated from a table every 0.02 Å
    torch.testing.assert_close(bias[0], expected.permute(2, 0, 1), atol=1e-3, rtol=0)


def _labelled(trained=True):
    torch.manual_seed(0)
    model = build_denoiser(
        {"name": "chain_transformer", "hidden_dim": 16, "num_layers": 2, "num_heads": 2, "feedforward_dim": 32},
        in_node_dim=3,
        num_node_labels=3,
    ).double()
    if trained:
        with torch.no_grad():
            model.label_embedding.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(4))
    return model.eval()


@torch.no_grad()
def test_a_fold_conditioned_model_starts_as_the_plain_one_and_hidden_labels_are_no_labels():
    """The label map (no bias) starts at zero, so a plain network's weights load and give its outputs; with every
    label hidden (-1) a trained map changes nothing; given labels change the output, per chain (float64)."""
    plain, fresh = _model(), _labelled(trained=False)
    assert set(fresh.state_dict()) - set(plain.state_dict()) == {"label_embedding.weight"}
    fresh.load_state_dict(plain.state_dict(), strict=False)
    pos, h, t, batch = _batch([6, 4, 9])
    labels = torch.randint(0, 3, (19,), generator=torch.Generator().manual_seed(5))
    out = plain(pos, h, t, batch)[1]
    torch.testing.assert_close(fresh(pos, h, t, batch, node_labels=labels)[1], out, atol=1e-12, rtol=1e-10)
    trained = _labelled()
    trained.load_state_dict({**plain.state_dict(), "label_embedding.weight": trained.label_embedding.weight})
    hidden = torch.full_like(labels, -1)
    torch.testing.assert_close(trained(pos, h, t, batch, node_labels=hidden)[1], out, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(trained(pos, h, t, batch)[1], out, atol=1e-12, rtol=1e-10)
    given = trained(pos, h, t, batch, node_labels=labels)[1]
    assert (given - out).abs().max() > 1e-3
    second = batch == 1  # another chain's labels leave the first chain's output alone
    other = torch.where(second, (labels + 1) % 3, labels)
    changed = trained(pos, h, t, batch, node_labels=other)[1]
    torch.testing.assert_close(changed[batch == 0], given[batch == 0], atol=1e-12, rtol=1e-10)
    assert (changed[second] - given[second]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="without num_node_labels"):
        plain(pos, h, t, batch, node_labels=labels)
    with pytest.raises(ValueError, match="num_node_labels must be >= 0"):
        build_denoiser(
            {"name": "chain_transformer", "hidden_dim": 16, "num_heads": 2}, in_node_dim=3, num_node_labels=-1
        )

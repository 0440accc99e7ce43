"""Self-conditioning in the joint process: the estimate of positions and classes, its training draw, and the
estimate chain of every sampler, with inpainting and refinement."""

import pytest
import torch

from molgen.diffusion.inpainting import KnownPart
from molgen.diffusion.samplers import make_sampler
from molgen.diffusion.self_conditioning import ESTIMATE_RATE, JointEstimate, training_estimate
from molgen.graph_batch import pair_index, remove_mean
from tests.joint_helpers import tiny_joint_module, tiny_molecules

SIZES = [4, 2, 5]


def conditioned_module(seed=0):
    """The tiny self-conditioned joint model with estimate maps that are no longer zero (as after training)."""
    module = tiny_joint_module(seed, self_conditioning=True)
    with torch.no_grad():
        module.denoiser.estimate_node_embedding.weight.normal_(0.0, 0.5)
        module.denoiser.estimate_pair_embedding.weight.normal_(0.0, 0.5)
    return module.eval()


def noisy_inputs(diffusion, t=0.4, seed=0):
    """The denoiser's inputs for the tiny molecules noised to time ``t``."""
    clean = tiny_molecules()
    pairs, batch, t = clean.pair_index, clean.batch, torch.full((clean.num_graphs,), t)
    generator = torch.Generator().manual_seed(seed)
    pos_t, _, node_t, edge_t = diffusion.add_noise(
        clean.pos, clean.node_classes, pairs, clean.edge_classes, t, batch, generator
    )
    node_features = diffusion.node_features(node_t, pos_t.dtype)
    return pos_t, node_features, diffusion.edge_features(edge_t, pos_t.dtype), pairs, t, batch


def test_the_estimate_is_the_clean_positions_and_class_probabilities():
    module = conditioned_module()
    diffusion = module.diffusion
    inputs = noisy_inputs(diffusion)
    pos_t, _, _, _, t, batch = inputs
    with torch.no_grad():
        output = module.denoiser(*inputs)
    estimate = diffusion.self_condition_estimate(inputs, output)
    assert isinstance(estimate, JointEstimate)
    expected = remove_mean(diffusion.gaussian.predict_clean(pos_t, output[0], t[batch, None]), batch)
    torch.testing.assert_close(estimate.pos, expected)
    atom, charge = estimate.node_probs.split(diffusion.node_sizes, dim=-1)
    torch.testing.assert_close(atom, output[1][:, : diffusion.node_sizes[0]].softmax(-1))
    torch.testing.assert_close(charge.sum(-1), torch.ones(len(pos_t)))
    torch.testing.assert_close(estimate.edge_probs, output[2].softmax(-1))


def test_training_draws_the_detached_estimate_for_half_of_the_batches():
    module = conditioned_module()
    diffusion, denoiser = module.diffusion, module.denoiser
    inputs = noisy_inputs(diffusion)
    drawn = [
        training_estimate(denoiser, inputs, diffusion.self_condition_estimate, torch.Generator().manual_seed(s))
        for s in range(400)
    ]
    given = [e for e in drawn if e is not None]
    assert len(given) / len(drawn) == pytest.approx(ESTIMATE_RATE, abs=0.08)
    with torch.no_grad():
        expected = diffusion.self_condition_estimate(inputs, denoiser(*inputs))
    for got, want in zip(given[0], expected):
        torch.testing.assert_close(got, want)
        assert not got.requires_grad


def test_the_loss_trains_the_estimate_maps_only_when_an_estimate_is_drawn():
    grads = []
    for seed in range(8):
        module = tiny_joint_module(self_conditioning=True)  # maps at zero: only an estimate gives them a gradient
        denoiser, generator = module.denoiser, torch.Generator().manual_seed(seed)
        module.diffusion.loss(denoiser, tiny_molecules(), generator=generator)[0].sum().backward()
        grads.append(
            (
                denoiser.estimate_node_embedding.weight.grad.abs().max().item(),
                denoiser.estimate_pair_embedding.weight.grad.abs().max().item(),
            )
        )
    assert any(g == (0.0, 0.0) for g in grads) and any(min(g) > 0.0 for g in grads)


def known_part(dtype=torch.float64):
    """The first two nodes of every graph fixed: a neutral carbon and hydrogen, single-bonded, 1.1 apart."""
    batch = torch.repeat_interleave(torch.arange(len(SIZES)), torch.tensor(SIZES))
    first = torch.cat([torch.tensor([0]), torch.tensor(SIZES).cumsum(0)[:-1]])
    mask = torch.zeros(len(batch), dtype=torch.bool)
    mask[first], mask[first + 1] = True, True
    pos = torch.zeros(len(batch), 3, dtype=dtype)
    pos[first + 1, 0] = 1.1
    nodes = torch.zeros(len(batch), 2, dtype=torch.long)  # atom classes H C N O F; charge classes -1 0 1
    nodes[first, 0], nodes[:, 1] = 1, 1
    pairs = pair_index(batch)
    pair_mask = mask[pairs[0]] & mask[pairs[1]]
    return KnownPart(mask, pos, None, nodes, pair_mask, pair_mask.long())


class Recording(torch.nn.Module):
    """A self-conditioned denoiser that records every call's inputs, estimate and output."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.calls = []

    @property
    def self_conditioning(self):
        return self.model.self_conditioning

    def forward(self, *inputs, self_condition=None):
        output = self.model(*inputs, self_condition=self_condition)
        self.calls.append((inputs, self_condition, output))
        return output


CASES = [("ddpm", {}), ("ddim", {"eta": 0.5}), ("dpm-solver", {}), ("dpm-solver", {"known": True, "resample": 2})]


@pytest.mark.parametrize(
    "name, options", CASES, ids=[f"{n}{'-inpainting' if o.get('known') else ''}" for n, o in CASES]
)
def test_every_sampler_feeds_each_call_the_previous_estimate_at_no_extra_call(name, options):
    """Through the loop (and its resampling jumps), the final clean prediction and the refinement rounds."""
    options = dict(options)
    known = known_part() if options.pop("known", False) else None
    module = conditioned_module()
    diffusion = module.diffusion
    recording = Recording(module.denoiser.double())
    steps, refine = 5, 2
    sampler = make_sampler(name, diffusion, steps, refine_steps=refine, **options)

    def run(denoiser):
        return sampler.sample(
            denoiser, torch.tensor(SIZES), known=known, generator=torch.Generator().manual_seed(0), dtype=torch.float64
        )

    out = run(recording)
    calls = recording.calls
    assert len(calls) == steps * options.get("resample", 1) + 1 + refine
    assert calls[0][1] is None
    for (inputs, _, output), (_, received, _) in zip(calls[:-1], calls[1:]):
        assert received is not None
        for got, want in zip(received, diffusion.self_condition_estimate(inputs, output)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert torch.isfinite(out.pos).all()
    if known is not None:
        assert torch.equal(out.node_classes[known.mask], known.node_classes[known.mask])
        torch.testing.assert_close(out.pos[known.mask], known.pos[known.mask])
    # The estimate is what changed: without it (maps at zero) the model is the plain one, and samples as it does.
    with torch.no_grad():
        module.denoiser.estimate_node_embedding.weight.zero_()
        module.denoiser.estimate_pair_embedding.weight.zero_()
    plain = tiny_joint_module().denoiser.double().eval()
    plain.load_state_dict(module.denoiser.state_dict(), strict=False)
    zeroed, reference = run(module.denoiser), run(plain)
    for field in ("pos", "node_classes", "edge_classes"):
        torch.testing.assert_close(getattr(zeroed, field), getattr(reference, field), rtol=0, atol=0)
    assert not torch.equal(zeroed.pos, out.pos)

"""Graph-level conditions in the core: dropped conditions are the unconditional network, training dropout,
classifier-free guidance (molgen.diffusion.conditioning), and conditional training and sampling end to end."""

import pytest
import torch
from torch_geometric.data import Batch, Data

from molgen.diffusion import make_sampler
from molgen.diffusion.conditioning import (
    GraphCondition,
    GuidedDenoiser,
    condition_features,
    condition_from_batch,
    drop_conditions,
)
from molgen.models import build_denoiser
from molgen.models.egnn_bonds import EGNNBondDenoiser
from molgen.models.egnn_denoiser import EGNNDenoiser
from tests.joint_helpers import JOINT_DIFFUSION, TINY_JOINT_MODEL, joint_dataset_info, tiny_molecules
from tests.models.test_egnn_bonds import make_inputs

CONDITIONS = {"names": ["alpha", "gap"], "units": ["Bohr^3", "meV"], "mean": [75.0, 6800.0], "std": [8.0, 1300.0]}


def conditional_info():
    info = joint_dataset_info().to_dict()
    counts = [[0, 0, 0, 1, 2, 1]] * 20
    info["conditions"] = {
        **CONDITIONS,
        "min": [40.0, 2800.0],
        "max": [120.0, 10500.0],
        "size_bins": [{"edges": torch.linspace(40, 120, 21).tolist(), "counts": counts}] * 2,
    }
    return info


def some_condition(num_graphs, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(num_graphs, 2, generator=gen, dtype=dtype)
    return GraphCondition(values, torch.rand(num_graphs, 2, generator=gen) < 0.7)


def nonzero(model):
    with torch.no_grad():
        for weight in model.condition_embedding.parameters():
            weight.normal_(0.0, 1.0)
    return model


def test_features_are_zero_where_dropped_and_shapes_are_checked():
    cond = GraphCondition(torch.tensor([[1.5, -2.0]]), torch.tensor([[True, False]]))
    torch.testing.assert_close(condition_features(cond, 1, 2, torch.zeros(1)), torch.tensor([[1.5, 0.0, 1.0, 0.0]]))
    assert condition_features(None, 3, 2, torch.zeros(1)).abs().sum() == 0
    with pytest.raises(ValueError, match=r"\[2, 2\]"):
        condition_features(cond, 2, 2, torch.zeros(1))


@pytest.mark.parametrize("condition_layers", [False, True], ids=["input", "every_layer"])
@pytest.mark.parametrize("kind", ["egnn_bonds", "egnn"])
def test_with_every_property_dropped_the_network_is_the_unconditional_one(kind, condition_layers):
    """Same weights without the condition map, any condition map (at the input, or at every layer too):
    identical outputs in float64 when nothing is given (None or an all-False mask), different ones when
    something is."""
    torch.manual_seed(3)
    if kind == "egnn_bonds":
        plain = EGNNBondDenoiser(8, 4, hidden_dim=16, num_layers=2, edge_dim=8).double()
        inputs = make_inputs()
    else:
        plain = EGNNDenoiser(8, hidden_dim=16, num_layers=2).double()
        pos, h, _, _, t, batch = make_inputs()
        inputs = (pos, h, t, batch)
    torch.manual_seed(3)
    conditional = type(plain)(
        *([8, 4] if kind == "egnn_bonds" else [8]),
        **plain_options(kind),
        num_conditions=2,
        condition_layers=condition_layers,
    )
    conditional = nonzero(conditional.double())
    missing, unexpected = conditional.load_state_dict(plain.state_dict(), strict=False)
    maps = ["condition_embedding.linear.weight"] + ["condition_embedding.layer_linear.weight"] * condition_layers
    assert missing == maps and not unexpected
    num_graphs = inputs[-2].shape[0]
    want = plain(*inputs)
    dropped = GraphCondition(torch.randn(num_graphs, 2, dtype=torch.float64), torch.zeros(num_graphs, 2, dtype=bool))
    for got in (conditional(*inputs), conditional(*inputs, condition=dropped)):
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    given = conditional(*inputs, condition=some_condition(num_graphs))
    assert (given[0] - want[0]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="without conditions"):
        plain(*inputs, condition=dropped)


def plain_options(kind):
    return {"hidden_dim": 16, "num_layers": 2, **({"edge_dim": 8} if kind == "egnn_bonds" else {})}


@pytest.mark.parametrize("kind", ["egnn_bonds", "egnn"])
def test_per_layer_conditions_start_at_zero_and_reach_every_layer(kind):
    """A model conditioned at its input loads into one conditioned at every layer (init_from) and gives the same
    outputs; once the per-layer map is trained, each layer's block changes the output and gets a gradient."""
    torch.manual_seed(5)
    inputs = make_inputs() if kind == "egnn_bonds" else tuple(make_inputs()[i] for i in (0, 1, 4, 5))
    network, args = (EGNNBondDenoiser, [8, 4]) if kind == "egnn_bonds" else (EGNNDenoiser, [8])
    at_input = nonzero(network(*args, **plain_options(kind), num_conditions=2).double())
    every_layer = network(*args, **plain_options(kind), num_conditions=2, condition_layers=True).double()
    assert every_layer.condition_embedding.layer_linear.weight.abs().sum() == 0
    missing, unexpected = every_layer.load_state_dict(at_input.state_dict(), strict=False)
    assert missing == ["condition_embedding.layer_linear.weight"] and not unexpected
    condition = some_condition(inputs[-2].shape[0])
    for a, b in zip(every_layer(*inputs, condition=condition), at_input(*inputs, condition=condition)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    layer_map = every_layer.condition_embedding.layer_linear.weight  # [num_layers * hidden, 2 P]
    hidden = plain_options(kind)["hidden_dim"]
    for k in range(plain_options(kind)["num_layers"]):
        with torch.no_grad():
            layer_map.zero_()
            layer_map[k * hidden : (k + 1) * hidden].normal_(0.0, 1.0)
        changed = every_layer(*inputs, condition=condition)
        assert (changed[0] - at_input(*inputs, condition=condition)[0]).abs().max() > 1e-6
    every_layer.zero_grad()
    sum(out.square().sum() for out in every_layer(*inputs, condition=condition)).backward()
    assert layer_map.grad.abs().sum() > 0


def test_a_fresh_condition_map_is_zero_and_e3nn_refuses_conditions():
    model = build_denoiser({**TINY_JOINT_MODEL}, in_node_dim=8, num_edge_classes=4, num_conditions=3)
    assert model.condition_embedding.linear.weight.shape == (16, 6)
    assert model.condition_embedding.linear.weight.abs().sum() == 0
    with pytest.raises(ValueError, match="takes no conditions"):
        build_denoiser({"name": "e3nn"}, in_node_dim=5, num_conditions=1)


def test_dropout_hides_each_property_independently_at_its_rate():
    cond = GraphCondition(torch.zeros(20000, 3), torch.ones(20000, 3, dtype=bool))
    dropped = drop_conditions(cond, 0.3, torch.Generator().manual_seed(0))
    hidden = (~dropped.mask).double().mean(dim=0)
    torch.testing.assert_close(hidden, torch.full((3,), 0.3, dtype=torch.float64), atol=0.015, rtol=0)
    both = (~dropped.mask).all(dim=1).double().mean()  # independent: 0.3 ** 3
    assert abs(float(both) - 0.027) < 0.006
    assert drop_conditions(cond, 0.0) is cond and drop_conditions(None, 0.5) is None
    batch = Batch.from_data_list([Data(pos=torch.zeros(1, 3), y=torch.tensor([[0.5, 1.0, -1.0]]))] * 2)
    assert condition_from_batch(batch).values.shape == (2, 3) and condition_from_batch(batch).mask.all()


def test_guidance_combines_the_two_calls_and_scale_zero_is_the_conditional_network():
    torch.manual_seed(0)
    model = nonzero(EGNNBondDenoiser(8, 4, hidden_dim=16, num_layers=2, edge_dim=8, num_conditions=2).double())
    inputs = make_inputs()
    cond = some_condition(inputs[-2].shape[0])
    given, free = model(*inputs, condition=cond), model(*inputs)
    for a, b in zip(GuidedDenoiser(model, 0.0)(*inputs, condition=cond), given):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, c, u in zip(GuidedDenoiser(model, 2.5)(*inputs, condition=cond), given, free):
        torch.testing.assert_close(a, 3.5 * c - 2.5 * u)
    for a, b in zip(GuidedDenoiser(model, 2.5)(*inputs), free):  # no condition: the plain call
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def tiny_conditional_module(seed=0):
    from molgen.training.module import DiffusionModule

    torch.manual_seed(seed)
    module = DiffusionModule(
        model=TINY_JOINT_MODEL,
        diffusion=JOINT_DIFFUSION,
        optim={"lr": 1e-3},
        dataset_info=conditional_info(),
        condition_dropout=0.3,
    )
    nonzero(module.denoiser)
    return module.eval()


def test_sampler_guidance_doubles_the_calls_and_needs_a_condition():
    module = tiny_conditional_module()
    sizes = torch.tensor([4, 3])
    cond = some_condition(2, torch.float32)

    def sample(guidance, condition=cond, seed=5):
        sampler = make_sampler("ddim", module.diffusion, 6, guidance=guidance, eta=1.0)
        return sampler, sampler.sample(
            module.denoiser, sizes, graph_condition=condition, generator=torch.Generator().manual_seed(seed)
        )

    plain_sampler, plain = sample(0.0)
    guided_sampler, guided = sample(2.0)
    assert guided_sampler.network_calls == 2 * plain_sampler.network_calls == 14
    assert not torch.equal(plain.pos, guided.pos)  # the guided direction differs where the condition matters
    # with every property dropped, conditional and unconditional calls agree: guidance changes nothing
    none_given = GraphCondition(cond.values, torch.zeros_like(cond.mask))
    _, dropped_plain = sample(0.0, none_given)
    _, dropped_guided = sample(2.0, none_given)
    torch.testing.assert_close(dropped_guided.pos, dropped_plain.pos, atol=1e-5, rtol=1e-5)  # float32 rounding
    assert torch.equal(dropped_guided.edge_classes, dropped_plain.edge_classes)
    with pytest.raises(ValueError, match="guidance needs a condition"):
        sample(1.0, None)
    with pytest.raises(ValueError, match="guidance must be"):
        make_sampler("ddim", module.diffusion, 6, guidance=-1.0)


def test_training_step_reaches_the_condition_map_and_validation_is_deterministic():
    module = tiny_conditional_module().train()
    mols = tiny_molecules()
    data = []
    for g in range(3):
        nodes = mols.batch == g
        offset = int(torch.nonzero(nodes)[0])
        pairs = mols.pair_index[:, (mols.batch[mols.pair_index[0]] == g) & (mols.edge_classes > 0)]
        data.append(
            Data(
                pos=mols.pos[nodes],
                node_classes=mols.node_classes[nodes],
                pair_class_index=pairs - offset,
                pair_class=mols.edge_classes[(mols.batch[mols.pair_index[0]] == g) & (mols.edge_classes > 0)],
                y=torch.tensor([[0.5 * g, -1.0]]),
                num_nodes=int(nodes.sum()),
            )
        )
    batch = Batch.from_data_list(data)
    loss = module.training_step(batch, 0)
    loss.backward()
    assert module.denoiser.condition_embedding.linear.weight.grad.abs().sum() > 0
    first = module._loss(batch, torch.Generator().manual_seed(0))[0]
    assert torch.equal(first, module._loss(batch, torch.Generator().manual_seed(0))[0])
    with pytest.raises(ValueError, match="condition_dropout"):
        type(module)(TINY_JOINT_MODEL, JOINT_DIFFUSION, {"lr": 1e-3}, conditional_info(), condition_dropout=1.0)


def test_the_condition_map_learns_at_its_own_rate():
    module = tiny_conditional_module()
    condition_map = module.denoiser.condition_embedding.linear.weight
    for scale in (1.0, 10.0):
        module.hparams.optim = {"lr": 1e-3, "condition_lr_scale": scale}
        groups = module.configure_optimizers().param_groups
        assert [g["lr"] for g in groups] == [1e-3, scale * 1e-3]  # the same groups whatever the scale (resume)
        assert groups[1]["params"] == [condition_map]
        assert sum(len(g["params"]) for g in groups) == len(list(module.denoiser.parameters()))
    module.hparams.optim = {"lr": 1e-3}  # checkpoints written before the option: the plain rate
    assert [g["lr"] for g in module.configure_optimizers().param_groups] == [1e-3, 1e-3]

"""Valence-constrained decoding: the greedy repair, and `constrained_decoding` through the sampler and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem

from molgen.checkpoint import load_checkpoint
from molgen.cli import main
from molgen.diffusion import make_sampler
from molgen.molecules.fragments import read_fragment
from molgen.molecules.valence_decoding import ValenceConstraint, max_valence
from molgen.sampling import SamplingConfig, generate
from tests.helpers import save_tiny_checkpoint
from tests.joint_helpers import save_tiny_joint_checkpoint, tiny_joint_module

ELEMENTS, CHARGES, ORDERS = ["H", "C", "N", "O", "F"], [-1, 0, 1], [0, 1, 2, 3]
CONSTRAINT = ValenceConstraint(ELEMENTS, CHARGES, ORDERS, atom_column=0, charge_column=1)


def nodes(*atoms: tuple[str, int]) -> torch.Tensor:
    """[N, 2] classes (atom type, charge) of ``(symbol, charge)`` pairs."""
    return torch.tensor([[ELEMENTS.index(e), CHARGES.index(q)] for e, q in atoms])


def star(center: tuple[str, int], orders: list[int], probs: list[list[float]]):
    """A centre atom (node 0) bonded to carbons 1..len(orders): node classes, pairs, edge classes, log-probs."""
    n = len(orders)
    pairs = torch.stack([torch.zeros(n, dtype=torch.long), torch.arange(1, n + 1)])
    log_probs = torch.tensor(probs, dtype=torch.float64).log()
    return nodes(center, *[("C", 0)] * n), pairs, torch.tensor(orders), log_probs


def test_valence_caps_follow_the_charged_table():
    assert [max_valence("C", 0), max_valence("N", 0), max_valence("N", 1), max_valence("O", -1)] == [4, 3, 4, 1]
    assert max_valence("S", 0) == 6 and max_valence("F", 1) == 1  # an unlisted charge: the neutral element's cap
    assert max_valence("Xe", 0) > 100  # an element the table lacks is not constrained


def test_the_least_likely_bond_is_lowered_and_a_valid_graph_is_kept():
    # carbon with five single bonds; bond 3 is the one the model most believes absent
    probs = [[0.01, 0.97, 0.01, 0.01]] * 5
    probs[3] = [0.40, 0.58, 0.01, 0.01]
    node, pairs, classes, log_probs = star(("C", 0), [1] * 5, probs)
    assert CONSTRAINT(node, pairs, classes, log_probs).tolist() == [1, 1, 1, 0, 1]
    # a double bond that is nearly as likely single is lowered rather than breaking a confident single bond
    probs = [[0.01, 0.45, 0.53, 0.01], [0.01, 0.97, 0.01, 0.01], [0.01, 0.97, 0.01, 0.01], [0.01, 0.97, 0.01, 0.01]]
    node, pairs, classes, log_probs = star(("C", 0), [2, 1, 1, 1], probs)
    assert CONSTRAINT(node, pairs, classes, log_probs).tolist() == [1, 1, 1, 1]
    # N+ may have four bonds, neutral N only three
    probs = [[0.1, 0.8, 0.05, 0.05]] * 4
    node, pairs, classes, log_probs = star(("N", 1), [1] * 4, probs)
    assert CONSTRAINT(node, pairs, classes, log_probs).tolist() == [1] * 4
    node, pairs, classes, log_probs = star(("N", 0), [1] * 4, probs)
    assert CONSTRAINT(node, pairs, classes, log_probs).sum() == 3


def test_frozen_bonds_are_never_lowered():
    # the cheapest bond to lower is frozen (a fixed part's): the next cheapest goes instead
    probs = [[0.01, 0.97, 0.01, 0.01]] * 5
    probs[3], probs[1] = [0.40, 0.58, 0.01, 0.01], [0.10, 0.88, 0.01, 0.01]
    node, pairs, classes, log_probs = star(("C", 0), [1] * 5, probs)
    frozen = torch.tensor([False, False, False, True, False])
    assert CONSTRAINT(node, pairs, classes, log_probs, frozen).tolist() == [1, 0, 1, 1, 1]
    # an excess only frozen bonds could remove is left alone (and the repair ends)
    everything = torch.ones(5, dtype=torch.bool)
    assert CONSTRAINT(node, pairs, classes, log_probs, everything).tolist() == [1] * 5


def test_random_graphs_end_within_their_caps_by_lowering_orders_only():
    generator = torch.Generator().manual_seed(0)
    n = 12
    node = torch.stack(
        [torch.randint(0, 5, (n,), generator=generator), torch.randint(0, 3, (n,), generator=generator)], 1
    )
    pairs = torch.triu_indices(n, n, 1)
    classes = torch.randint(0, 4, (pairs.shape[1],), generator=generator)
    log_probs = torch.log_softmax(torch.randn(pairs.shape[1], 4, generator=generator), -1)
    repaired = CONSTRAINT(node, pairs, classes, log_probs)
    assert (repaired <= classes).all() and (repaired != classes).any()
    valence = torch.zeros(n, dtype=torch.long).index_add_(0, pairs[0], repaired).index_add_(0, pairs[1], repaired)
    caps = [max_valence(ELEMENTS[e], CHARGES[q]) for e, q in node.tolist()]
    assert all(v <= cap for v, cap in zip(valence.tolist(), caps))


def test_bond_classes_must_be_orders_from_zero():
    with pytest.raises(ValueError, match="orders 0, 1, ..., K-1"):
        ValenceConstraint(ELEMENTS, CHARGES, [0, 1, 3], atom_column=0, charge_column=1)


def over_valent_fraction(molecules) -> float:
    """Fraction of atoms whose bond-order sum exceeds their cap (the tiny model generates its hydrogens)."""
    over = total = 0
    for molecule in molecules:
        for atom, (z, charge) in enumerate(zip(molecule.atomic_numbers, molecule.charges)):
            rows = molecule.bonds[(molecule.bonds[:, 0] == atom) | (molecule.bonds[:, 1] == atom)]
            symbol = Chem.GetPeriodicTable().GetElementSymbol(int(z))
            over += int(rows[:, 2].sum()) > max_valence(symbol, int(charge))
            total += 1
    return over / total


def save_bond_happy_checkpoint(path):
    """The tiny joint model, its hydrogens placed at export (as drug-like models), with a bond readout that bonds
    every pair (single most likely): most atoms get too many bonds."""
    module = tiny_joint_module(remove_h=True)
    with torch.no_grad():
        module.denoiser.edge_readout[2].weight.zero_()
        module.denoiser.edge_readout[2].bias.copy_(torch.tensor([0.0, 3.0, 2.0, 1.0]))
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def test_constrained_decoding_leaves_no_atom_over_valent(tmp_path, capsys):
    model = load_checkpoint(save_bond_happy_checkpoint(tmp_path / "joint.ckpt"))
    drawn = generate(model, 24, SamplingConfig("ddpm", 4), seed=1, progress=False)
    repaired = generate(model, 24, SamplingConfig("ddpm", 4, {"constrained_decoding": True}), seed=1, progress=False)
    assert over_valent_fraction(drawn) > 0.05
    assert over_valent_fraction(repaired) == 0.0
    # the same draws up to the repair: positions and elements agree, only bond orders went down
    for a, b in zip(drawn, repaired):
        np.testing.assert_array_equal(a.atomic_numbers, b.atomic_numbers)
        np.testing.assert_allclose(a.positions, b.positions, rtol=1e-4)  # the last call sees the repaired bonds
        assert b.bonds[:, 2].sum() <= a.bonds[:, 2].sum()

    out = tmp_path / "c.sdf"
    args = ["sample", "--ckpt", str(tmp_path / "joint.ckpt"), "--steps", "4", "--sampler", "ddpm", "--no-progress"]
    assert main([*args, "--num-samples", "6", "--constrained-decoding", "--out", str(out)]) == 0
    supplier = Chem.SDMolSupplier(str(out), sanitize=False, removeHs=False)
    molecules = list(supplier)
    assert all("constrained_decoding=True" in m.GetProp("sampler") for m in molecules)
    assert not any(
        sum(b.GetBondTypeAsDouble() for b in a.GetBonds()) > max_valence(a.GetSymbol(), a.GetFormalCharge())
        for m in molecules
        for a in m.GetAtoms()
    )


def test_constrained_decoding_is_refused_where_it_cannot_apply(tmp_path, capsys):
    coords_only = save_tiny_checkpoint(tmp_path / "coords.ckpt")
    args = ["sample", "--ckpt", str(coords_only), "--out", str(tmp_path / "c.sdf"), "--constrained-decoding"]
    assert main(args) == 1
    assert "--constrained-decoding applies to models that generate bonds" in capsys.readouterr().err
    assert not (tmp_path / "c.sdf").exists()
    with_hydrogens = save_tiny_joint_checkpoint(tmp_path / "joint.ckpt")  # generates its hydrogens, as qm9
    args = ["sample", "--ckpt", str(with_hydrogens), "--out", str(tmp_path / "h.sdf"), "--constrained-decoding"]
    assert main([*args, "--steps", "2", "--num-samples", "2", "--no-progress"]) == 1
    assert "would leave a radical rather than gain a hydrogen" in capsys.readouterr().err
    assert not (tmp_path / "h.sdf").exists()
    joint = load_checkpoint(with_hydrogens)
    sampler = make_sampler("ddpm", joint.diffusion, 2, constrained_decoding=True)
    with pytest.raises(ValueError, match="needs the domain's class constraint"):
        sampler.sample(joint.denoiser, torch.tensor([3, 4]))
    with pytest.raises(ValueError, match="must be true or false"):
        make_sampler("ddpm", joint.diffusion, 2, constrained_decoding=1)


@pytest.mark.parametrize("sampler", ["ddpm", "consistency"])
def test_constrained_linking_keeps_the_fixed_bonds_and_caps_every_atom(tmp_path, sampler):
    ckpt, out = save_bond_happy_checkpoint(tmp_path / "joint.ckpt"), tmp_path / "l.sdf"
    fragments = Path(__file__).resolve().parents[2] / "data" / "examples" / "fragments.sdf"
    fragment = read_fragment(fragments)
    args = ["sample", "--ckpt", str(ckpt), "--out", str(out), "--steps", "4", "--no-progress", "--sampler", sampler]
    link = ["--link", str(fragments), "--linker-atoms", "3", "--num-samples", "4", "--constrained-decoding"]
    assert main([*args, *link]) == 0
    expected = {(i, j): order for i, j, order in fragment.bonds.tolist()}
    for mol in Chem.SDMolSupplier(str(out), removeHs=False, sanitize=False):
        among = {
            (b.GetBeginAtomIdx(), b.GetEndAtomIdx()): int(b.GetBondTypeAsDouble())
            for b in mol.GetBonds()
            if max(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) < fragment.num_atoms
        }
        assert {tuple(sorted(pair)): order for pair, order in among.items()} == expected
        assert not any(
            sum(b.GetBondTypeAsDouble() for b in a.GetBonds()) > max_valence(a.GetSymbol(), a.GetFormalCharge())
            for a in mol.GetAtoms()
        )

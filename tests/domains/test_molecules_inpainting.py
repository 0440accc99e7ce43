"""`molgen sample --fix / --link` end to end on tiny models, and their bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.cli import main
from molgen.domains.molecules import GeneratedMolecule, fixed_part_report
from molgen.molecules.fragments import Fragment, read_fragment
from tests.helpers import save_tiny_checkpoint
from tests.joint_helpers import save_tiny_joint_checkpoint, tiny_joint_module

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "examples"
SCAFFOLD, FRAGMENTS = EXAMPLES / "scaffold.sdf", EXAMPLES / "fragments.sdf"


def sample(ckpt, out, *args):
    return main(["sample", "--ckpt", str(ckpt), "--out", str(out), "--steps", "4", "--no-progress", *args])


def records(path):
    return list(Chem.SDMolSupplier(str(path), removeHs=False, sanitize=False))


def check_fixed_atoms(mols, fragment):
    k = fragment.num_atoms
    for mol in mols:
        assert mol.GetProp("fixed_atoms") == ",".join(str(i + 1) for i in range(k))
        assert [a.GetAtomicNum() for a in mol.GetAtoms()][:k] == fragment.atomic_numbers.tolist()
        # the SDF's 4 decimals are the only change
        assert np.abs(mol.GetConformer().GetPositions()[:k] - fragment.positions).max() < 1e-4


def test_fix_decorates_the_scaffold_in_place(tmp_path, capsys):
    ckpt, out = save_tiny_checkpoint(tmp_path / "tiny.ckpt"), tmp_path / "s.sdf"
    assert sample(ckpt, out, "--fix", str(SCAFFOLD), "--num-atoms", "9", "--num-samples", "3") == 0
    mols = records(out)
    assert len(mols) == 3 and all(m.GetNumAtoms() == 9 for m in mols)
    check_fixed_atoms(mols, read_fragment(SCAFFOLD))
    report = capsys.readouterr().out
    assert "[fixed part]" in report and "substructure_kept" in report


def fixed_part_aware_checkpoint(path):
    """A tiny bond model trained with fixed parts (its maps of the known part made non-zero)."""
    module = tiny_joint_module(fixed_part_input=True)
    with torch.no_grad():
        module.denoiser.fixed_node_embedding.weight.normal_()
        module.denoiser.fixed_pair_embedding.weight.normal_()
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


RESTART = ("--refine-steps", "3", "--refine-time", "0.1", "--refine-classes", "--polish-steps", "1")


@pytest.mark.parametrize(
    "sampler, aware, rounds",
    [("ddpm", False, ()), ("consistency", False, ()), ("ddpm", True, ()), ("ddpm", False, RESTART)],
    ids=["ddpm", "consistency", "aware", "restart-rounds"],
)
def test_link_keeps_the_fragments_and_their_bonds_with_a_bond_model(tmp_path, capsys, sampler, aware, rounds):
    make = fixed_part_aware_checkpoint if aware else save_tiny_joint_checkpoint
    ckpt, out = make(tmp_path / "joint.ckpt"), tmp_path / "l.sdf"
    fragment = read_fragment(FRAGMENTS)
    link = ["--link", str(FRAGMENTS), "--linker-atoms", "2-4", "--num-samples", "4", "--resample", "2"]
    assert sample(ckpt, out, *link, "--sampler", sampler, *rounds) == 0
    mols = records(out)
    assert sorted({m.GetNumAtoms() for m in mols}) <= [fragment.num_atoms + k for k in (2, 3, 4)]
    check_fixed_atoms(mols, fragment)
    expected = {(i, j): o for i, j, o in fragment.bonds.tolist()}
    for mol in mols:  # the generated graph keeps the bonds among the fixed atoms, and no others among them
        among = {
            tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))): int(b.GetBondTypeAsDouble())
            for b in mol.GetBonds()
            if max(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) < fragment.num_atoms
        }
        assert among == expected
    assert "valid_and_connected" in capsys.readouterr().out
    label = mols[0].GetProp("sampler")
    assert label.startswith(sampler) and "resample=2" in label and ("polish_steps=1" in label) == bool(rounds)


def _sdf(tmp_path, name, smiles, shift=0.0):
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=0)
    mol = Chem.RemoveHs(mol)
    conf = mol.GetConformer()
    for i in range(mol.GetNumAtoms()):
        p = conf.GetAtomPosition(i)
        conf.SetAtomPosition(i, (p.x + shift, p.y, p.z))
    path = tmp_path / name
    writer = Chem.SDWriter(str(path))
    writer.write(mol)
    writer.close()
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        (["--fix", "SCAFFOLD"], "--fix needs --num-atoms"),
        (["--fix", "SCAFFOLD", "--num-atoms", "6"], "leaves nothing to generate around the 6 atoms"),
        (["--link", "SCAFFOLD", "--linker-atoms", "3"], "needs two or more disconnected fragments"),
        (["--link", "FRAGMENTS"], "--link takes --linker-atoms"),
        (["--linker-atoms", "3"], "--linker-atoms applies only with --link"),
        (["--resample", "2"], "--resample applies only with --fix, --link or --motif"),
        (["--fix", "THIOPHENE", "--num-atoms", "9"], "unsupported element(s) ['S']"),
        (["--fix", "OVERLAP", "--num-atoms", "12"], "fragments overlap"),
        (["--fix", "EMPTY", "--num-atoms", "9"], "no atoms to keep"),
        (["--fix", "MISSING", "--num-atoms", "9"], "not found"),
    ],
)
def test_bad_fixed_parts_are_one_line_and_write_nothing(tmp_path, capsys, case, message):
    ckpt, out = save_tiny_checkpoint(tmp_path / "tiny.ckpt"), tmp_path / "s.sdf"
    thiophene = _sdf(tmp_path, "thiophene.sdf", "c1ccsc1")
    overlap = tmp_path / "overlap.sdf"
    overlap.write_text(SCAFFOLD.read_text() * 2)  # the same ring twice, on top of itself
    empty = tmp_path / "empty.sdf"
    empty.write_text("")
    files = {
        "SCAFFOLD": SCAFFOLD,
        "FRAGMENTS": FRAGMENTS,
        "THIOPHENE": thiophene,
        "OVERLAP": overlap,
        "EMPTY": empty,
        "MISSING": tmp_path / "missing.sdf",
    }
    args = [str(files.get(a, a)) for a in case]
    assert sample(ckpt, out, "--num-samples", "2", *args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


def test_fixed_parts_are_for_molecule_models(tmp_path, capsys):
    ckpt = save_tiny_checkpoint(tmp_path / "bb.ckpt", domain="backbones")
    assert sample(ckpt, tmp_path / "d", "--fix", str(SCAFFOLD), "--num-atoms", "9") == 1
    assert "--fix and --link are for molecule checkpoints" in capsys.readouterr().err


def test_fragments_file_is_read_with_its_components(tmp_path):
    fragment = read_fragment(FRAGMENTS)
    assert fragment.num_atoms == 5 and fragment.num_components == 2
    assert fragment.bonds.tolist() == [[0, 1, 1], [2, 3, 2], [2, 4, 1]]
    ring = read_fragment(SCAFFOLD)  # aromatic in the file: Kekulé orders here
    assert ring.num_components == 1 and sorted(ring.bonds[:, 2].tolist()) == [1, 1, 1, 2, 2, 2]
    rings = read_fragment(EXAMPLES / "drug_fragments.sdf")  # the README's drug-size linking example
    assert rings.num_atoms == 12 and rings.num_components == 2
    assert (
        sorted(rings.atomic_numbers.tolist()) == [6] * 11 + [7]
        and sorted(rings.bonds[:, 2].tolist()) == [1] * 6 + [2] * 6
    )


def test_fixed_part_report_tells_radicals_from_stable_molecules():
    # methanol (C, O and their hydrogens) with the fixed C-O; a second one lacks the hydroxyl H: a radical
    positions = np.array(
        [[0, 0, 0], [1.43, 0, 0], [-0.4, 1.0, 0], [-0.4, -0.5, 0.9], [-0.4, -0.5, -0.9], [1.8, 0.9, 0]]
    )
    bonds = np.array([[0, 1, 1], [0, 2, 1], [0, 3, 1], [0, 4, 1], [1, 5, 1]])
    fragment = Fragment(np.array([6, 8]), positions[:2], np.zeros(2, dtype=int), np.array([[0, 1, 1]]))
    whole = GeneratedMolecule(np.array([6, 8, 1, 1, 1, 1]), positions, bonds, np.zeros(6, dtype=int))
    radical = GeneratedMolecule(np.array([6, 8, 1, 1, 1]), positions[:5], bonds[:4], np.zeros(5, dtype=int))
    report = fixed_part_report([whole, radical], fragment)
    assert report["substructure_kept"] == 1.0 and report["valid_and_connected"] == 1.0
    assert report["stable_and_connected"] == 0.5


def test_fixed_aromatic_ring_counts_as_kept_after_hydrogens_are_placed():
    # toluene's heavy atoms (Kekulé ring kept from a benzene fragment); sanitising at export makes the ring aromatic
    ring = np.array([[1.39 * np.cos(a), 1.39 * np.sin(a), 0.0] for a in np.arange(6) * np.pi / 3])
    positions = np.vstack([ring, [[2.9, 0.0, 0.0]]])
    ring_bonds = np.array([[0, 1, 2], [1, 2, 1], [2, 3, 2], [3, 4, 1], [4, 5, 2], [0, 5, 1]])
    fragment = Fragment(np.full(6, 6), ring, np.zeros(6, dtype=int), ring_bonds)
    toluene = GeneratedMolecule(
        np.full(7, 6), positions, np.vstack([ring_bonds, [[0, 6, 1]]]), np.zeros(7, dtype=int), place_hydrogens=True
    )
    report = fixed_part_report([toluene], fragment)
    assert report["substructure_kept"] == 1.0 and report["stable_and_connected"] == 1.0

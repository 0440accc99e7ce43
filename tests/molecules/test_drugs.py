"""Drug-like data: conformer preparation (failures by reason, resumable chunks, determinism) and the dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from molgen.molecules import conformers, drugs
from molgen.molecules.conformers import ConformerConfig, failure_counts, load_chunks, prepare_chunks, prepare_molecule
from molgen.molecules.moses import moses_path

FAST = ConformerConfig(elements=drugs.DRUG_ELEMENTS, num_conformers=1, max_iterations=200)

# Tiny in-code SMILES set: kept molecules, and one of each failure reason we can provoke.
SMILES = (
    "CC(=O)Nc1ccc(O)cc1",  # paracetamol
    "CC[N+](=O)[O-]",  # nitroethane: charges -1 and +1
    "C1CC",  # does not parse
    "C[Se]C",  # element outside the set
    "[NH4+].[Cl-]",  # two fragments
    "C1#CC#C1",  # does not embed
    "Clc1ccc(Br)cc1S",
    "OC(=O)C1CCCN1",
)


@pytest.fixture
def tiny_moses(monkeypatch):
    """Every MOSES split read as SMILES above (the split orders are recomputed)."""
    monkeypatch.setattr(drugs, "read_moses_smiles", lambda split: SMILES)
    drugs.split_order.cache_clear()
    yield
    drugs.split_order.cache_clear()


def test_prepare_molecule_keeps_a_kekule_heavy_atom_graph():
    result = prepare_molecule("CC(=O)Nc1ccc(O)cc1", seed=3, config=FAST)
    assert not isinstance(result, str)
    assert result.atomic_numbers.tolist().count(6) == 8 and len(result.atomic_numbers) == 11
    assert (result.atomic_numbers != 1).all()
    orders = sorted(result.bonds[:, 2].tolist())
    assert orders.count(2) == 4 and 3 not in orders  # Kekulé ring: 3 double bonds, plus C=O
    assert (result.bonds[:, 0] < result.bonds[:, 1]).all()
    bonded = result.positions[result.bonds[:, 0]] - result.positions[result.bonds[:, 1]]
    assert 1.15 < np.linalg.norm(bonded, axis=1).min() and np.linalg.norm(bonded, axis=1).max() < 1.6
    assert np.isfinite(result.energy)


@pytest.mark.parametrize(
    ("smiles", "reason"),
    [
        ("C1CC", "parse_failed"),
        ("C[Se]C", "element"),
        ("[NH4+].[Cl-]", "multiple_fragments"),
        ("C1#CC#C1", "embed_failed"),
    ],
)
def test_prepare_molecule_names_the_failure(smiles, reason):
    assert prepare_molecule(smiles, seed=0, config=FAST) == reason


def test_preparation_is_deterministic_per_molecule():
    a, b = (prepare_molecule("OC(=O)C1CCCN1", seed=17, config=FAST) for _ in range(2))
    np.testing.assert_array_equal(a.positions, b.positions)


def test_chunks_count_failures_and_resume_after_a_kill(tmp_path, monkeypatch):
    order = list(range(len(SMILES)))
    real = conformers._prepare_chunk
    calls = []

    def dies_on_third_chunk(smiles, rows, config):
        calls.append(rows[0])
        if len(calls) == 3:
            raise KeyboardInterrupt  # the preparation is killed in the middle
        return real(smiles, rows, config)

    monkeypatch.setattr(conformers, "_prepare_chunk", dies_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        prepare_chunks(tmp_path, "train", SMILES, order, len(SMILES), config=FAST, chunk_size=2, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train-00000.pt", "train-00001.pt"]  # no partial chunk

    calls.clear()
    paths = prepare_chunks(tmp_path, "train", SMILES, order, len(SMILES), config=FAST, chunk_size=2, workers=1)
    assert calls == [4, 6]  # only the chunks the killed run did not finish
    data = load_chunks(paths)
    assert failure_counts(data["reason"]) == {
        "kept": 4,
        "parse_failed": 1,
        "element": 1,
        "multiple_fragments": 1,
        "embed_failed": 1,
    }
    assert data["rows"].tolist() == order and len(data["ptr"]) == len(SMILES) + 1

    calls.clear()
    prepare_chunks(tmp_path, "train", SMILES, order, len(SMILES), config=FAST, chunk_size=2, workers=1)
    assert calls == []  # everything prepared: nothing redone
    other = ConformerConfig(elements=drugs.DRUG_ELEMENTS, num_conformers=2, max_iterations=200)
    prepare_chunks(tmp_path, "train", SMILES, order, 2, config=other, chunk_size=2, workers=1)
    assert calls == [0]  # another configuration prepares again


def test_a_corrupt_chunk_is_prepared_again(tmp_path):
    order = list(range(4))
    paths = prepare_chunks(tmp_path, "test", SMILES, order, 4, config=FAST, chunk_size=2, workers=1)
    paths[1].write_bytes(b"not a torch file")
    paths = prepare_chunks(tmp_path, "test", SMILES, order, 4, config=FAST, chunk_size=2, workers=1, progress=False)
    assert load_chunks(paths)["rows"].tolist() == order


def test_drugs_dataset_serves_bond_graphs(tiny_moses, tmp_path, monkeypatch):
    monkeypatch.setattr(drugs, "prepare_drugs", _fast_prepare(drugs.prepare_drugs))
    train, val, info = drugs.drugs_train_val(num_molecules=8, val_molecules=4, cache_dir=tmp_path, workers=1)
    assert len(train) == 4 and train.failures["kept"] == 4
    assert info.dataset == "drugs" and info.remove_h and info.num_dropped["train"] == 4
    assert info.categorical["node"][0]["classes"] == list(drugs.DRUG_ELEMENTS)
    assert sum(info.categorical["edge"]["marginals"]) == pytest.approx(1.0)
    item = train[0]
    assert item.node_classes.shape == (item.num_nodes, 2)
    assert torch.allclose(item.pos.mean(0), torch.zeros(3), atol=1e-5)
    assert set(item.pair_class.tolist()) <= {1, 2, 3}
    sub, _, _ = drugs.drugs_train_val(num_molecules=8, val_molecules=4, subset=2, cache_dir=tmp_path, workers=1)
    assert len(sub) == 2
    with pytest.raises(ValueError, match="subset must be between 1 and 4"):
        drugs.drugs_train_val(num_molecules=8, val_molecules=4, subset=5, cache_dir=tmp_path, workers=1)


def _fast_prepare(prepare):
    def fast(*args, **kwargs):
        kwargs["config"] = FAST
        return prepare(*args, **kwargs)

    return fast


def test_splits_are_fixed_permutations(tiny_moses):
    train, valid = drugs.split_order("train"), drugs.split_order("valid")
    assert sorted(train.tolist()) == list(range(len(SMILES)))
    assert valid.tolist() == train[::-1].tolist()
    with pytest.raises(ValueError, match="unknown drugs split"):
        drugs.split_order("validation")


def test_missing_molsets_says_how_to_install(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps molsets"):
        moses_path("train")


@pytest.mark.slow
def test_train_sample_and_read_back_with_explicit_hydrogens(tiny_moses, tmp_path, monkeypatch):
    """experiment=drugs end to end on the in-code SMILES: train a few steps, sample, read the SDF back."""
    import sys

    from rdkit import Chem

    from molgen.cli import main

    monkeypatch.setattr(sys, "argv", list(sys.argv))  # `molgen train` rewrites it for Hydra
    monkeypatch.setattr(drugs, "prepare_drugs", _fast_prepare(drugs.prepare_drugs))
    run_dir = tmp_path / "run"
    status = main(
        [
            "train",
            "experiment=drugs",
            "data.num_molecules=8",
            "data.val_molecules=8",
            "data.batch_size=4",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.workers=1",
            "model.hidden_dim=16",
            "model.num_layers=2",
            "model.edge_dim=8",
            "trainer.max_steps=3",
            "trainer.progress_bar=false",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert status == 0
    out = tmp_path / "drugs.sdf"
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert (
        main(["sample", "--ckpt", str(ckpt), "--num-samples", "6", "--steps", "5", "--out", str(out), "--no-progress"])
        == 0
    )
    molecules = list(Chem.SDMolSupplier(str(out), removeHs=False, sanitize=False))
    assert len(molecules) == 6
    placed = [m for m in molecules if m.GetProp("hydrogens") != "not_placed"]
    for mol in molecules:
        heavy = [a.GetSymbol() for a in mol.GetAtoms() if a.GetAtomicNum() != 1]
        assert set(heavy) <= set(drugs.DRUG_ELEMENTS) and 5 <= len(heavy) <= 11  # the training sizes
        assert mol.GetProp("hydrogens") in ("mmff", "geometric", "not_placed")
    # Each heavy atom of a placed molecule got the hydrogens its valence leaves open.
    for mol in placed:
        for atom in mol.GetAtoms():
            assert atom.GetNumImplicitHs() == 0 or atom.GetNoImplicit()
        assert any(a.GetAtomicNum() == 1 for a in mol.GetAtoms())

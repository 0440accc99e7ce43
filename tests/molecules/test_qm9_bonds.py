"""QM9 with perceived bonds and charges: perception, the bonds cache, the dataset and its marginals."""

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem
from torch_geometric.loader import DataLoader

from molgen.dataset_info import MoleculeInfo
from molgen.molecules import qm9_bonds
from molgen.molecules.qm9 import edm_split
from molgen.molecules.qm9_bonds import (
    BONDS_CACHE_FILENAME,
    BONDS_CACHE_FORMAT_VERSION,
    DROP_REASONS,
    QM9BondsDataset,
    build_bond_cache,
    load_qm9_bonds,
    perceive_graph,
    process_qm9_bonds,
    qm9_bonds_train_val,
)
from tests.helpers import write_synthetic_qm9_cache


def geometry(smiles, seed=0):
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    AllChem.MMFFOptimizeMolecule(mol)
    return np.array([a.GetAtomicNum() for a in mol.GetAtoms()]), mol.GetConformer().GetPositions()


def test_perceive_kekule_bonds_and_charges():
    charges, bonds = perceive_graph(*geometry("c1ccccc1"))
    ring = [order for i, j, order in bonds if i < 6 and j < 6]
    assert sorted(ring) == [1, 1, 1, 2, 2, 2] and (charges == 0).all()  # kekulized: no aromatic bonds
    charges, bonds = perceive_graph(*geometry("C[N+](=O)[O-]"))
    assert sorted(charges.tolist()) == [-1, 0, 0, 0, 0, 0, 1]
    assert (bonds[:, 0] < bonds[:, 1]).all()
    _, bonds = perceive_graph(*geometry("CC#N"))
    assert 3 in bonds[:, 2]
    assert perceive_graph(np.array([6]), np.zeros((1, 3))) == "not_perceived"


def _small_qm9():
    molecules = [geometry(s) for s in ("C", "CC#N", "c1ccccc1", "C[N+](=O)[O-]")]
    molecules.insert(2, (np.array([6, 6]), np.array([[0.0, 0, 0], [6.0, 0, 0]])))  # far apart: not perceivable
    counts = [len(z) for z, _ in molecules]
    ptr = torch.zeros(len(molecules) + 1, dtype=torch.long)
    ptr[1:] = torch.tensor(counts).cumsum(0)
    return {
        "pos": torch.tensor(np.concatenate([p for _, p in molecules]), dtype=torch.float32),
        "z": torch.tensor(np.concatenate([z for z, _ in molecules]), dtype=torch.int8),
        "ptr": ptr,
    }


def test_build_bond_cache_in_one_and_two_processes():
    data = _small_qm9()
    one = build_bond_cache(data, workers=1, chunk_size=2, progress=False)
    two = build_bond_cache(data, workers=2, chunk_size=2, progress=False)
    for key in ("num_atoms", "reason", "charge", "bond_ptr", "bond_atoms", "bond_order"):
        assert torch.equal(one[key], two[key]), key
    assert one["reason"].tolist() == [0, 0, DROP_REASONS.index("not_perceived"), 0, 0]
    assert one["bond_ptr"].diff().tolist() == [4, 5, 0, 12, 6]
    # methane: four C-H single bonds; nitromethane's charges sit on its N and one O
    assert one["bond_order"][:4].tolist() == [1, 1, 1, 1]
    nitro = slice(int(data["ptr"][4]), int(data["ptr"][5]))
    assert sorted(one["charge"][nitro].tolist()) == [-1, 0, 0, 0, 0, 0, 1]
    assert "kept" in qm9_bonds.summarize_bond_cache(one) and "1 not_perceived" in qm9_bonds.summarize_bond_cache(one)


def test_process_writes_a_safe_cache_and_rebuilds_stale_ones(tmp_path, monkeypatch):
    data = _small_qm9()
    path = process_qm9_bonds(tmp_path, qm9=data, workers=1, progress=False)
    assert path == tmp_path / BONDS_CACHE_FILENAME
    cache = torch.load(path, weights_only=True)
    assert cache["format_version"] == BONDS_CACHE_FORMAT_VERSION and not list(tmp_path.glob(".*.tmp"))
    calls = []
    monkeypatch.setattr(qm9_bonds, "build_bond_cache", lambda *a, **k: calls.append(1) or cache)
    load_qm9_bonds(tmp_path, qm9=data)  # valid: not rebuilt
    assert calls == []
    torch.save({**cache, "format_version": -1}, path)
    load_qm9_bonds(tmp_path, qm9=data)
    assert calls == [1]
    other = dict(data, ptr=torch.tensor([0, 5, 11, 13, 25, 31]))  # other atom counts: stale
    torch.save(cache, path)
    with pytest.raises(RuntimeError):  # the stub returns the mismatching cache again
        load_qm9_bonds(tmp_path, qm9=other)
    assert calls == [1, 1]


@pytest.fixture(scope="module")
def synthetic_caches(tmp_path_factory):
    """QM9-shaped caches: molecule i is a C-H pair with the C at x = i, bonded (order 1 + i % 3),
    charge +1 on C and -1 on H for every fifth molecule; every seventh molecule is dropped."""
    cache_dir = tmp_path_factory.mktemp("qm9_bonds_synthetic")
    m = write_synthetic_qm9_cache(cache_dir)
    ids = torch.arange(m)
    charge = torch.zeros(2 * m, dtype=torch.int8)
    charge[0::2][ids % 5 == 0] = 1
    charge[1::2][ids % 5 == 0] = -1
    reason = torch.where(ids % 7 == 0, 1, 0).to(torch.int8)
    torch.save(
        {
            "format_version": BONDS_CACHE_FORMAT_VERSION,
            "num_atoms": torch.full((m,), 2, dtype=torch.int16),
            "reason": reason,
            "charge": charge,
            "bond_ptr": torch.arange(m + 1),
            "bond_atoms": torch.tensor([[0, 1]], dtype=torch.int16).repeat(m, 1),
            "bond_order": (1 + ids % 3).to(torch.int8),
            "drop_reasons": list(DROP_REASONS),
            "seconds": 0.0,
        },
        cache_dir / BONDS_CACHE_FILENAME,
    )
    return cache_dir


def test_dataset_leaves_out_dropped_molecules_and_serves_classes(synthetic_caches):
    ds = QM9BondsDataset("valid", subset=40, cache_dir=synthetic_caches)
    split = edm_split()["valid"]
    kept = split[split % 7 != 0][:40]
    assert len(ds) == 40 and ds.qm9_index.tolist() == (kept + 1).tolist()
    assert ds.num_dropped == int((split % 7 == 0).sum())
    for k in (0, 13):
        item, i = ds[k], int(kept[k])
        assert item.z.tolist() == [6, 1]
        charge_class = [2, 0] if i % 5 == 0 else [1, 1]  # classes of charges (+1, -1) or (0, 0)
        assert item.node_classes.tolist() == [[1, charge_class[0]], [0, charge_class[1]]]
        assert item.pair_class_index.tolist() == [[0], [1]] and item.pair_class.tolist() == [1 + i % 3]
    batch = next(iter(DataLoader(ds, batch_size=5)))
    assert batch.pair_class_index.tolist() == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]  # offset per molecule
    assert batch.node_classes.shape == (10, 2)


def test_train_val_info_has_channels_and_full_split_marginals(synthetic_caches):
    train, val, info = qm9_bonds_train_val(subset=10, val_subset=5, cache_dir=synthetic_caches)
    assert len(train) == 10 and len(val) == 5
    assert isinstance(info, MoleculeInfo) and info.dataset == "qm9_bonds"
    categorical = info.categorical
    assert [c["name"] for c in categorical["node"]] == ["atom_type", "charge"]
    assert categorical["node"][0]["classes"] == ["H", "C", "N", "O", "F"]
    assert categorical["node"][1]["classes"] == [-1, 0, 1] and categorical["edge"]["classes"] == [0, 1, 2, 3]
    atom, charge = (np.array(c["marginals"]) for c in categorical["node"])
    np.testing.assert_allclose(atom, [0.5, 0.5, 0, 0, 0])
    ids = edm_split()["train"]
    ids = ids[ids % 7 != 0]
    charged = (ids % 5 == 0).mean()
    np.testing.assert_allclose(charge, [charged / 2, 1 - charged, charged / 2])
    bond = np.array(categorical["edge"]["marginals"])  # one pair per molecule, always bonded
    np.testing.assert_allclose(bond, [0] + [(ids % 3 == k).mean() for k in range(3)])
    assert info.num_dropped["train"] == int((edm_split()["train"] % 7 == 0).sum())
    assert info.num_features == 6  # the EDM features h stay available

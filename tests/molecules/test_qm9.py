import csv
import importlib.util
import itertools

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from molgen.molecules import qm9
from molgen.molecules.dataset import MoleculeDataset
from molgen.molecules.featurize import AtomFeaturizer
from molgen.molecules.qm9 import (
    CACHE_FILENAME,
    CACHE_FORMAT_VERSION,
    QM9_NUM_MOLECULES,
    QM9Dataset,
    edm_split,
    load_qm9,
    parse_qm9_row,
    process_qm9,
    read_qm9_csv,
)
from tests.helpers import write_synthetic_qm9_cache

# `import qm9pack` fails (it needs pkg_resources), so probe without importing it.
needs_qm9pack = pytest.mark.skipif(importlib.util.find_spec("qm9pack") is None, reason="qm9pack is not installed")


def _random_molecules(num, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 8, size=num)
    positions = [rng.normal(size=(n, 3)) * 2 + 10.0 for n in sizes]  # far from the origin
    numbers = [rng.choice([1, 6, 7, 8, 9], size=n) for n in sizes]
    return positions, numbers


# --------------------------------------------------------------------------- #
# In-memory dataset
# --------------------------------------------------------------------------- #


def test_items_are_centred_and_featurized():
    positions, numbers = _random_molecules(20)
    ds = MoleculeDataset.from_lists(positions, numbers, smiles=[f"m{i}" for i in range(20)])
    assert len(ds) == 20 and ds.smiles[3] == "m3"
    for i in range(len(ds)):
        item = ds[i]
        n = len(numbers[i])
        assert item.num_nodes == n and item.pos.shape == (n, 3) and item.pos.dtype == torch.float32
        assert item.pos.mean(0).abs().max() < 1e-6
        # Centring is a pure translation.
        expected = positions[i] - positions[i].mean(0)
        np.testing.assert_allclose(item.pos.numpy(), expected, atol=1e-5)
        assert torch.equal(item.z, torch.as_tensor(numbers[i]).long())
        torch.testing.assert_close(item.h, AtomFeaturizer().encode(item.z))
    assert [z.tolist() for z in ds.atomic_numbers()] == [list(n) for n in numbers]


def test_getitem_returns_copies_and_checks_range():
    ds = MoleculeDataset.from_lists(*_random_molecules(3))
    item = ds[0]
    item.pos += 100.0
    assert ds[0].pos.abs().max() < 100.0
    assert torch.equal(ds[-1].z, ds[2].z)
    with pytest.raises(IndexError):
        ds[3]


def test_histogram_and_num_atoms():
    positions = [np.zeros((n, 3)) for n in (1, 3, 3, 5)]
    numbers = [np.full(n, 6) for n in (1, 3, 3, 5)]
    ds = MoleculeDataset.from_lists(positions, numbers)
    assert ds.num_atoms.tolist() == [1, 3, 3, 5]
    assert ds.num_atoms_histogram().tolist() == [0, 1, 0, 2, 0, 1]
    assert ds.smiles is None


def test_remove_h():
    positions = [np.array([[0.0, 0, 0], [1.0, 0, 0], [5.0, 0, 0]])]
    ds = MoleculeDataset.from_lists(positions, [np.array([6, 1, 8])], remove_h=True)
    item = ds[0]
    assert item.z.tolist() == [6, 8]
    np.testing.assert_allclose(item.pos.numpy(), [[-2.5, 0, 0], [2.5, 0, 0]], atol=1e-6)
    with pytest.raises(ValueError, match="without atoms"):
        MoleculeDataset.from_lists([np.zeros((1, 3))], [np.array([1])], remove_h=True)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_coordinates_rejected(bad):
    positions, numbers = _random_molecules(4)
    positions[2][0, 1] = bad
    with pytest.raises(ValueError, match="molecule 2"):
        MoleculeDataset.from_lists(positions, numbers)


def test_bad_inputs_rejected():
    positions, numbers = _random_molecules(3)
    with pytest.raises(ValueError, match="atomic-number"):
        MoleculeDataset.from_lists(positions, numbers[:2])
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        MoleculeDataset.from_lists([np.zeros((2, 2))], [np.array([6, 6])])
    with pytest.raises(ValueError, match="Cl"):
        MoleculeDataset.from_lists([np.zeros((1, 3))], [np.array([17])])
    with pytest.raises(ValueError, match="SMILES"):
        MoleculeDataset.from_lists(positions, numbers, smiles=["C"])
    with pytest.raises(ValueError, match="ptr"):
        MoleculeDataset(torch.zeros(3, 3), torch.ones(3, dtype=torch.long), torch.tensor([0, 2]))


def test_pyg_dataloader_batches():
    ds = MoleculeDataset.from_lists(*_random_molecules(10))
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch.num_graphs == 4
    assert batch.h.shape == (int(ds.num_atoms[:4].sum()), 6)
    assert batch.batch.max() == 3


# --------------------------------------------------------------------------- #
# EDM split
# --------------------------------------------------------------------------- #


def test_edm_split_sizes_disjoint_and_covering():
    split = edm_split()
    sizes = {k: len(v) for k, v in split.items()}
    assert sizes == {"train": 100_000, "valid": 17_748, "test": 13_083}
    everything = np.concatenate(list(split.values()))
    assert len(np.unique(everything)) == QM9_NUM_MOLECULES
    assert everything.min() == 0 and everything.max() == QM9_NUM_MOLECULES - 1
    perm = np.random.RandomState(0).permutation(QM9_NUM_MOLECULES)
    assert np.array_equal(split["valid"], perm[100_000:117_748])
    with pytest.raises(ValueError):
        edm_split(1000)


# --------------------------------------------------------------------------- #
# QM9 cache and dataset on synthetic data (fast, no qm9pack needed)
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def synthetic_cache(tmp_path_factory):
    """A QM9-shaped cache: molecule i is C-H with the C at x = i (so items are identifiable)."""
    cache_dir = tmp_path_factory.mktemp("qm9_synthetic")
    write_synthetic_qm9_cache(cache_dir)
    return cache_dir


def test_qm9_dataset_selects_edm_split(synthetic_cache):
    ds = QM9Dataset("valid", subset=50, cache_dir=synthetic_cache)
    expected = edm_split()["valid"][:50]
    assert len(ds) == 50 and ds.split == "valid"
    assert ds.qm9_index.tolist() == (expected + 1).tolist()
    assert ds.smiles[7] == f"mol{expected[7] + 1}"
    item = ds[7]
    assert item.z.tolist() == [6, 1]
    np.testing.assert_allclose(item.pos[:, 0].numpy(), [-0.5, 0.5], atol=1e-6)


def test_qm9_dataset_remove_h_and_full_split(synthetic_cache):
    ds = QM9Dataset("test", cache_dir=synthetic_cache, remove_h=True)
    assert len(ds) == 13_083
    assert ds.num_atoms_histogram().tolist() == [0, 13_083]


def test_qm9_dataset_bad_arguments(synthetic_cache):
    with pytest.raises(ValueError, match="train.*valid.*test"):
        QM9Dataset("validation", cache_dir=synthetic_cache)
    with pytest.raises(ValueError, match="subset"):
        QM9Dataset("test", subset=0, cache_dir=synthetic_cache)


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path))
    assert qm9.default_cache_dir() == tmp_path / "qm9"
    monkeypatch.delenv("MOLGEN_CACHE")
    assert qm9.default_cache_dir().parts[-3:] == (".cache", "molgen", "qm9")


# --------------------------------------------------------------------------- #
# Parsing real qm9pack rows (fast: only a few rows)
# --------------------------------------------------------------------------- #


@needs_qm9pack
def test_parse_first_rows():
    first_csv = qm9.locate_qm9pack_csvs()[0]
    records = list(itertools.islice(read_qm9_csv(first_csv), 4))
    methane = records[0]
    assert methane.index == 1 and methane.smiles == "C" and methane.z == [6, 1, 1, 1, 1]
    assert np.asarray(methane.pos).shape == (5, 3)
    c_h = np.linalg.norm(np.subtract(methane.pos[1], methane.pos[0]))
    assert 1.05 < c_h < 1.12  # C-H bond length in Å
    # Row 4 (acetylene) writes coordinates like "0." and "1.", which is not JSON.
    assert records[3].z == [6, 6, 1, 1] and records[3].pos[0][1] == 0.0


@needs_qm9pack
def test_process_small_csv_and_version_check(tmp_path):
    source = qm9.locate_qm9pack_csvs()[0]
    small = tmp_path / "small.csv"
    with open(source, newline="") as fin, open(small, "w", newline="") as fout:
        rows = list(itertools.islice(csv.reader(fin), 11))  # header + 10 molecules
        csv.writer(fout).writerows([rows[0]] + rows[1:][::-1])  # reversed: must be re-sorted
    cache = process_qm9(tmp_path / "cache", csv_paths=[small])
    data = torch.load(cache, weights_only=True)
    assert data["index"].tolist() == list(range(1, 11))
    assert data["ptr"][1] == 5 and data["z"][:5].tolist() == [6, 1, 1, 1, 1]
    assert data["smiles"][0] == "C" and data["pos"].dtype == torch.float32
    assert sorted(p.name for p in cache.parent.iterdir()) == [CACHE_FILENAME]

    # A cache with another format version is rebuilt; a valid one is reused as is.
    data["format_version"] = -1
    torch.save(data, cache)
    process_qm9(tmp_path / "cache", csv_paths=[small])
    assert torch.load(cache, weights_only=True)["format_version"] == CACHE_FORMAT_VERSION
    mtime = cache.stat().st_mtime_ns
    process_qm9(tmp_path / "cache", csv_paths=[small])
    assert cache.stat().st_mtime_ns == mtime


def test_malformed_row_rejected():
    row = {
        "Index": "7",
        "SMILES": "C",
        "N_atoms": "2",
        "Elements": "['C','H']",
        "XYZ_Ang": "[[0,0,0]]",
    }
    with pytest.raises(ValueError, match="Index=7"):
        parse_qm9_row(row)
    with pytest.raises(ValueError, match="malformed"):
        parse_qm9_row({**row, "Elements": "['C','Qq']"})


# --------------------------------------------------------------------------- #
# Full QM9 (builds the default cache on first run, ~10-20 s)
# --------------------------------------------------------------------------- #


@pytest.mark.slow
@needs_qm9pack
def test_full_qm9():
    data = load_qm9()
    assert len(data["index"]) == QM9_NUM_MOLECULES
    assert data["index"][0] == 1 and data["smiles"][0] == "C"
    assert data["ptr"][1] - data["ptr"][0] == 5
    assert data["z"][:5].tolist() == [6, 1, 1, 1, 1]
    ds = QM9Dataset("test")
    assert len(ds) == 13_083
    assert set(torch.cat([ds[i].z for i in range(200)]).tolist()) <= {1, 6, 7, 8, 9}
    assert ds.num_atoms_histogram().shape[0] - 1 == int(ds.num_atoms.max()) <= 29

import os
import time

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

import molgen.proteins.dataset as dataset_module
from molgen.dataset_info import BackboneInfo
from molgen.proteins.dataset import (
    BackboneDataset,
    backbone_train_val,
    benchmark_segments,
    load_backbone_cache,
    pdb_entry,
    process_backbone_folder,
)
from molgen.proteins.geometry import BACKBONE_ATOMS, ideal_helix, ideal_strand
from molgen.proteins.pdb import StructureError, write_backbone_pdb
from molgen.proteins.secondary_structure import UNKNOWN, dssp_labels, label_features
from molgen.training.data import build_datamodule


def _noisy(coords: np.ndarray, seed: int) -> np.ndarray:
    """Coordinates with 0.03 Å noise, so that no two windows of a chain look alike."""
    return coords + np.random.default_rng(seed).normal(0.0, 0.03, coords.shape)


#: Backbones written to the test folder, keyed by file name. 2BBB breaks after residue 45.
CHAINS = {
    "1AAA_l_u.pdb": _noisy(ideal_helix(60), 0),
    "1AAA_r_u.pdb": _noisy(ideal_helix(150), 1),
    "2BBB_l_u.pdb": np.concatenate([_noisy(ideal_strand(45), 2), _noisy(ideal_helix(50), 3) + [0.0, 40.0, 0.0]]),
    "3CCC_r_u.pdb": _noisy(ideal_helix(30), 4),  # shorter than min_length: dropped
}


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "structures"
    root.mkdir()
    for name, coords in CHAINS.items():
        write_backbone_pdb(root / name, coords)
    return root


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


def _centred(coords: np.ndarray, scale: float) -> np.ndarray:
    atoms = coords.reshape(-1, 3)
    return (atoms - atoms.mean(axis=0)) / scale


def test_cache_built_once_and_reused(folder, cache_dir, monkeypatch):
    path = process_backbone_folder(folder, cache_dir=cache_dir, min_length=40)
    assert path.parent == cache_dir / "proteins" and path.name.startswith("backbones_")
    data = torch.load(path, weights_only=True)
    assert load_backbone_cache(path)["names"] == data["names"]
    assert data["names"] == ["1AAA_l_u:A", "1AAA_r_u:A", "2BBB_l_u:A/1", "2BBB_l_u:A/2"]
    assert data["ptr"].tolist() == [0, 60, 210, 255, 305]
    assert data["coords"].dtype == torch.float32 and data["coords"].shape == (305, 4, 3)
    np.testing.assert_allclose(data["coords"][:60].numpy(), CHAINS["1AAA_l_u.pdb"], atol=1e-3)
    report = data["report"]
    assert (report["files"], report["chains"], report["chain_breaks"]) == (4, 4, 1)
    assert (report["segments"], report["segments_kept"]) == (5, 4)
    assert data["options"] == {"min_length": 40, "max_ca_distance": 4.2}

    def no_parsing(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(dataset_module, "read_backbone_folder", no_parsing)
    mtime = path.stat().st_mtime_ns
    assert process_backbone_folder(folder, cache_dir=cache_dir, min_length=40) == path
    assert path.stat().st_mtime_ns == mtime
    # Other options, or an edited file, make another cache.
    with pytest.raises(AssertionError, match="reused"):
        process_backbone_folder(folder, cache_dir=cache_dir, min_length=50)
    os.utime(folder / "3CCC_r_u.pdb", ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(AssertionError, match="reused"):
        process_backbone_folder(folder, cache_dir=cache_dir, min_length=40)


def test_corrupt_cache_is_rebuilt(folder, cache_dir):
    path = process_backbone_folder(folder, cache_dir=cache_dir)
    path.write_bytes(b"truncated")
    assert load_backbone_cache(path) is None
    assert process_backbone_folder(folder, cache_dir=cache_dir) == path
    assert load_backbone_cache(path)["ptr"].tolist() == [0, 60, 210, 255, 305]


def test_default_cache_dir_from_environment(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path / "env_cache"))
    path = process_backbone_folder(folder)
    assert path.parent == tmp_path / "env_cache" / "proteins"


def test_items_shapes_centring_and_one_hot(folder, cache_dir):
    data = torch.load(process_backbone_folder(folder, cache_dir=cache_dir), weights_only=True)
    ds = BackboneDataset(data["coords"], data["ptr"], data["names"], max_length=None, length_scale=10.0)
    assert len(ds) == 4 and ds.lengths.tolist() == [60, 150, 45, 50]
    item = ds[0]
    assert item.pos.shape == (240, 3) and item.pos.dtype == torch.float32
    assert item.h.shape == (240, 4) and item.h.dtype == torch.float32
    assert item.num_residues == 60 and item.num_nodes == 240
    assert item.pos.double().mean(dim=0).abs().max() < 1e-6
    # Residue-major node order: N, CA, C, O of residue 0, then residue 1, ...
    np.testing.assert_allclose(item.pos.numpy(), _centred(CHAINS["1AAA_l_u.pdb"], 10.0), atol=1e-4)
    assert item.h.argmax(dim=1).tolist() == list(range(len(BACKBONE_ATOMS))) * 60
    assert (item.h.sum(dim=1) == 1).all()
    assert ds[-1].num_residues == 50
    with pytest.raises(IndexError):
        ds[4]

    batch = Batch.from_data_list([ds[0], ds[2]])
    assert batch.num_residues.tolist() == [60, 45] and batch.pos.shape == (420, 3)


def _window_start(item, coords: np.ndarray, scale: float) -> int:
    """The start residue of the contiguous window of ``coords`` that ``item`` shows (asserts one exists)."""
    n = int(item.num_residues)
    matches = [
        s
        for s in range(len(coords) - n + 1)
        if np.allclose(item.pos.numpy(), _centred(coords[s : s + n], scale), atol=1e-4)
    ]
    assert len(matches) == 1, "item is not a contiguous window of the chain"
    return matches[0]


def test_random_and_center_crops(folder, cache_dir):
    data = torch.load(process_backbone_folder(folder, cache_dir=cache_dir), weights_only=True)
    long_chain = CHAINS["1AAA_r_u.pdb"]  # segment 1, 150 residues
    train = BackboneDataset(data["coords"], data["ptr"], data["names"], max_length=40, crop="random")
    torch.manual_seed(0)
    starts = [_window_start(train[1], long_chain, 10.0) for _ in range(20)]
    assert all(0 <= s <= 110 for s in starts) and len(set(starts)) > 5
    assert train[1].num_residues == 40 and train[1].pos.shape == (160, 3)
    assert abs(train[1].pos.double().mean(dim=0)).max() < 1e-6  # centred after cropping
    torch.manual_seed(0)
    assert [_window_start(train[1], long_chain, 10.0) for _ in range(20)] == starts  # global RNG

    val = BackboneDataset(data["coords"], data["ptr"], data["names"], max_length=40, crop="center")
    assert {_window_start(val[1], long_chain, 10.0) for _ in range(3)} == {55}  # (150 - 40) // 2
    assert train.residue_count_histogram().tolist() == [0] * 40 + [4]


def test_dataset_validates_inputs():
    coords, ptr = torch.zeros(5, 4, 3), torch.tensor([0, 2, 5])
    with pytest.raises(ValueError, match="ptr"):
        BackboneDataset(coords, torch.tensor([0, 2, 2, 5]), ["a", "b", "c"])
    with pytest.raises(ValueError, match="names"):
        BackboneDataset(coords, ptr, ["a"])
    with pytest.raises(ValueError, match="NaN"):
        BackboneDataset(torch.full((5, 4, 3), float("nan")), ptr, ["a", "b"])
    with pytest.raises(ValueError, match="crop"):
        BackboneDataset(coords, ptr, ["a", "b"], crop="middle")
    with pytest.raises(ValueError, match="length_scale"):
        BackboneDataset(coords, ptr, ["a", "b"], length_scale=0.0)


def test_split_by_entry(folder, cache_dir):
    train, val, info = backbone_train_val(folder, val_fraction=0.34, max_length=64, cache_dir=cache_dir)
    # 2 entries (1AAA, 2BBB; 3CCC has no segment >= 40): round(0.34 * 2) = 1 goes to validation.
    train_entries = {pdb_entry(n) for n in train.names}
    val_entries = {pdb_entry(n) for n in val.names}
    assert len(train_entries) == len(val_entries) == 1 and not train_entries & val_entries
    assert sorted(train.names + val.names) == ["1AAA_l_u:A", "1AAA_r_u:A", "2BBB_l_u:A/1", "2BBB_l_u:A/2"]
    assert train.crop == "random" and val.crop == "center" and train.max_length == val.max_length == 64
    assert info == BackboneInfo(
        dataset="structures",
        num_features=4,
        size_histogram=train.residue_count_histogram().tolist(),
        atom_types=["N", "CA", "C", "O"],
        length_scale=10.0,
        max_length=64,
    )
    assert sum(info.size_histogram) == len(train)
    # The split depends on split_seed only: same seed, same split; some seed puts 1AAA on the other side.
    again, _, _ = backbone_train_val(folder, val_fraction=0.34, max_length=64, cache_dir=cache_dir)
    assert again.names == train.names
    splits = {tuple(backbone_train_val(folder, 0.34, split_seed=s, cache_dir=cache_dir)[0].names) for s in range(8)}
    assert len(splits) == 2
    # A validation item is the same tensor on every access.
    assert torch.equal(val[0].pos, val[0].pos)

    small, _, _ = backbone_train_val(folder, val_fraction=0.34, subset=1, cache_dir=cache_dir)
    assert len(small) == 1 and small.names[0] in train.names


def test_several_folders_are_pooled_before_the_split(folder, cache_dir, tmp_path):
    other = tmp_path / "more"
    other.mkdir()
    name, coords = next(iter(CHAINS.items()))
    write_backbone_pdb(other / ("4DDD" + name[4:]), coords)
    train, val, info = backbone_train_val([folder, other], val_fraction=0.34, cache_dir=cache_dir)
    names = sorted(train.names + val.names)
    assert names == ["1AAA_l_u:A", "1AAA_r_u:A", "2BBB_l_u:A/1", "2BBB_l_u:A/2", "4DDD_l_u:A"]
    assert info.dataset == "structures+more"
    item = train if "4DDD_l_u:A" in train.names else val
    k = item.names.index("4DDD_l_u:A")
    assert item.lengths[k] == len(coords)
    with pytest.raises(ValueError, match="does not exist: .*nope"):
        backbone_train_val([folder, tmp_path / "nope"], cache_dir=cache_dir)


def test_pdb_entry():
    assert pdb_entry("1a2k_l_u:A/2") == "1A2K" and pdb_entry("9XYZ:B") == "9XYZ"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_length": 50, "max_length": 40}, "min_length <= max_length"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": 0.9}, "no training entry"),
        ({"subset": 10}, "subset"),
    ],
)
def test_train_val_errors(folder, cache_dir, kwargs, match):
    with pytest.raises(ValueError, match=match):
        backbone_train_val(folder, cache_dir=cache_dir, **kwargs)


def test_missing_or_empty_folders(tmp_path, folder, cache_dir):
    with pytest.raises(ValueError, match="does not exist"):
        backbone_train_val(tmp_path / "nope", cache_dir=cache_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StructureError, match="no structure files"):
        backbone_train_val(tmp_path / "empty", cache_dir=cache_dir)
    with pytest.raises(StructureError, match="no break-free chain segment with >= 200 residues"):
        backbone_train_val(folder, min_length=200, max_length=256, cache_dir=cache_dir)


def test_build_datamodule(folder, cache_dir):
    config = {"name": "backbone", "root": None, "batch_size": 2, "num_workers": 0, "cache_dir": str(cache_dir)}
    with pytest.raises(ValueError, match="set data.root="):
        build_datamodule(config)
    module = build_datamodule({**config, "root": str(folder), "val_fraction": 0.5})
    assert isinstance(module.dataset_info, BackboneInfo) and module.dataset_info.domain == "backbones"
    batch = next(iter(module.val_dataloader()))
    assert batch.pos.shape[0] == 4 * int(batch.num_residues.sum())
    with pytest.raises(ValueError, match="available: .*backbone"):
        build_datamodule({**config, "name": "nope"})


@pytest.mark.shared_data
def test_db55_backbones(shared_proteins, tmp_path):
    start = time.perf_counter()
    train, val, info = backbone_train_val(shared_proteins / "db55", cache_dir=tmp_path)
    elapsed = time.perf_counter() - start
    assert elapsed < 60, f"processing db55 took {elapsed:.1f} s"
    # 271 complexes; 2OOB keeps no break-free segment of >= 40 residues. round(0.1 * 270) = 27 for validation.
    train_entries, val_entries = {pdb_entry(n) for n in train.names}, {pdb_entry(n) for n in val.names}
    assert (len(train_entries), len(val_entries)) == (243, 27) and not train_entries & val_entries
    assert (len(train), len(val)) == (740, 88)  # 828 break-free segments with >= 40 residues
    assert info.dataset == "db55" and len(info.size_histogram) == 129
    for ds in (train, val):
        assert ds.lengths.min() >= 40
        for i in range(len(ds)):
            item = ds[i]
            assert 40 <= item.num_residues <= 128 and item.pos.shape == (4 * item.num_residues, 3)
            assert torch.isfinite(item.pos).all() and item.pos.abs().max() < 10.0  # < 100 Å from the centre


def test_residue_level_items_hold_one_node_per_residue(folder, cache_dir):
    train, val, info = backbone_train_val(folder, val_fraction=0.34, max_length=200, cache_dir=cache_dir, atoms=["CA"])
    assert info.atom_types == ["CA"] and info.num_features == 1
    item, ca = val[0], val.segment(0)[:, 1]  # no crop: the whole segment's CA atoms
    assert item.pos.shape == (len(ca), 3) and item.h.shape == (len(ca), 1) and item.num_nodes == len(ca)
    np.testing.assert_allclose(item.pos.numpy(), (ca - ca.mean(axis=0)) / 10.0, atol=1e-5)
    with pytest.raises(ValueError, match="atoms must be"):
        BackboneDataset(torch.zeros(5, 4, 3), torch.tensor([0, 5]), ["a"], atoms=["N", "CA"])


def test_internal_coordinate_items_hold_each_residues_angles_and_no_coordinates(folder, cache_dir):
    """internal_coordinates: pos [L, 0], h [L, 3] the segment's virtual angle and torsion features, from which the
    CA trace comes back (float64 within the 3.80 Å steps' error); crops keep their own ends undefined (zeros)."""
    from molgen.proteins.internal_coordinates import (
        angle_features,
        angles_from_features,
        ca_internal_coordinates,
        ca_trace_from_internal,
    )

    train, val, info = backbone_train_val(
        folder, val_fraction=0.34, max_length=200, cache_dir=cache_dir, atoms=["CA"], internal_coordinates=True
    )
    assert info.internal_coordinates and info.num_features == 3 and info.position_dims == 0
    item, ca = val[0], val.segment(0)[:, 1]
    assert item.pos.shape == (len(ca), 0) and item.h.shape == (len(ca), 3) and item.num_nodes == len(ca)
    np.testing.assert_allclose(item.h.numpy(), angle_features(*ca_internal_coordinates(ca)), atol=1e-6)
    theta, tau = ca_internal_coordinates(ca_trace_from_internal(*angles_from_features(item.h.numpy())))
    reference_theta, reference_tau = ca_internal_coordinates(ca)
    np.testing.assert_allclose(theta[1:-1], reference_theta[1:-1], atol=1e-5)
    np.testing.assert_allclose(np.cos(tau[1:-2] - reference_tau[1:-2]), 1.0, atol=1e-8)
    cropped = BackboneDataset(
        torch.from_numpy(val.segment(0)).float(),
        torch.tensor([0, len(ca)]),
        ["a"],
        max_length=8,
        atoms=["CA"],
        internal_coordinates=True,
    )[0]
    assert cropped.h.shape == (8, 3) and (cropped.h[0] == 0).all() and (cropped.h[-2:, 1:] == 0).all()
    with pytest.raises(ValueError, match="internal_coordinates"):
        BackboneDataset(torch.zeros(5, 4, 3), torch.tensor([0, 5]), ["a"], internal_coordinates=True)


def _labelled_ca_split(folder, cache_dir, **options):
    """Residue-level items with DSSP labels, every training item's hidden (dropout 1)."""
    return backbone_train_val(
        folder,
        val_fraction=0.34,
        max_length=200,
        cache_dir=cache_dir,
        atoms=["CA"],
        secondary_structure=True,
        label_dropout=1.0,
        **options,
    )


def test_secondary_structure_labels_follow_the_residues(folder, cache_dir):
    """Fold conditioning: each item's h gains the DSSP one-hot of its residues (helix for the ideal helices),
    training items hide them at the dropout rate, validation items keep them."""
    train, val, info = _labelled_ca_split(folder, cache_dir)
    assert info.secondary_structure and info.num_features == 1 + 3
    for i in range(len(val)):
        item, coords = val[i], val.segment(i)
        assert item.h.shape == (len(coords), 4) and (item.h[:, 0] == 1).all()
        np.testing.assert_array_equal(item.h[:, 1:].numpy(), label_features(dssp_labels(coords)).numpy())
    helical = [i for i in range(len(val)) if val[i].h[:, 1].mean() > 0.8]
    assert helical, "ideal helices read as helix"
    assert all((train[i].h[:, 1:] == 0).all() for i in range(len(train))), "dropout 1 hides every label"

    atoms = BackboneDataset(
        torch.from_numpy(ideal_helix(12)).float(), torch.tensor([0, 12]), ["a"], labels=np.zeros(12, dtype=np.int64)
    )[0]
    assert atoms.h.shape == (48, 4 + 3) and (atoms.h[:, 4] == 1).all(), "every atom carries its residue's label"
    with pytest.raises(ValueError, match="labels must be"):
        BackboneDataset(torch.zeros(5, 4, 3), torch.tensor([0, 5]), ["a"], labels=np.zeros(4))
    with pytest.raises(ValueError, match="label_dropout"):
        BackboneDataset(torch.zeros(5, 4, 3), torch.tensor([0, 5]), ["a"], labels=np.zeros(5), label_dropout=2.0)


def test_internal_coordinate_items_carry_their_labels_beside_the_angles(folder, cache_dir):
    """A fold-conditioned angle model's items keep h the angles alone and serve node_labels [L] long, cropped with
    the residues; dropout hides a chain's labels as -1."""
    train, val, info = _labelled_ca_split(folder, cache_dir, internal_coordinates=True)
    assert info.num_features == 3 and info.num_node_labels == 3 and not info.labels_in_features
    for i in range(len(val)):
        item, coords = val[i], val.segment(i)
        assert item.h.shape == (len(coords), 3) and item.node_labels.dtype == torch.long
        np.testing.assert_array_equal(item.node_labels.numpy(), dssp_labels(coords))
    assert all((train[i].node_labels == UNKNOWN).all() for i in range(len(train))), "dropout 1 hides every label"
    # a random crop: the labels are those of the residues whose angles the item holds
    from molgen.proteins.internal_coordinates import angle_features, ca_internal_coordinates

    coords = val.segment(0)
    labels = np.random.default_rng(0).integers(0, 3, len(coords))
    dataset = BackboneDataset(
        torch.from_numpy(coords).float(),
        torch.tensor([0, len(coords)]),
        ["a"],
        max_length=8,
        atoms=["CA"],
        labels=labels,
        internal_coordinates=True,
    )
    torch.manual_seed(3)
    for _ in range(3):
        item = dataset[0]
        starts = [
            s
            for s in range(len(coords) - 7)
            if np.allclose(item.h[1:-2].numpy(), angle_features(*ca_internal_coordinates(coords[s : s + 8, 1]))[1:-2])
        ]
        assert len(starts) == 1 and item.node_labels.tolist() == labels[starts[0] : starts[0] + 8].tolist()


def test_benchmark_segments_take_validation_first_within_the_lengths(folder, cache_dir):
    train, val, _ = backbone_train_val(folder, cache_dir=cache_dir)
    chosen = benchmark_segments(folder, 10, (40, 200), cache_dir=cache_dir)
    expected = [part.segment(i) for part in (val, train) for i in range(len(part))]
    assert len(chosen) == len(expected) and all(np.array_equal(a, b) for a, b in zip(chosen, expected))
    assert [len(s) for s in benchmark_segments(folder, 1, (55, 65), cache_dir=cache_dir)] == [60]
    with pytest.raises(ValueError, match="no segments of 300-400 residues"):
        benchmark_segments(folder, 1, (300, 400), cache_dir=cache_dir)
    with pytest.raises(ValueError, match="does not exist"):
        benchmark_segments(folder / "missing", 1, (40, 200))

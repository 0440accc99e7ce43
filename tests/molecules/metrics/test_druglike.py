"""MOSES-style drug-like metrics on molecules made in code, against hand-computed values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from molgen.molecules.metrics.distribution import wasserstein1
from molgen.molecules.metrics.druglike import (
    PROPERTIES,
    compare_druglike,
    cosine_similarity,
    druglike_statistics,
    evaluate_druglike,
    failed_filters,
    internal_diversity,
    molecule_properties,
    nearest_neighbour_similarity,
    ring_size_counts,
    tanimoto_matrix,
)

SMILES = ["CC(=O)Nc1ccc(O)cc1", "c1ccc2ccccc2c1", "CCOC(=O)c1ccccc1N", "O=C1CCCN1C", "CC(C)Cc1ccc(C(C)C(=O)O)cc1"]
# The PAINS example of RDKit's documentation (FilterCatalog): a hydrazone phenol, hzone_phenol_A.
PAINS_EXAMPLE = "O=C(Cn1cnc2c1c(=O)n(C)c(=O)n2C)N/N=C/c1c(O)ccc2c1cccc2"


def _mols(smiles=SMILES):
    return [Chem.MolFromSmiles(s) for s in smiles]


def test_wasserstein_of_identical_samples_is_zero_and_of_shifted_ones_the_shift():
    values = np.array([0.3, 1.0, 2.5, 2.5, 7.0])
    assert wasserstein1(values, values[::-1]) == 0.0
    assert wasserstein1(values + 1.5, values) == pytest.approx(1.5)
    assert wasserstein1([0.0], [0.0, 1.0]) == pytest.approx(0.5)  # half the mass moves by 1
    with pytest.raises(ValueError, match="empty"):
        wasserstein1([], [1.0])


def test_wasserstein_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=37), rng.normal(0.4, 2.0, size=53)
    assert wasserstein1(a, b) == pytest.approx(scipy_stats.wasserstein_distance(a, b))


def test_tanimoto_matches_rdkit():
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    bitvects = [generator.GetFingerprint(m) for m in _mols()]
    expected = np.array([DataStructs.BulkTanimotoSimilarity(fp, bitvects) for fp in bitvects])
    fingerprints = druglike_statistics(_mols()).fingerprints
    assert fingerprints.shape == (len(SMILES), 1024)
    assert np.allclose(tanimoto_matrix(fingerprints, fingerprints), expected, atol=1e-6)


def test_internal_diversity_by_hand():
    same = druglike_statistics(_mols(["CC(=O)Nc1ccc(O)cc1"] * 2)).fingerprints
    assert internal_diversity(same, 1) == 0.0 and internal_diversity(same, 2) == 0.0
    pair = druglike_statistics(_mols(["C", "O"])).fingerprints  # methane and water share no bit
    assert tanimoto_matrix(pair[:1], pair[1:])[0, 0] == 0.0
    # MOSES' definition averages over all ordered pairs, self-pairs included: (1 + 0 + 0 + 1) / 4
    assert internal_diversity(pair, 1) == pytest.approx(0.5)
    assert internal_diversity(pair, 2) == pytest.approx(1 - np.sqrt(0.5))


def test_nearest_neighbour_similarity():
    fingerprints = druglike_statistics(_mols()).fingerprints
    assert nearest_neighbour_similarity(fingerprints, fingerprints) == pytest.approx(1.0)
    similarity = tanimoto_matrix(fingerprints[:2], fingerprints[2:])
    expected = similarity.max(axis=1).mean()
    assert nearest_neighbour_similarity(fingerprints[:2], fingerprints[2:]) == pytest.approx(expected)


def test_cosine_similarity_by_hand():
    counts = {"a": 3, "b": 1}
    assert cosine_similarity(counts, dict(counts)) == pytest.approx(1.0)
    assert cosine_similarity({"a": 1}, {"b": 1}) == 0.0
    assert cosine_similarity({"a": 1, "b": 1}, {"a": 2}) == pytest.approx(1 / np.sqrt(2))
    assert cosine_similarity({}, counts) == 0.0


def test_fragments_and_scaffolds():
    statistics = druglike_statistics(_mols(["CCOC(=O)c1ccccc1", "c1ccccc1", "CCO"]))
    # ethyl benzoate: the ester's O-C(=O) and C(=O)-c bonds are BRICS bonds
    assert statistics.fragment_counts["[16*]c1ccccc1"] == 1 and statistics.fragment_counts["c1ccccc1"] == 1
    assert statistics.fragment_counts["CCO"] == 1
    assert statistics.scaffold_counts == {"c1ccccc1": 2}  # ethanol has no scaffold


def test_ring_size_counts():
    assert ring_size_counts(Chem.MolFromSmiles("c1ccc2ccccc2c1")).tolist() == [0, 0, 0, 2, 0, 0]
    assert ring_size_counts(Chem.MolFromSmiles("C1CC1")).tolist() == [1, 0, 0, 0, 0, 0]
    assert ring_size_counts(Chem.MolFromSmiles("C1CCCCCCCCC1C1CCC1")).tolist() == [0, 1, 0, 0, 0, 1]
    assert ring_size_counts(Chem.MolFromSmiles("CCO")).tolist() == [0] * 6


def test_properties_ignore_hydrogens_and_stereo():
    ethanol = molecule_properties(Chem.MolFromSmiles("CCO"))
    assert ethanol["mw"] == pytest.approx(46.069, abs=1e-3)
    assert ethanol["logp"] == pytest.approx(-0.0014, abs=1e-4)
    assert 0 < ethanol["qed"] < 1 and 1 <= ethanol["sa"] <= 10
    chiral = Chem.MolFromSmiles("C[C@H](N)C(=O)O")
    assert molecule_properties(Chem.AddHs(chiral)) == molecule_properties(Chem.MolFromSmiles("CC(N)C(=O)O"))


def test_filters():
    assert "pains" in failed_filters(Chem.MolFromSmiles(PAINS_EXAMPLE))
    assert failed_filters(Chem.MolFromSmiles("c1ccccc1")) == []


def test_a_set_against_itself_and_against_a_shifted_copy():
    mols = _mols()
    statistics = druglike_statistics(mols)
    result = compare_druglike(statistics, statistics)
    assert result["snn"] == pytest.approx(1.0)
    assert result["frag_similarity"] == pytest.approx(1.0) and result["scaffold_similarity"] == pytest.approx(1.0)
    assert all(result[f"{name}_w1"] == 0.0 for name in PROPERTIES) and result["ring_size_tv"] == 0.0
    assert result["rings_6"] == pytest.approx(5 / 5) and result["rings_5"] == pytest.approx(1 / 5)
    shifted = dataclasses.replace(statistics, properties={k: v + 2.0 for k, v in statistics.properties.items()})
    assert compare_druglike(statistics, shifted)["mw_w1"] == pytest.approx(2.0)
    acyclic = druglike_statistics(_mols(["CCO", "CCN"]))
    assert compare_druglike(acyclic, statistics)["ring_size_tv"] == 1.0
    assert compare_druglike(acyclic, statistics)["scaffold_similarity"] == 0.0


def test_evaluate_druglike_per_molecule_and_filter_rates():
    mols = _mols(SMILES[:3] + [PAINS_EXAMPLE])
    result = evaluate_druglike(mols, druglike_statistics(_mols()))
    assert result.summary["num_molecules"] == 4 and result.summary["pains_pass"] == 0.75
    assert result.summary["filters_pass"] <= result.summary["pains_pass"]
    last = result.per_molecule[-1]
    assert not last["filters_passed"] and "pains" in last["filters_failed"].split(",")
    assert result.per_molecule[1] == {**molecule_properties(mols[1]), "filters_passed": True, "filters_failed": None}
    with pytest.raises(ValueError, match="no molecules"):
        evaluate_druglike([], druglike_statistics(mols))

"""MOSES-style metrics of drug-like molecules: diversity, similarity to a reference set, properties, filters.

The metrics of the MOSES benchmark (Polykovskiy et al., 2020, "Molecular
Sets (MOSES)"), computed from their published definitions on RDKit
molecules that sanitize, plus medicinal-chemistry filters and ring sizes.
Every molecule is judged without hydrogens and stereochemistry (its largest
fragment as the RDKit protocol reads it), so explicit hydrogens or stereo
perceived from 3D change nothing.

Definitions, for a generated set G and a reference set R:

    intdiv1, intdiv2      internal diversity IntDiv_p = 1 - (mean of T(a, b)^p over all ordered pairs
                          (a, b) of G, a = b included)^(1/p), p = 1, 2; T is the Tanimoto similarity of
                          Morgan fingerprints (radius 2, 1024 bits). The self-pairs are in MOSES'
                          definition and lower IntDiv by at most 1/|G| (0.001 for 1,000 molecules).
    snn                   similarity to nearest neighbour: mean over G of the largest T to any molecule of R.
    frag_similarity       cosine similarity of the BRICS-fragment count vectors of G and R. Fragments are
                          the pieces left by cutting every BRICS bond, as canonical SMILES with the dummy
                          atoms that mark the cut (labelled with the BRICS environment).
    scaffold_similarity   cosine similarity of the Bemis-Murcko scaffold count vectors (ring systems and
                          the linkers between them, side chains removed, elements and bond orders kept);
                          acyclic molecules have no scaffold and are not counted.
    <p>_w1                Wasserstein-1 distance between the distributions over G and R of the property p:
                          qed (QED, Bickerton et al. 2012, in [0, 1]), sa (synthetic accessibility,
                          Ertl & Schuffenhauer 2009, 1 = easy .. 10 = hard, RDKit Contrib's sascorer),
                          logp (Wildman-Crippen logP) and mw (average molecular weight, Da); in the
                          property's unit.
    <p>_mean              the mean of the property over G.
    <catalog>_pass        fraction of G matching none of the RDKit FilterCatalog patterns of a group
                          (:data:`FILTER_GROUPS`: pains = PAINS A, B and C; brenk; nih; zinc);
                          filters_pass: matching none of any group.
    rings_<k>             rings (smallest set of smallest rings) of k atoms per molecule of G, k = 3..7,
                          rings_8+ for 8 atoms or more.
    ring_size_tv          total variation distance between the ring-size distributions (fractions of all
                          rings) of G and R; 1 when G has no ring.

Two cosine similarities are 0 when either side has no fragment or scaffold.
MOSES compares 30,000 samples with its 176,074-molecule test set; against a
smaller reference, scaffold similarity in particular stays well below 1 even
for molecules from the same distribution (most scaffolds occur once), so
compare figures only at the same set sizes (the ceiling row of
docs/druglike.md). MOSES' own filter metric uses its own pattern list; the
filter fractions here use RDKit's catalogs instead.

Uniqueness and novelty are the RDKit protocol's
(:mod:`molgen.molecules.metrics.rdkit_protocol`) and not repeated here.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from rdkit import Chem, RDConfig
from rdkit.Chem import BRICS, QED, Crippen, Descriptors, rdFingerprintGenerator
from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams
from rdkit.Chem.Scaffolds import MurckoScaffold

from molgen.molecules.metrics.distribution import total_variation, wasserstein1

__all__ = [
    "FILTER_GROUPS",
    "FRACTION_KEYS",
    "PROPERTIES",
    "RING_SIZES",
    "DruglikeResult",
    "DruglikeStatistics",
    "compare_druglike",
    "cosine_similarity",
    "druglike_statistics",
    "evaluate_druglike",
    "failed_filters",
    "internal_diversity",
    "molecule_properties",
    "nearest_neighbour_similarity",
    "plain_molecule",
    "ring_size_counts",
    "sascorer",
    "tanimoto_matrix",
]

FINGERPRINT_RADIUS = 2
FINGERPRINT_BITS = 1024

PROPERTIES = ("qed", "sa", "logp", "mw")
"""Per-molecule properties: QED, SA score, Crippen logP, molecular weight (Da)."""

RING_SIZES = ("3", "4", "5", "6", "7", "8+")
"""Ring-size classes: rings of 3..7 atoms, and of 8 or more."""

FILTER_GROUPS: Mapping[str, tuple[str, ...]] = {
    "pains": ("PAINS_A", "PAINS_B", "PAINS_C"),
    "brenk": ("BRENK",),
    "nih": ("NIH",),
    "zinc": ("ZINC",),
}
"""Filter group -> RDKit FilterCatalog catalogs it joins."""

FRACTION_KEYS = tuple(f"{group}_pass" for group in FILTER_GROUPS) + ("filters_pass",)
"""The summary keys that are fractions of molecules (the rest are similarities, distances and means)."""

# Rows of the first fingerprint matrix per Tanimoto block: bounds memory at 256 x |reference| floats.
_BLOCK_ROWS = 256


@dataclass
class DruglikeStatistics:
    """What the metrics need of a set of molecules (see :func:`druglike_statistics`).

    Attributes:
        num_molecules: molecules summarized, M.
        fingerprints: bool [M, 1024], Morgan fingerprints (radius 2).
        fragment_counts: BRICS fragment SMILES -> occurrences over the set.
        scaffold_counts: Bemis-Murcko scaffold SMILES -> molecules with that scaffold.
        properties: each name of :data:`PROPERTIES` -> float64 [M], in molecule order.
        ring_size_counts: int64 [6], rings of each class of :data:`RING_SIZES` over the set.
    """

    num_molecules: int
    fingerprints: np.ndarray
    fragment_counts: Counter
    scaffold_counts: Counter
    properties: dict[str, np.ndarray]
    ring_size_counts: np.ndarray


@dataclass
class DruglikeResult:
    """Outcome of :func:`evaluate_druglike`.

    Attributes:
        summary: ``num_molecules`` and the metrics of the module docstring.
        per_molecule: one dict per molecule, in input order: the :data:`PROPERTIES`, ``filters_passed``
            (bool) and ``filters_failed`` (comma-separated failed groups, None when it passes all).
    """

    summary: dict[str, Any]
    per_molecule: list[dict[str, Any]]


@cache
def sascorer() -> ModuleType:
    """RDKit Contrib's SA-score module (shipped with RDKit, not importable as a package)."""
    path = Path(RDConfig.RDContribDir) / "SA_Score" / "sascorer.py"
    spec = importlib.util.spec_from_file_location("sascorer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _fingerprint_generator() -> Any:
    return rdFingerprintGenerator.GetMorganGenerator(radius=FINGERPRINT_RADIUS, fpSize=FINGERPRINT_BITS)


@cache
def _filter_catalog(group: str) -> FilterCatalog:
    params = FilterCatalogParams()
    for name in FILTER_GROUPS[group]:
        params.AddCatalog(getattr(FilterCatalogParams.FilterCatalogs, name))
    return FilterCatalog(params)


def plain_molecule(mol: Chem.Mol) -> Chem.Mol:
    """A copy of the sanitized ``mol`` without hydrogen atoms and stereochemistry."""
    plain = Chem.RemoveHs(mol)
    Chem.RemoveStereochemistry(plain)
    return plain


def molecule_properties(mol: Chem.Mol) -> dict[str, float]:
    """QED, SA score, Crippen logP and average molecular weight (Da) of a sanitized molecule."""
    return _properties(plain_molecule(mol))


def _properties(plain: Chem.Mol) -> dict[str, float]:
    return {
        "qed": float(QED.qed(plain)),
        "sa": float(sascorer().calculateScore(plain)),
        "logp": float(Crippen.MolLogP(plain)),
        "mw": float(Descriptors.MolWt(plain)),
    }


def ring_size_counts(mol: Chem.Mol) -> np.ndarray:
    """int64 [6]: rings of the smallest set of smallest rings per class of :data:`RING_SIZES`."""
    sizes = [len(ring) for ring in mol.GetRingInfo().AtomRings()]
    return np.bincount(np.clip(np.asarray(sizes, dtype=np.int64), 3, 8) - 3, minlength=len(RING_SIZES))


def failed_filters(mol: Chem.Mol) -> list[str]:
    """The groups of :data:`FILTER_GROUPS` with a pattern matching the sanitized ``mol``."""
    plain = plain_molecule(mol)
    return [group for group in FILTER_GROUPS if _filter_catalog(group).HasMatch(plain)]


def _fragments(plain: Chem.Mol) -> list[str]:
    broken = BRICS.BreakBRICSBonds(plain)
    return [Chem.MolToSmiles(piece) for piece in Chem.GetMolFrags(broken, asMols=True, sanitizeFrags=False)]


def _scaffold(plain: Chem.Mol) -> str | None:
    scaffold = Chem.MolToSmiles(MurckoScaffold.GetScaffoldForMol(plain))
    return scaffold or None


def druglike_statistics(mols: Sequence[Chem.Mol]) -> DruglikeStatistics:
    """Fingerprints, fragment and scaffold counts, properties and ring sizes of a set of molecules.

    Args:
        mols: sanitized RDKit molecules (hydrogens and stereo are ignored).

    Raises:
        ValueError: if ``mols`` is empty.
    """
    if len(mols) == 0:
        raise ValueError("no molecules to summarize")
    generator = _fingerprint_generator()
    fingerprints = np.zeros((len(mols), FINGERPRINT_BITS), dtype=bool)
    fragments: Counter = Counter()
    scaffolds: Counter = Counter()
    properties = {name: np.zeros(len(mols)) for name in PROPERTIES}
    rings = np.zeros(len(RING_SIZES), dtype=np.int64)
    for index, mol in enumerate(mols):
        plain = plain_molecule(mol)
        fingerprints[index] = generator.GetFingerprintAsNumPy(plain).astype(bool)
        fragments.update(_fragments(plain))
        scaffold = _scaffold(plain)
        if scaffold is not None:
            scaffolds[scaffold] += 1
        for name, value in _properties(plain).items():
            properties[name][index] = value
        rings += ring_size_counts(plain)
    return DruglikeStatistics(len(mols), fingerprints, fragments, scaffolds, properties, rings)


def tanimoto_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32 [n_a, n_b] Tanimoto similarities between the bit fingerprints a [n_a, bits] and b [n_b, bits].

    Two empty fingerprints (no bit set) have similarity 0.
    """
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    common = a32 @ b32.T  # exact: integer counts <= bits fit float32
    union = a32.sum(1)[:, None] + b32.sum(1)[None, :] - common
    return common / np.maximum(union, 1.0)


def _tanimoto_blocks(a: np.ndarray, b: np.ndarray):
    for start in range(0, len(a), _BLOCK_ROWS):
        yield tanimoto_matrix(a[start : start + _BLOCK_ROWS], b)


def internal_diversity(fingerprints: np.ndarray, p: int = 1) -> float:
    """IntDiv_p of the set with these fingerprints (bool [n, bits], n >= 1); see the module docstring."""
    total = sum(float((block.astype(np.float64) ** p).sum()) for block in _tanimoto_blocks(fingerprints, fingerprints))
    return 1.0 - (total / len(fingerprints) ** 2) ** (1.0 / p)


def nearest_neighbour_similarity(fingerprints: np.ndarray, reference: np.ndarray) -> float:
    """SNN: mean over the rows of ``fingerprints`` [n, bits] of their largest Tanimoto similarity to a row of
    ``reference`` [m, bits] (n, m >= 1)."""
    best = np.concatenate([block.max(axis=1) for block in _tanimoto_blocks(fingerprints, reference)])
    return float(best.mean())


def cosine_similarity(counts_a: Mapping[str, int], counts_b: Mapping[str, int]) -> float:
    """Cosine similarity of two count vectors given as key -> count (0 when either is empty)."""
    dot = sum(count * counts_b.get(key, 0) for key, count in counts_a.items())
    norm_a = np.sqrt(sum(c * c for c in counts_a.values()))
    norm_b = np.sqrt(sum(c * c for c in counts_b.values()))
    return float(dot / (norm_a * norm_b)) if norm_a and norm_b else 0.0


def compare_druglike(sample: DruglikeStatistics, reference: DruglikeStatistics) -> dict[str, float]:
    """The set metrics of the module docstring (all but the filters) of ``sample`` against ``reference``."""
    result = {
        "intdiv1": internal_diversity(sample.fingerprints, 1),
        "intdiv2": internal_diversity(sample.fingerprints, 2),
        "snn": nearest_neighbour_similarity(sample.fingerprints, reference.fingerprints),
        "frag_similarity": cosine_similarity(sample.fragment_counts, reference.fragment_counts),
        "scaffold_similarity": cosine_similarity(sample.scaffold_counts, reference.scaffold_counts),
    }
    for name in PROPERTIES:
        result[f"{name}_w1"] = wasserstein1(sample.properties[name], reference.properties[name])
    for name in PROPERTIES:
        result[f"{name}_mean"] = float(sample.properties[name].mean())
    for size, count in zip(RING_SIZES, sample.ring_size_counts.tolist()):
        result[f"rings_{size}"] = count / sample.num_molecules
    if not reference.ring_size_counts.any():
        result["ring_size_tv"] = float("nan")
    elif not sample.ring_size_counts.any():
        result["ring_size_tv"] = 1.0
    else:
        result["ring_size_tv"] = total_variation(
            dict(enumerate(sample.ring_size_counts.tolist())), dict(enumerate(reference.ring_size_counts.tolist()))
        )
    return result


def evaluate_druglike(mols: Sequence[Chem.Mol], reference: DruglikeStatistics) -> DruglikeResult:
    """All metrics of the module docstring for ``mols`` (sanitized, e.g. the valid molecules of the RDKit
    protocol) against ``reference``; per-molecule properties and filter verdicts for SD tags.

    Raises:
        ValueError: if ``mols`` is empty.
    """
    sample = druglike_statistics(mols)
    failed = [failed_filters(mol) for mol in mols]
    summary: dict[str, Any] = {"num_molecules": len(mols), **compare_druglike(sample, reference)}
    for group in FILTER_GROUPS:
        summary[f"{group}_pass"] = sum(group not in groups for groups in failed) / len(mols)
    summary["filters_pass"] = sum(not groups for groups in failed) / len(mols)
    per_molecule = [
        {
            **{name: float(sample.properties[name][index]) for name in PROPERTIES},
            "filters_passed": not groups,
            "filters_failed": ",".join(groups) or None,
        }
        for index, groups in enumerate(failed)
    ]
    return DruglikeResult(summary, per_molecule)

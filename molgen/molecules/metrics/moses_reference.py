"""The drug-like reference of ``--reference moses``: MOSES training SMILES for novelty, test conformers for the rest.

Two parts, because the MOSES training set is large and has no 3D data:

* novelty: the canonical SMILES (RDKit protocol form,
  :func:`~molgen.molecules.metrics.rdkit_protocol.canonical_smiles`) of all
  1,584,663 MOSES training molecules. Canonicalising them takes minutes
  (11 on two busy cores), so it runs in parallel once and the set is cached as gzipped text
  (``train_canonical_smiles.txt.gz`` in the drugs cache folder, one SMILES a
  line after a header naming the RDKit version: canonical SMILES can change
  between RDKit versions, so another version rebuilds it). Loading it takes
  1.5 s.
* everything compared as a distribution (drug-like metrics, conformer
  geometry, the distribution section's atom and bond statistics): the first
  1,000 molecules of the drugs ``test`` split
  (:class:`~molgen.molecules.drugs.DrugsDataset`, MOSES test molecules with
  MMFF94s conformers), rebuilt from their prepared cache at every use (13-23 s
  on two cores, most of it placing hydrogens). The prepared heavy-atom graphs get their hydrogens as a drugs
  model's samples do (:func:`~molgen.molecules.hydrogens.place_hydrogens`),
  so the distribution section's atom and bond statistics count them as they
  count a sample's.

The EDM protocol has no novelty against this reference: its SMILES come from
3D geometries, which the training set lacks (``edm_smiles`` is None).
"""

from __future__ import annotations

import contextlib
import gzip
import multiprocessing
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rdkit
from rdkit import Chem
from tqdm.auto import tqdm

from molgen.io import atomic_output
from molgen.molecules.dataset import CHARGE_CLASSES
from molgen.molecules.hydrogens import place_hydrogens
from molgen.molecules.metrics.conformer_geometry import conformer_geometry
from molgen.molecules.metrics.distribution import molecule_statistics
from molgen.molecules.metrics.druglike import druglike_statistics
from molgen.molecules.metrics.rdkit_protocol import canonical_smiles
from molgen.molecules.metrics.reference import Reference
from molgen.molecules.record import MoleculeRecord
from molgen.molecules.sdf import molecule_from_graph

__all__ = [
    "REFERENCE_MOLECULES",
    "TRAIN_SMILES_FILE",
    "moses_molecules",
    "moses_reference",
    "moses_train_smiles",
    "record_of",
]

REFERENCE_MOLECULES = 1000
"""Molecules of the drugs test split that make up the distribution reference."""

TRAIN_SMILES_FILE = "train_canonical_smiles.txt.gz"

_HEADER = "# molgen: canonical SMILES of the MOSES training set, RDKit {version}"
# SMILES per task handed to a worker: large enough that inter-process traffic stays small.
_CHUNK = 2000


def _canonical_chunk(smiles: Sequence[str]) -> list[str | None]:
    return [canonical_smiles(s) for s in smiles]


def moses_train_smiles(
    cache_dir: str | os.PathLike | None = None, workers: int | None = None, progress: bool = True
) -> set[str]:
    """Canonical SMILES of the MOSES training set, canonicalised once (in ``workers`` processes, default all
    CPUs) and cached; see the module docstring.

    Raises:
        FileNotFoundError: molsets is not installed (the message says how to install it).
    """
    from molgen.molecules.drugs import default_drugs_cache
    from molgen.molecules.moses import read_moses_smiles

    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_drugs_cache()
    path = folder / TRAIN_SMILES_FILE
    header = _HEADER.format(version=rdkit.__version__)
    if path.is_file():
        with gzip.open(path, "rt") as handle:
            lines = handle.read().splitlines()
        if lines and lines[0] == header:
            return set(lines[1:])
    source = read_moses_smiles("train")
    chunks = [source[start : start + _CHUNK] for start in range(0, len(source), _CHUNK)]
    canonical: set[str] = set()
    workers = max(1, min(workers or os.cpu_count() or 1, len(chunks)))
    with tqdm(total=len(source), desc="Canonicalising MOSES train SMILES", unit="mol", disable=not progress) as bar:
        with contextlib.ExitStack() as stack:
            if workers == 1:
                results = map(_canonical_chunk, chunks)
            else:
                results = stack.enter_context(multiprocessing.get_context("spawn").Pool(workers)).imap(
                    _canonical_chunk, chunks
                )
            for chunk in results:
                canonical.update(s for s in chunk if s is not None)
                bar.update(len(chunk))
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp, gzip.open(tmp, "wt") as handle:
        handle.write("\n".join([header, *sorted(canonical)]) + "\n")
    return canonical


def moses_molecules(
    split: str, num_molecules: int, cache_dir: str | os.PathLike | None = None, progress: bool = True
) -> list[Chem.Mol]:
    """The prepared molecules among the first ``num_molecules`` of a drugs split (:mod:`molgen.molecules.drugs`,
    prepared first if missing; failures left out), built as a drugs model's samples are: the heavy-atom graph
    (:func:`~molgen.molecules.sdf.molecule_from_graph`) with its MMFF94s conformer (Å) and hydrogens placed by
    :func:`~molgen.molecules.hydrogens.place_hydrogens` (sanitized, hydrogens after the heavy atoms). Properties:
    ``smiles`` (the MOSES SMILES), ``hydrogens`` (the placement) and ``energy`` (double, the all-atom MMFF94s
    energy of the prepared conformer, kcal/mol)."""
    from molgen.molecules.drugs import DrugsDataset

    dataset = DrugsDataset(split, num_molecules, cache_dir, progress=progress)
    charge_values = np.asarray(CHARGE_CLASSES)
    mols = []
    for index in range(len(dataset)):
        data = dataset[index]
        bonds = np.concatenate([data.pair_class_index.T.numpy(), data.pair_class[:, None].numpy()], axis=1)
        charges = charge_values[data.node_classes[:, 1].numpy()]
        mol, placement = place_hydrogens(molecule_from_graph(data.z.numpy(), data.pos.double().numpy(), bonds, charges))
        mol.SetProp("hydrogens", placement)
        mol.SetProp("smiles", dataset.smiles[index])
        mol.SetDoubleProp("energy", float(dataset.energy[index]))
        mols.append(mol)
    return mols


def record_of(mol: Chem.Mol, name: str = "") -> MoleculeRecord:
    """The molecule as a record with its bonds (all atoms of ``mol`` explicit)."""
    z = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()])
    return MoleculeRecord(z, mol.GetConformer().GetPositions(), mol, name)


def moses_reference(
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
    num_molecules: int = REFERENCE_MOLECULES,
) -> Reference:
    """The ``moses`` reference (module docstring): training SMILES for novelty (canonicalised in ``workers``
    processes if not cached), the first ``num_molecules`` test molecules for the distribution, drug-like and
    geometry metrics.

    Raises:
        FileNotFoundError: molsets is not installed (the message says how to install it).
    """
    mols = moses_molecules("test", num_molecules, cache_dir, progress)
    return Reference(
        name="moses",
        edm_smiles=None,
        rdkit_smiles=moses_train_smiles(cache_dir, workers, progress),
        statistics=molecule_statistics(record_of(mol) for mol in mols),
        druglike=druglike_statistics(mols),
        geometry=conformer_geometry(mols),
    )

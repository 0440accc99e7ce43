"""Drug-like molecules: MOSES SMILES with RDKit/MMFF conformers, as heavy-atom graphs with bonds.

The data of joint models of drug-like molecules (``data=drugs``): heavy atoms
with element, formal charge and Kekulé bond orders, and coordinates from the
lowest-energy of a few ETKDGv3 + MMFF94s conformers
(:mod:`molgen.molecules.conformers`). Hydrogens are left out of the model and
placed at export (:mod:`molgen.molecules.hydrogens`).

Splits, each a fixed order of one MOSES file (:mod:`molgen.molecules.moses`):

    train  MOSES train, in a permutation seeded with 0; ``num_molecules`` takes its first ones
    valid  MOSES train, that permutation reversed (disjoint from train while both are small)
    test   MOSES test, in a permutation seeded with 0 (the first 1,000 are the docs' ceiling row)

Conformers are prepared on first use into ``$MOLGEN_CACHE/moses`` (or
``cache_dir``) in resumable chunks; ``python -m molgen.molecules.drugs``
prepares them ahead of training and prints the failures by reason.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molgen.dataset_info import MoleculeInfo
from molgen.io import default_cache_root
from molgen.molecules.conformers import ConformerConfig, failure_counts, load_chunks, prepare_chunks
from molgen.molecules.dataset import BondedMoleculeDataset, gather_bonded
from molgen.molecules.featurize import AtomFeaturizer
from molgen.molecules.moses import read_moses_smiles

__all__ = ["DRUG_ELEMENTS", "DrugsDataset", "drugs_train_val", "prepare_drugs", "split_order"]

log = logging.getLogger(__name__)

DRUG_ELEMENTS = ("C", "N", "O", "S", "F", "Cl", "Br")
"""The heavy elements of MOSES, in atom-type class order."""

SPLITS = {"train": ("train", False), "valid": ("train", True), "test": ("test", False)}
"""Split name -> (MOSES file, whether the permutation is reversed)."""


@lru_cache(maxsize=4)
def split_order(split: str) -> np.ndarray:
    """Rows of the split's MOSES file, in the split's order (see the module docstring)."""
    if split not in SPLITS:
        raise ValueError(f"unknown drugs split {split!r}; known: {list(SPLITS)}")
    source, reverse = SPLITS[split]
    order = np.random.default_rng(0).permutation(len(read_moses_smiles(source)))
    return order[::-1].copy() if reverse else order


def default_drugs_cache() -> Path:
    return default_cache_root() / "moses"


def prepare_drugs(
    split: str,
    num_molecules: int,
    cache_dir: str | os.PathLike | None = None,
    *,
    config: ConformerConfig = ConformerConfig(elements=DRUG_ELEMENTS),
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The prepared first ``num_molecules`` of ``split`` (preparing missing chunks); see
    :func:`molgen.molecules.conformers.load_chunks` for the keys. Failures are included
    (``reason`` != 0) and logged by reason."""
    order = split_order(split)  # checks the split's name
    source, _ = SPLITS[split]
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_drugs_cache()
    paths = prepare_chunks(
        folder,
        split,
        read_moses_smiles(source),
        order,
        num_molecules,
        config=config,
        workers=workers,
        progress=progress,
    )
    data = load_chunks(paths)
    if len(data["reason"]) > num_molecules:  # the last chunk covers more than asked
        data = _first(data, num_molecules)
    log.info("drugs %s: %s", split, failure_counts(data["reason"]))
    return data


def _first(data: dict[str, Any], count: int) -> dict[str, Any]:
    atoms, bonds = int(data["ptr"][count]), int(data["bond_ptr"][count])
    return {
        **{key: data[key][:count] for key in ("rows", "smiles", "reason", "energy")},
        **{key: data[key][:atoms] for key in ("z", "pos", "charge")},
        **{key: data[key][: count + 1] for key in ("ptr", "bond_ptr")},
        **{key: data[key][:bonds] for key in ("bond_atoms", "bond_order")},
    }


class DrugsDataset(BondedMoleculeDataset):
    """The kept molecules among the first ``num_molecules`` of a drugs split, as heavy-atom bond graphs
    (the first ``subset`` of them if given).

    Items as in :class:`~molgen.molecules.dataset.BondedMoleculeDataset`.

    Attributes:
        failures: molecules per preparation outcome (``kept`` and each failure reason).
        energy: [M] MMFF94s energy of each kept molecule's all-atom conformer, kcal/mol.
        rows: [M] the molecules' rows in their MOSES file.
    """

    def __init__(
        self,
        split: str,
        num_molecules: int,
        cache_dir: str | os.PathLike | None = None,
        *,
        subset: int | None = None,
        workers: int | None = None,
        progress: bool = True,
    ) -> None:
        data = prepare_drugs(split, num_molecules, cache_dir, workers=workers, progress=progress)
        self.failures = failure_counts(data["reason"])
        select = torch.nonzero(data["reason"] == 0).flatten()
        if len(select) == 0:
            raise ValueError(
                f"no molecule of the first {num_molecules} of {split!r} could be prepared: {self.failures}"
            )
        if subset is not None:
            if not 1 <= subset <= len(select):
                raise ValueError(f"subset must be between 1 and {len(select)} (the kept molecules), got {subset}")
            select = select[:subset]
        super().__init__(
            *gather_bonded(
                *(data[key] for key in ("pos", "z", "charge", "ptr", "bond_ptr", "bond_atoms", "bond_order")), select
            ),
            featurizer=AtomFeaturizer(atom_types=DRUG_ELEMENTS),
            smiles=[data["smiles"][i] for i in select.tolist()],
        )
        self.split = split
        self.energy = data["energy"][select]
        self.rows = data["rows"][select]


def drugs_train_val(
    num_molecules: int = 50_000,
    val_molecules: int = 1_000,
    subset: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
) -> tuple[DrugsDataset, DrugsDataset, MoleculeInfo]:
    """Training and validation sets of ``data=drugs`` and the info kept for sampling (``remove_h``:
    hydrogens are placed at export; ``num_dropped``: molecules that failed preparation).

    Args:
        num_molecules: MOSES training molecules to prepare (the kept ones train).
        val_molecules: validation molecules to prepare.
        subset: train on the first ``subset`` kept molecules only (the marginals stay those of all).
        workers: preparation processes (default: all CPUs).
    """
    full = DrugsDataset("train", num_molecules, cache_dir, workers=workers)
    train = full if subset is None else DrugsDataset("train", num_molecules, cache_dir, subset=subset)
    val = DrugsDataset("valid", val_molecules, cache_dir, workers=workers)
    info = train.info(
        "drugs",
        remove_h=True,
        categorical=full.categorical_info(),
        num_dropped={
            "train": num_molecules - full.failures.get("kept", 0),
            "valid": val_molecules - val.failures.get("kept", 0),
        },
    )
    return train, val, info


def _main() -> None:  # pragma: no cover - manual use: python -m molgen.molecules.drugs --split train -n 50000
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Prepare drug-like conformers (resumable) and print the failures.")
    parser.add_argument("--split", choices=list(SPLITS), default="train")
    parser.add_argument("-n", "--num-molecules", type=int, required=True)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    data = prepare_drugs(args.split, args.num_molecules, args.cache_dir, workers=args.workers)
    counts = failure_counts(data["reason"])
    print(f"{args.split}: {args.num_molecules} molecules in {time.perf_counter() - start:.0f} s: {counts}")


if __name__ == "__main__":
    _main()

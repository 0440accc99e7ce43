"""QM9 molecules (from the ``qm9pack`` PyPI package) as PyG ``Data`` items.

Pipeline:

1. :func:`locate_qm9pack_csvs` finds the CSV files shipped inside ``qm9pack``
   (the package itself is never imported: its ``__init__`` needs ``pkg_resources``).
2. :func:`process_qm9` parses all 130,831 molecules once into a single compact
   cache file ``qm9_processed.pt`` (plain tensors, loadable with
   ``torch.load(weights_only=True)``).
3. :class:`QM9Dataset` selects an EDM split (:func:`edm_split`) from the cache.

:class:`QM9Dataset` is a :class:`molgen.molecules.dataset.MoleculeDataset`.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from molgen.dataset_info import MoleculeInfo
from molgen.io import atomic_output, default_cache_root, read_cache
from molgen.molecules.dataset import MoleculeDataset, gather_molecules
from molgen.molecules.featurize import AtomFeaturizer, atomic_number
from molgen.molecules.qm9_properties import PROPERTIES, check_property_names, load_qm9_properties, training_half

__all__ = [
    "CACHE_FILENAME",
    "CACHE_FORMAT_VERSION",
    "QM9_NUM_MOLECULES",
    "QM9Dataset",
    "QM9Record",
    "default_cache_dir",
    "edm_split",
    "load_qm9",
    "locate_qm9pack_csvs",
    "parse_qm9_row",
    "process_qm9",
    "read_qm9_csv",
    "serve_properties",
]

log = logging.getLogger(__name__)

QM9_NUM_MOLECULES = 130_831
"""Molecules in QM9 after removing the 3,054 that failed the consistency check."""

CACHE_FILENAME = "qm9_processed.pt"
CACHE_FORMAT_VERSION = 1
"""Bump when the cache layout changes; stale caches are then rebuilt automatically."""

_QM9PACK_CSVS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_SPLIT_NAMES = ("train", "valid", "test")


# --------------------------------------------------------------------------- #
# QM9: raw CSV parsing and cache
# --------------------------------------------------------------------------- #


class QM9Record(NamedTuple):
    """One parsed QM9 molecule.

    Attributes:
        index: QM9 (GDB-9) molecule index, 1-based.
        smiles: SMILES string as given by qm9pack.
        z: Atomic numbers, length n.
        pos: Positions [n, 3] in Å (original, uncentred frame).
    """

    index: int
    smiles: str
    z: list[int]
    pos: list[list[float]]


def locate_qm9pack_csvs() -> list[Path]:
    """Paths of qm9pack's ``qm9_part{1,2,3}.csv`` files (without importing qm9pack).

    Raises:
        FileNotFoundError: if qm9pack is not installed or its data files are missing.
    """
    # find_spec on a top-level name only locates the package; it does not run __init__.
    spec = importlib.util.find_spec("qm9pack")
    if spec is not None and spec.submodule_search_locations:
        data_dir = Path(next(iter(spec.submodule_search_locations))) / "data"
    else:
        try:
            dist = importlib.metadata.distribution("qm9pack")
        except importlib.metadata.PackageNotFoundError:
            raise FileNotFoundError("qm9pack is not installed: pip install qm9pack") from None
        data_dir = Path(dist.locate_file("qm9pack")) / "data"
    paths = [data_dir / name for name in _QM9PACK_CSVS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"qm9pack is installed but its data files are missing: {', '.join(missing)}")
    return paths


def parse_qm9_row(row: Mapping[str, str]) -> QM9Record:
    """Parse one qm9pack CSV row (as produced by :class:`csv.DictReader`).

    Uses the columns ``Index``, ``SMILES``, ``N_atoms``, ``Elements`` (e.g.
    ``"['C','H']"``) and ``XYZ_Ang`` (nested list ``[[x,y,z],...]``, Å).

    Raises:
        ValueError: if a column is missing or malformed, or the atom counts disagree.
    """
    try:
        index = int(row["Index"])
        n_atoms = int(row["N_atoms"])
        symbols = [s.strip().strip("'\"") for s in row["Elements"].strip().strip("[]").split(",")]
        z = [atomic_number(s) for s in symbols]
        # Not JSON: some numbers are written like "0." (Mathematica style).
        flat = [float(t) for t in row["XYZ_Ang"].replace("[", "").replace("]", "").split(",")]
        smiles = row["SMILES"]
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"malformed qm9pack row (Index={row.get('Index')!r}): {e}") from None
    if len(z) != n_atoms or len(flat) != 3 * n_atoms:
        raise ValueError(
            f"qm9pack row Index={index}: N_atoms={n_atoms} but {len(z)} elements and {len(flat)} coordinates"
        )
    pos = [flat[i : i + 3] for i in range(0, len(flat), 3)]
    return QM9Record(index=index, smiles=smiles, z=z, pos=pos)


def read_qm9_csv(path: str | os.PathLike) -> Iterable[QM9Record]:
    """Yield the parsed molecules of one qm9pack CSV file, in file order."""
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            yield parse_qm9_row(row)


def default_cache_dir() -> Path:
    """``$MOLGEN_CACHE/qm9`` if ``MOLGEN_CACHE`` is set, else ``~/.cache/molgen/qm9``."""
    return default_cache_root() / "qm9"


def _read_cache(path: Path) -> dict[str, Any] | None:
    """Load the cache dict, or None if it is missing, unreadable or of another version."""
    return read_cache(path, "QM9", CACHE_FORMAT_VERSION)


def process_qm9(
    cache_dir: str | os.PathLike | None = None,
    *,
    force: bool = False,
    csv_paths: Sequence[str | os.PathLike] | None = None,
) -> Path:
    """Parse qm9pack's CSVs into one cache file, unless a valid one exists.

    The cache is a dict of plain objects, saved atomically (temp file + rename):
    ``format_version`` (int), ``pos`` float32 [A, 3] Å (uncentred), ``z`` int8 [A],
    ``ptr`` int64 [M + 1], ``index`` int64 [M] (QM9 index, ascending) and
    ``smiles`` (list of M str). Molecules are sorted by QM9 index.

    Args:
        cache_dir: Directory of the cache; default :func:`default_cache_dir`.
        force: Rebuild even if a valid cache exists.
        csv_paths: CSV files to parse; default :func:`locate_qm9pack_csvs`.

    Returns:
        Path of the cache file.
    """
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache_path = cache_dir / CACHE_FILENAME
    if not force and _read_cache(cache_path) is not None:
        return cache_path
    paths = [Path(p) for p in csv_paths] if csv_paths is not None else locate_qm9pack_csvs()

    indices: list[int] = []
    smiles: list[str] = []
    z: list[int] = []
    pos: list[list[float]] = []
    counts: list[int] = []
    total = QM9_NUM_MOLECULES if csv_paths is None else None
    # a one-time cache build: its bar shows on a terminal and stays out of logs (disable=None)
    with tqdm(total=total, desc="Parsing QM9", unit="mol", disable=None) as bar:
        for path in paths:
            for rec in read_qm9_csv(path):
                indices.append(rec.index)
                smiles.append(rec.smiles)
                z.extend(rec.z)
                pos.extend(rec.pos)
                counts.append(len(rec.z))
                bar.update()
    if not indices:
        raise ValueError(f"no molecules found in {[str(p) for p in paths]}")

    index_t = torch.tensor(indices, dtype=torch.long)
    if len(index_t.unique()) != len(index_t):
        raise ValueError("qm9pack CSVs contain duplicate molecule indices")
    ptr = torch.zeros(len(counts) + 1, dtype=torch.long)
    ptr[1:] = torch.tensor(counts).cumsum(0)
    order = torch.argsort(index_t)
    pos_t, z_t, ptr = gather_molecules(
        torch.tensor(pos, dtype=torch.float32), torch.tensor(z, dtype=torch.int8), ptr, order
    )
    data = {
        "format_version": CACHE_FORMAT_VERSION,
        "pos": pos_t,
        "z": z_t,
        "ptr": ptr,
        "index": index_t[order],
        "smiles": [smiles[i] for i in order.tolist()],
    }

    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(cache_path) as tmp:  # concurrent builders (e.g. DDP ranks) never clobber each other
        torch.save(data, tmp)
    log.info("wrote QM9 cache with %d molecules to %s", len(indices), cache_path)
    return cache_path


def load_qm9(cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The processed QM9 cache dict (see :func:`process_qm9`), building it if needed."""
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    data = _read_cache(cache_dir / CACHE_FILENAME)
    if data is None:
        path = process_qm9(cache_dir, force=True)
        data = _read_cache(path)
        if data is None:  # only if another process replaced it with something invalid
            raise RuntimeError(f"QM9 cache {path} could not be read after processing")
    return data


def edm_split(num_molecules: int = QM9_NUM_MOLECULES) -> dict[str, np.ndarray]:
    """Train/valid/test molecule positions of the EDM (Cormorant) QM9 split.

    With molecules ordered by QM9 index, ``perm = RandomState(0).permutation(N)``;
    train = ``perm[:100000]``, test size = ``int(0.1 * N)``, valid = the rest, in
    the order train, valid, test. For N = 130,831 this gives 100,000 / 17,748 / 13,083.

    Returns:
        ``{"train", "valid", "test"}`` -> int64 arrays of positions in ``0..N-1``.
    """
    n_train = 100_000
    n_test = int(0.1 * num_molecules)
    n_valid = num_molecules - n_train - n_test
    if n_valid <= 0:
        raise ValueError(f"the EDM split needs more than 111,112 molecules, got {num_molecules}")
    perm = np.random.RandomState(0).permutation(num_molecules)
    return {
        "train": perm[:n_train],
        "valid": perm[n_train : n_train + n_valid],
        "test": perm[n_train + n_valid :],
    }


class QM9Dataset(MoleculeDataset):
    """One EDM split of QM9, served as PyG ``Data`` items (see :class:`MoleculeDataset`).

    Args:
        split: ``"train"``, ``"valid"`` or ``"test"``.
        subset: Keep only the first ``subset`` molecules of the split (the split
            order is a fixed random permutation, so this is a deterministic random
            sample).
        cache_dir: Cache directory; default :func:`default_cache_dir`. The cache is
            built on first use (about a minute).
        remove_h: Drop hydrogen atoms (pass a featurizer without ``"H"`` to also
            drop the always-zero H one-hot column).
        featurizer: Node feature encoder.
        conditions: QM9 properties (:data:`~molgen.molecules.qm9_properties.PROPERTIES`) served as
            items' normalised ``y`` (:meth:`MoleculeDataset.set_targets`).
        half: ``"first"`` or ``"second"`` half of the training split (EDM's protocol,
            :func:`~molgen.molecules.qm9_properties.training_half`), before ``subset``.
        normalization: the training set's :attr:`conditions` to normalise ``y`` with (a validation set);
            None: this set's own.
    """

    def __init__(
        self,
        split: str = "train",
        subset: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        remove_h: bool = False,
        featurizer: AtomFeaturizer = AtomFeaturizer(),
        conditions: Sequence[str] = (),
        half: str | None = None,
        normalization: dict[str, Any] | None = None,
    ) -> None:
        if split not in _SPLIT_NAMES:
            raise ValueError(f"unknown split {split!r}; valid splits are {list(_SPLIT_NAMES)}")
        if half is not None and split != "train":
            raise ValueError(f"data.half selects half of the training split, not of {split!r}")
        data = load_qm9(cache_dir)
        n_total = len(data["index"])
        if n_total != QM9_NUM_MOLECULES:
            raise RuntimeError(
                f"QM9 cache has {n_total} molecules, the EDM split needs {QM9_NUM_MOLECULES}; "
                "rebuild it with process_qm9(force=True)"
            )
        select = training_half(torch.from_numpy(edm_split(n_total)[split]), half)
        if subset is not None:
            if not 1 <= subset <= len(select):
                raise ValueError(f"subset must be between 1 and {len(select)} for split {split!r}, got {subset}")
            select = select[:subset]
        pos, z, ptr = gather_molecules(data["pos"], data["z"], data["ptr"], select)
        super().__init__(
            pos,
            z,
            ptr,
            featurizer=featurizer,
            smiles=[data["smiles"][i] for i in select.tolist()],
            remove_h=remove_h,
        )
        self.split = split
        self.qm9_index: torch.Tensor = data["index"][select]
        """LongTensor [M]: QM9 index of each molecule."""
        if conditions:
            serve_properties(self, conditions, cache_dir, normalization)


def qm9_train_val(
    subset: int | None = None,
    val_subset: int | None = None,
    remove_h: bool = False,
    cache_dir: str | os.PathLike | None = None,
    conditions: Sequence[str] = (),
    half: str | None = None,
) -> tuple[QM9Dataset, QM9Dataset, MoleculeInfo]:
    """Training and validation splits plus the info a model keeps for sampling: the
    featurizer, the feature width, the training set's histogram of atoms per molecule and,
    with ``conditions``, the training statistics of those properties (``half``: of that half
    of the training split; validation normalised with them).
    """
    featurizer = AtomFeaturizer()
    train = QM9Dataset(
        "train",
        subset=subset,
        cache_dir=cache_dir,
        remove_h=remove_h,
        featurizer=featurizer,
        conditions=conditions,
        half=half,
    )
    val = QM9Dataset(
        "valid",
        subset=val_subset,
        cache_dir=cache_dir,
        remove_h=remove_h,
        featurizer=featurizer,
        conditions=conditions,
        normalization=train.conditions,
    )
    return train, val, train.info("qm9", remove_h=remove_h)


def serve_properties(
    dataset: MoleculeDataset, names: Sequence[str], cache_dir: str | os.PathLike | None, normalization: dict | None
) -> None:
    """Give the items of a QM9 split (with ``qm9_index``) the properties ``names`` as normalised ``y``
    (:meth:`MoleculeDataset.set_targets`), read from the property cache beside the QM9 cache."""
    names = check_property_names(names)
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    values = load_qm9_properties(dataset.qm9_index, names, cache_dir)
    dataset.set_targets(values, names, [PROPERTIES[name].unit for name in names], normalization)

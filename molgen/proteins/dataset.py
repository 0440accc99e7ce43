"""Protein backbone datasets: a processed cache of chain segments, served as PyG graphs.

Pipeline:

1. :func:`process_backbone_folder` reads a folder of structure files once
   (:func:`molgen.proteins.pdb.read_backbone_folder`), splits chains at chain breaks,
   keeps segments of at least ``min_length`` residues and saves them to one cache file.
2. :class:`BackboneDataset` serves segments (cropped to ``max_length``) as graphs.
3. :func:`backbone_train_val` splits the segments by PDB entry into training and
   validation sets, and returns the ``dataset_info`` a model keeps for sampling.

**Node order.** A backbone of ``L`` residues is a graph of ``4L`` nodes in
residue-major order: nodes ``4i, 4i+1, 4i+2, 4i+3`` are N, CA, C, O of residue ``i``,
residues in chain order. Models derive sequence neighbours (and hence the peptide
bonds) from this order alone, so anything that reorders nodes breaks them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from molgen.dataset_info import BackboneInfo
from molgen.io import atomic_output, default_cache_root, read_cache
from molgen.proteins.geometry import BACKBONE_ATOMS, CHAIN_BREAK_CA_DISTANCE
from molgen.proteins.internal_coordinates import NUM_FEATURES, angle_features, ca_internal_coordinates
from molgen.proteins.pdb import StructureError, find_structure_files, read_backbone_folder
from molgen.proteins.secondary_structure import NUM_LABELS, UNKNOWN, dssp_labels, label_features

__all__ = [
    "CACHE_FORMAT_VERSION",
    "BackboneDataset",
    "backbone_train_val",
    "benchmark_segments",
    "load_backbone_cache",
    "pdb_entry",
    "process_backbone_folder",
]

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
"""Bump when the cache layout changes; it is part of the cache key, so old caches are ignored."""

_CACHE_KEYS = ("format_version", "root", "options", "coords", "ptr", "names", "report")
_CROPS = ("random", "center")


def _cache_path(root: Path, files: list[Path], cache_dir: str | os.PathLike | None, options: dict) -> Path:
    """``<cache>/proteins/backbones_<key>.pt``; the key changes with the folder, its files and the options."""
    listing = [[str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    payload = {"format_version": CACHE_FORMAT_VERSION, "root": str(root), "files": listing, "options": options}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    return base / "proteins" / f"backbones_{key}.pt"


def load_backbone_cache(path: str | os.PathLike) -> dict[str, Any] | None:
    """The cache dict written by :func:`process_backbone_folder`, or None if it is missing,
    unreadable, of another format version or incomplete."""
    return read_cache(path, "backbone", CACHE_FORMAT_VERSION, _CACHE_KEYS)


def process_backbone_folder(
    root: str | os.PathLike, cache_dir: str | os.PathLike | None = None, min_length: int = 40
) -> Path:
    """Parse every structure file under ``root`` into one cache file, unless it exists.

    Chains are split at chain breaks (consecutive CA atoms > 4.2 Å apart) and
    segments with at least ``min_length`` residues are kept. The cache file is
    ``<cache_dir>/proteins/backbones_<key>.pt``, where the key hashes the absolute
    ``root``, the relative path, size and mtime of every structure file, the
    options and :data:`CACHE_FORMAT_VERSION`: editing, adding or removing a file
    makes a new cache (old ones are left in place). It holds plain objects only
    (``torch.load(weights_only=True)``), written atomically:

    - ``format_version`` int, ``root`` str, ``options`` dict (``min_length``,
      ``max_ca_distance``);
    - ``coords`` float32 ``[R, 4, 3]`` Å, the residues of all S segments in order;
    - ``ptr`` int64 ``[S + 1]``: segment ``i`` is ``coords[ptr[i]:ptr[i + 1]]``;
    - ``names`` S str (see :meth:`molgen.proteins.pdb.BackboneChain.segments`);
    - ``report`` dict: :meth:`molgen.proteins.pdb.ParseReport.as_dict` plus
      ``segments`` (all break-free segments) and ``segments_kept``.

    Args:
        root: Folder of structure files (searched recursively).
        cache_dir: Cache root; default :func:`molgen.io.default_cache_root`
            (``$MOLGEN_CACHE`` or ``~/.cache/molgen``).
        min_length: Minimum residues per kept segment.

    Returns:
        Path of the cache file.

    Raises:
        StructureError: ``root`` is not a folder of structure files, none is
            readable, or no segment has ``min_length`` residues.
        ValueError: ``min_length < 1``.
    """
    if min_length < 1:
        raise ValueError(f"min_length must be >= 1, got {min_length}")
    root = Path(root).expanduser().resolve()
    options = {"min_length": int(min_length), "max_ca_distance": CHAIN_BREAK_CA_DISTANCE}
    path = _cache_path(root, find_structure_files(root), cache_dir, options)
    if load_backbone_cache(path) is not None:
        log.info("using backbone cache %s for %s", path, root)
        return path

    start = time.perf_counter()
    chains, report = read_backbone_folder(root)
    segments = [s for chain in chains for s in chain.segments(CHAIN_BREAK_CA_DISTANCE)]
    kept = [s for s in segments if s.length >= min_length]
    if not kept:
        raise StructureError(root, f"no break-free chain segment with >= {min_length} residues")
    ptr = torch.zeros(len(kept) + 1, dtype=torch.long)
    ptr[1:] = torch.tensor([s.length for s in kept]).cumsum(0)
    data = {
        "format_version": CACHE_FORMAT_VERSION,
        "root": str(root),
        "options": options,
        "coords": torch.from_numpy(np.concatenate([s.coords for s in kept])).float(),
        "ptr": ptr,
        "names": [s.name for s in kept],
        "report": {**report.as_dict(), "segments": len(segments), "segments_kept": len(kept)},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:  # concurrent builders (e.g. DDP ranks) never clobber each other
        torch.save(data, tmp)
    log.info(
        "processed %s in %.1f s: %d of %d break-free segments have >= %d residues; cache %s\n%s",
        root,
        time.perf_counter() - start,
        len(kept),
        len(segments),
        min_length,
        path,
        report.format(),
    )
    return path


class BackboneDataset(torch.utils.data.Dataset):
    """Backbone segments served as graphs in residue-major node order (see the module docstring).

    Item ``i`` is ``Data(pos=[4L, 3], h=[4L, 4], num_residues=L, num_nodes=4L)``:

    - ``pos`` float32, in model units (Å / ``length_scale``), centred on the mean of
      all ``4L`` atoms of the (cropped) segment;
    - ``h`` float32 one-hot of the atom type in :data:`BACKBONE_ATOMS` order
      (N, CA, C, O), i.e. rows ``[1,0,0,0], [0,1,0,0], [0,0,1,0], [0,0,0,1]`` repeated.

    Segments longer than ``max_length`` are cropped to a contiguous window of
    ``max_length`` residues: ``crop="random"`` draws the start from torch's global
    RNG on every access (training; Lightning's seeding makes it reproducible),
    ``crop="center"`` takes the central window (validation; deterministic).

    Args:
        coords: Float tensor ``[R, 4, 3]`` Å, residues of all segments concatenated.
        ptr: Integer tensor ``[S + 1]`` of segment offsets into ``coords``.
        names: S segment names.
        max_length: Crop length in residues (None: never crop).
        length_scale: Å per model unit.
        crop: ``"random"`` or ``"center"``.
        atoms: the nodes of each residue: all of N, CA, C, O (default), or ``["CA"]`` for residue-level
            models (one node per residue; items are then ``[L, 3]`` positions with ``h`` ``[L, 1]``).
        node_vectors: with ``atoms=["CA"]``, atoms each node carries as offsets from its CA
            (``["N", "C", "O"]``): ``h`` is then ``[L, 9]``, the offsets in units of ``vector_scale`` Å
            (equivariant features the model diffuses, :class:`~molgen.models.egnn_vectors.EGNNVectorDenoiser`).
        vector_scale: Å per unit of those offsets.
        labels: ``[R]`` secondary-structure labels of the residues
            (:mod:`molgen.proteins.secondary_structure`), or None. Given, ``h`` gains their three
            one-hot channels after the atom types (every node of a residue carries its residue's label);
            with ``internal_coordinates``, whose ``h`` is diffused, they are served as ``node_labels`` ``[L]``
            long instead.
        label_dropout: the probability that an item's labels are all hidden (zero channels; -1 labels).
        internal_coordinates: with ``atoms=["CA"]``, serve each (cropped) chain in internal coordinates
            instead (:mod:`molgen.proteins.internal_coordinates`): ``pos`` ``[L, 0]`` (no coordinates) and ``h``
            ``[L, 3]``, the virtual bond angle and torsion features of every residue.

    Raises:
        ValueError: inconsistent shapes, empty segments, non-finite coordinates or
            invalid options.
    """

    def __init__(
        self,
        coords: torch.Tensor,
        ptr: torch.Tensor,
        names: Sequence[str],
        *,
        max_length: int | None = 128,
        length_scale: float = 10.0,
        crop: str = "random",
        atoms: Sequence[str] = BACKBONE_ATOMS,
        node_vectors: Sequence[str] = (),
        vector_scale: float = 2.0,
        labels: np.ndarray | None = None,
        label_dropout: float = 0.0,
        internal_coordinates: bool = False,
    ) -> None:
        coords, ptr = torch.as_tensor(coords), torch.as_tensor(ptr)
        if coords.dim() != 3 or coords.shape[1:] != (len(BACKBONE_ATOMS), 3) or not coords.is_floating_point():
            raise ValueError(f"coords must be a float tensor [R, 4, 3], got {coords.dtype} {tuple(coords.shape)}")
        if ptr.dim() != 1 or len(ptr) < 2 or ptr.is_floating_point():
            raise ValueError(f"ptr must be an integer tensor [S + 1] with S >= 1, got {ptr.dtype} {tuple(ptr.shape)}")
        if ptr[0] != 0 or ptr[-1] != len(coords) or (ptr.diff() < 1).any():
            raise ValueError(f"ptr must start at 0, increase strictly and end at the residue count {len(coords)}")
        if len(names) != len(ptr) - 1:
            raise ValueError(f"got {len(names)} names for {len(ptr) - 1} segments")
        if not torch.isfinite(coords).all():
            raise ValueError("coords contain NaN or inf")
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1 or None, got {max_length}")
        if not (np.isfinite(length_scale) and length_scale > 0):
            raise ValueError(f"length_scale must be a positive number, got {length_scale}")
        if crop not in _CROPS:
            raise ValueError(f"crop must be one of {_CROPS}, got {crop!r}")
        if list(atoms) not in (list(BACKBONE_ATOMS), ["CA"]):
            raise ValueError(f"atoms must be {list(BACKBONE_ATOMS)} or ['CA'] (residue-level), got {list(atoms)}")
        self.atoms = list(atoms)
        self._columns = [list(BACKBONE_ATOMS).index(atom) for atom in self.atoms]
        if node_vectors and (self.atoms != ["CA"] or sorted(node_vectors) != ["C", "N", "O"]):
            raise ValueError(f"node_vectors must be N, C and O on CA nodes (atoms: [CA]), got {list(node_vectors)}")
        if not (np.isfinite(vector_scale) and vector_scale > 0):
            raise ValueError(f"vector_scale must be a positive number, got {vector_scale}")
        self.node_vectors, self.vector_scale = list(node_vectors), float(vector_scale)
        if internal_coordinates and (self.atoms != ["CA"] or self.node_vectors):
            raise ValueError("internal_coordinates describe CA traces: atoms=[CA], no node_vectors")
        self.internal_coordinates = bool(internal_coordinates)
        self._vector_columns = [list(BACKBONE_ATOMS).index(atom) for atom in self.node_vectors]
        self._coords = coords.float()
        self._ptr: list[int] = ptr.long().tolist()
        self.names = list(names)
        self.max_length, self.length_scale, self.crop = max_length, float(length_scale), crop
        self._one_hot = torch.eye(len(self.atoms))
        if labels is not None:
            if self.node_vectors:
                raise ValueError("secondary-structure labels are for models with atom-type features, not node_vectors")
            if np.shape(labels) != (len(coords),):
                raise ValueError(f"labels must be [R] = [{len(coords)}] (one per residue), got {np.shape(labels)}")
        if not 0.0 <= label_dropout <= 1.0:
            raise ValueError(f"label_dropout must be in [0, 1], got {label_dropout}")
        self._labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.label_dropout = float(label_dropout)

    def __len__(self) -> int:
        return len(self._ptr) - 1

    @property
    def lengths(self) -> torch.Tensor:
        """LongTensor ``[S]``: residues per segment, before cropping."""
        return torch.tensor(self._ptr).diff()

    def segment(self, i: int) -> np.ndarray:
        """Segment ``i`` uncropped, in Å: ``[L, 4, 3]`` float64 (atoms N, CA, C, O)."""
        return self._coords[self._ptr[i] : self._ptr[i + 1]].double().numpy()

    def cropped_lengths(self) -> torch.Tensor:
        """LongTensor ``[S]``: residues per served item (after cropping to ``max_length``)."""
        lengths = self.lengths
        return lengths if self.max_length is None else lengths.clamp(max=self.max_length)

    def residue_count_histogram(self) -> torch.Tensor:
        """LongTensor ``[max_L + 1]``: entry ``n`` counts the items with ``n`` residues (after cropping)."""
        return torch.bincount(self.cropped_lengths())

    def __getitem__(self, idx: int) -> Data:
        """Segment ``idx``, cropped, centred and scaled (see the class docstring)."""
        i = int(idx)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for dataset of {len(self)} segments")
        i %= len(self)
        start, end = self._ptr[i], self._ptr[i + 1]
        if self.max_length is not None and end - start > self.max_length:
            slack = end - start - self.max_length
            start += int(torch.randint(slack + 1, ())) if self.crop == "random" else slack // 2
            end = start + self.max_length
        num_residues = end - start
        residues = self._coords[start:end].double()
        # all of the chain's labels hidden, for a fraction of the items
        hidden = self._labels is not None and self.label_dropout and float(torch.rand(())) < self.label_dropout
        if self.internal_coordinates:
            h = angle_features(*ca_internal_coordinates(residues[:, 1].numpy()))
            pos = torch.zeros(num_residues, 0)
            item = Data(pos=pos, h=torch.from_numpy(h), num_residues=num_residues, num_nodes=num_residues)
            if self._labels is not None:
                item.node_labels = torch.full((num_residues,), UNKNOWN) if hidden else self._labels[start:end]
            return item
        atoms = residues[:, self._columns].reshape(-1, 3)  # residue-major
        pos = ((atoms - atoms.mean(dim=0)) / self.length_scale).float()
        if self.node_vectors:  # offsets from the CA, x y z of each atom in turn
            offsets = residues[:, self._vector_columns] - residues[:, 1:2]
            h = (offsets / self.vector_scale).reshape(num_residues, -1).float()
        else:
            h = self._one_hot.repeat(num_residues, 1)
        if self._labels is not None:  # one-hot channels, zero rows where unknown or hidden
            labels = label_features(torch.full((num_residues,), UNKNOWN) if hidden else self._labels[start:end])
            h = torch.cat([h, labels.repeat_interleave(len(self.atoms), dim=0)], dim=-1)
        return Data(pos=pos, h=h, num_residues=num_residues, num_nodes=len(pos))


def pdb_entry(name: str) -> str:
    """The PDB entry of a chain or segment name: the first 4 characters of its file stem, upper case
    (``"1A2K_l_u:A/2"`` -> ``"1A2K"``), shared by the receptor and ligand files of a complex."""
    return name.rsplit(":", 1)[0][:4].upper()


def backbone_train_val(
    root: str | os.PathLike | Sequence[str | os.PathLike],
    val_fraction: float = 0.1,
    min_length: int = 40,
    max_length: int = 128,
    length_scale: float = 10.0,
    split_seed: int = 0,
    subset: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    atoms: Sequence[str] = BACKBONE_ATOMS,
    node_vectors: Sequence[str] = (),
    vector_scale: float = 2.0,
    secondary_structure: bool = False,
    label_dropout: float = 0.2,
    internal_coordinates: bool = False,
) -> tuple[BackboneDataset, BackboneDataset, BackboneInfo]:
    """Training and validation backbone sets plus the ``dataset_info`` a model keeps for sampling.

    Segments are split by PDB entry (:func:`pdb_entry`), so the chains of one
    complex never straddle the split: the sorted entries are permuted with
    ``numpy.random.RandomState(split_seed)`` and the first
    ``max(1, round(val_fraction * entries))`` go to validation. Training items are
    randomly cropped, validation items centre-cropped, to ``max_length`` residues.

    Args:
        root: Folder of structure files (see :func:`process_backbone_folder`), or several
            (e.g. db55 and cgdms), each processed into its own cache and pooled before the split.
        val_fraction: Fraction of PDB entries used for validation, in (0, 1).
        min_length: Minimum residues of a break-free segment.
        max_length: Crop length in residues.
        length_scale: Å per model unit.
        split_seed: Seed of the entry split (and of the ``subset`` choice).
        subset: Keep a random but fixed choice of this many training segments (None: all).
        cache_dir: Cache root (see :func:`process_backbone_folder`).
        atoms, node_vectors, vector_scale: the nodes of each residue and their features
            (:class:`BackboneDataset`): all four atoms, ``["CA"]``, or ``["CA"]`` with N, C, O offsets.
        secondary_structure: serve each residue's DSSP state as a label the model is conditioned on
            (fold conditioning, :mod:`molgen.proteins.secondary_structure`); computed once per run
            from the uncropped segments.
        label_dropout: the fraction of training items whose labels are hidden (validation items keep
            theirs), so that the model also samples without labels.
        internal_coordinates: serve CA traces as virtual bond angles and torsions (:class:`BackboneDataset`).

    Returns:
        ``(train, val, info)``: a :class:`~molgen.dataset_info.BackboneInfo` with the
        folder name (several joined by ``+``) as ``dataset`` and the training set's residue
        counts (after cropping) as ``size_histogram``.

    Raises:
        ValueError: ``root`` does not exist, invalid options, or a split side is empty.
    """
    roots = [Path(r).expanduser() for r in ([root] if isinstance(root, (str, os.PathLike)) else root)]
    missing = [str(r) for r in roots if not r.is_dir()]
    if not roots or missing:
        raise ValueError(f"backbone data folder does not exist: {', '.join(missing) or 'none given'}")
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= min_length <= max_length, got min_length={min_length}, max_length={max_length}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")

    data = _pooled_caches(roots, cache_dir, min_length)
    names: list[str] = data["names"]
    entries = sorted({pdb_entry(name) for name in names})
    rng = np.random.RandomState(split_seed)
    n_val = max(1, round(val_fraction * len(entries)))
    if n_val >= len(entries):
        raise ValueError(
            f"val_fraction={val_fraction} of {len(entries)} PDB entries leaves no training entry; "
            "add structures or lower val_fraction"
        )
    val_entries = {entries[i] for i in rng.permutation(len(entries))[:n_val]}
    is_val = np.array([pdb_entry(name) in val_entries for name in names])
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if subset is not None:
        if not 1 <= subset <= len(train_idx):
            raise ValueError(f"subset must be between 1 and {len(train_idx)} training segments, got {subset}")
        train_idx = np.sort(rng.permutation(train_idx)[:subset])

    labels = _segment_labels(data) if secondary_structure else None

    def select(idx: np.ndarray, crop: str) -> BackboneDataset:
        lengths = data["ptr"].diff()[torch.from_numpy(idx)]
        rows = torch.cat([torch.arange(data["ptr"][i], data["ptr"][i + 1]) for i in idx.tolist()])
        ptr = torch.zeros(len(idx) + 1, dtype=torch.long)
        ptr[1:] = lengths.cumsum(0)
        return BackboneDataset(
            data["coords"][rows],
            ptr,
            [names[i] for i in idx.tolist()],
            max_length=max_length,
            length_scale=length_scale,
            crop=crop,
            atoms=atoms,
            node_vectors=node_vectors,
            vector_scale=vector_scale,
            labels=None if labels is None else labels[rows.numpy()],
            label_dropout=label_dropout if crop == "random" else 0.0,
            internal_coordinates=internal_coordinates,
        )

    train, val = select(train_idx, "random"), select(val_idx, "center")
    log.info(
        "backbone split of %s: %d training segments (%d entries), %d validation segments (%d entries)",
        " + ".join(map(str, roots)),
        len(train),
        len(entries) - n_val,
        len(val),
        n_val,
    )
    info = BackboneInfo(
        dataset="+".join(r.resolve().name for r in roots),
        num_features=(
            NUM_FEATURES
            if internal_coordinates
            else (3 * len(train.node_vectors) or len(train.atoms)) + (NUM_LABELS if secondary_structure else 0)
        ),
        size_histogram=train.residue_count_histogram().tolist(),
        atom_types=list(train.atoms),
        length_scale=float(length_scale),
        max_length=int(max_length),
        **({"node_vectors": train.node_vectors, "vector_scale": train.vector_scale} if train.node_vectors else {}),
        secondary_structure=secondary_structure,
        **({"internal_coordinates": True} if internal_coordinates else {}),
    )
    return train, val, info


def benchmark_segments(
    root: str | os.PathLike, count: int, lengths: tuple[int, int], cache_dir: str | os.PathLike | None = None
) -> list[np.ndarray]:
    """The first ``count`` break-free segments of a structure folder with ``lengths[0]..lengths[1]`` residues,
    ``[L, 4, 3]`` float64 Å each, validation split first (:func:`backbone_train_val`'s defaults): the
    held-out chains that benchmark scripts compare samples with.

    Raises:
        ValueError: ``root`` is not a folder, or no segment has such a length.
    """
    train, val, _ = backbone_train_val(root, cache_dir=cache_dir)
    segments = (part.segment(i) for part in (val, train) for i in range(len(part)))
    chosen = [s for s in segments if lengths[0] <= len(s) <= lengths[1]][:count]
    if not chosen:
        raise ValueError(f"no segments of {lengths[0]}-{lengths[1]} residues in {root}")
    return chosen


def _segment_labels(data: dict[str, Any]) -> np.ndarray:
    """DSSP labels ``[R]`` of the pooled residues, each segment assigned whole (before any crop)."""
    start = time.perf_counter()
    ptr = data["ptr"].tolist()
    coords = data["coords"].double().numpy()
    labels = np.concatenate([dssp_labels(coords[a:b]) for a, b in zip(ptr[:-1], ptr[1:])])
    log.info("secondary structure of %d segments in %.0f s", len(ptr) - 1, time.perf_counter() - start)
    return labels


def _pooled_caches(roots: list[Path], cache_dir: str | os.PathLike | None, min_length: int) -> dict[str, Any]:
    """``coords``, ``ptr`` and ``names`` of the segments of every folder, each read through its own cache
    (:func:`process_backbone_folder`), concatenated in the order given."""
    coords, lengths, names = [], [], []
    for root in roots:
        data = load_backbone_cache(process_backbone_folder(root, cache_dir=cache_dir, min_length=min_length))
        if data is None:  # only if another process replaced it with something invalid
            raise RuntimeError(f"backbone cache for {root} could not be read after processing")
        coords.append(data["coords"])
        lengths.append(data["ptr"].diff())
        names += data["names"]
    ptr = torch.zeros(len(names) + 1, dtype=torch.long)
    ptr[1:] = torch.cat(lengths).cumsum(0)
    return {"coords": torch.cat(coords), "ptr": ptr, "names": names}

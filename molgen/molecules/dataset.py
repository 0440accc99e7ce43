"""In-memory datasets of 3D molecules in the PyG layout.

:class:`MoleculeDataset` stores all atoms of all molecules in flat tensors
(``pos`` [A, 3] Å, ``z`` [A], ``ptr`` [M + 1]) and serves each molecule as a
``torch_geometric.data.Data``; dataset-specific loaders (QM9) build on it, and
tests build tiny ones in code with :meth:`MoleculeDataset.from_lists`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from molgen.dataset_info import MoleculeInfo
from molgen.graph_batch import node_batch, remove_mean
from molgen.molecules.featurize import AtomFeaturizer
from molgen.targets import conditions_info, normalize


class MoleculeDataset(torch.utils.data.Dataset):
    """Molecules stored as concatenated atom arrays plus offsets.

    Molecule ``i`` owns atoms ``ptr[i]:ptr[i+1]``. Positions are centred once at
    construction so that every molecule has zero centroid (the unweighted mean of
    atom positions, i.e. EDM's "centre of gravity"; the diffusion model lives in
    this zero-mean subspace). Node features are precomputed once, so
    ``__getitem__`` only slices.

    Args:
        pos: Float tensor [A, 3], atom positions in Å (A = total number of atoms).
        z: Integer tensor [A], atomic numbers.
        ptr: Integer tensor [M + 1], molecule offsets into the atom arrays
            (``ptr[0] == 0``, non-decreasing, ``ptr[-1] == A``).
        featurizer: Maps atomic numbers to node features ``h``.
        smiles: Optional list of M SMILES strings (e.g. for novelty metrics).
        remove_h: Drop hydrogen atoms before centring.

    Raises:
        ValueError: on inconsistent shapes, non-finite coordinates, empty
            molecules or elements the featurizer does not support.
    """

    def __init__(
        self,
        pos: torch.Tensor,
        z: torch.Tensor,
        ptr: torch.Tensor,
        *,
        featurizer: AtomFeaturizer = AtomFeaturizer(),
        smiles: Sequence[str] | None = None,
        remove_h: bool = False,
    ) -> None:
        pos, z, ptr = _check_atom_arrays(pos, z, ptr)
        if smiles is not None and len(smiles) != len(ptr) - 1:
            raise ValueError(f"got {len(smiles)} SMILES strings for {len(ptr) - 1} molecules")
        if remove_h:
            pos, z, ptr = _drop_hydrogens(pos, z, ptr)
        counts = ptr.diff()
        if (counts == 0).any():
            empty = torch.nonzero(counts == 0).flatten()[:5].tolist()
            raise ValueError(f"molecules without atoms at indices {empty} (first 5 shown)")

        self.featurizer = featurizer
        self._pos = _center_per_molecule(pos, counts)
        self._z = z
        self._h = featurizer.encode(z)
        self._ptr = ptr
        self._ptr_list: list[int] = ptr.tolist()  # Python ints: fastest slicing bounds
        self._smiles = list(smiles) if smiles is not None else None
        self._targets: torch.Tensor | None = None
        self._property_values: torch.Tensor | None = None
        self.conditions: dict[str, Any] | None = None
        """The :func:`~molgen.targets.conditions_info` the items' ``y`` is normalised with, or None."""

    def set_targets(
        self, values: torch.Tensor, names: Sequence[str], units: Sequence[str], conditions: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Serve per-molecule properties ``values`` ``[M, P]`` (physical units) as items' ``y`` ``[1, P]``,
        normalised with ``conditions`` (a training set's statistics, for a validation set) or, when None,
        with this set's own (a training set), which become :attr:`conditions`. Returns :attr:`conditions`."""
        if conditions is None:
            conditions = conditions_info(names, units, values, self.num_atoms)
        elif list(conditions["names"]) != list(names):
            raise ValueError(f"targets {list(names)} do not match the statistics of {conditions['names']}")
        self.conditions = conditions
        self._property_values = torch.as_tensor(values, dtype=torch.float64)
        self._targets = normalize(self._property_values, conditions).float()
        return conditions

    @staticmethod
    def from_lists(
        positions: Sequence[Any],
        atomic_numbers: Sequence[Any],
        *,
        featurizer: AtomFeaturizer = AtomFeaturizer(),
        smiles: Sequence[str] | None = None,
        remove_h: bool = False,
    ) -> MoleculeDataset:
        """Build a dataset from per-molecule arrays.

        Args:
            positions: M array-likes of shape [n_i, 3] (Å).
            atomic_numbers: M integer array-likes of shape [n_i].
            featurizer, smiles, remove_h: as in the constructor.
        """
        if len(positions) != len(atomic_numbers):
            raise ValueError(f"got {len(positions)} position arrays but {len(atomic_numbers)} atomic-number arrays")
        if len(positions) == 0:
            raise ValueError("cannot build a dataset from zero molecules")
        pos_list = [torch.as_tensor(np.asarray(p, dtype=np.float64)) for p in positions]
        z_list = [torch.as_tensor(np.asarray(a)) for a in atomic_numbers]
        for i, (p, a) in enumerate(zip(pos_list, z_list)):
            if p.dim() != 2 or p.shape[1] != 3 or a.dim() != 1 or len(a) != len(p):
                raise ValueError(
                    f"molecule {i}: positions must be [n, 3] and atomic numbers [n], got "
                    f"{tuple(p.shape)} and {tuple(a.shape)}"
                )
        ptr = torch.zeros(len(pos_list) + 1, dtype=torch.long)
        ptr[1:] = torch.tensor([len(p) for p in pos_list]).cumsum(0)
        return MoleculeDataset(
            torch.cat(pos_list),
            torch.cat(z_list),
            ptr,
            featurizer=featurizer,
            smiles=smiles,
            remove_h=remove_h,
        )

    def __len__(self) -> int:
        return len(self._ptr_list) - 1

    def __getitem__(self, idx: int) -> Data:
        """Molecule ``idx`` as ``Data(pos=[n, 3] Å, z=[n] long, h=[n, K+1], num_nodes=n)``, plus ``y`` [1, P]
        (normalised properties) when the set has targets (:meth:`set_targets`)."""
        i = int(idx)
        n_mol = len(self)
        if not -n_mol <= i < n_mol:
            raise IndexError(f"index {i} out of range for dataset of {n_mol} molecules")
        i %= n_mol
        a, b = self._ptr_list[i], self._ptr_list[i + 1]
        # Clone so in-place edits by transforms cannot corrupt the shared arrays.
        data = Data(
            pos=self._pos[a:b].clone(),
            z=self._z[a:b].clone(),
            h=self._h[a:b].clone(),
            num_nodes=b - a,
        )
        if self._targets is not None:
            data.y = self._targets[i : i + 1].clone()
        return data

    @property
    def num_atoms(self) -> torch.Tensor:
        """LongTensor [M]: number of atoms of each molecule."""
        return self._ptr.diff()

    def atomic_numbers(self) -> list[torch.Tensor]:
        """Each molecule's atomic numbers, ``[n]`` long views of the shared array (no items are built)."""
        return list(self._z.split(self._ptr.diff().tolist()))

    @property
    def property_values(self) -> torch.Tensor | None:
        """DoubleTensor [M, P]: the properties of :meth:`set_targets` in physical units, or None."""
        return self._property_values

    @property
    def smiles(self) -> list[str] | None:
        """SMILES of each molecule (None if the dataset was built without them)."""
        return self._smiles

    def num_atoms_histogram(self) -> torch.Tensor:
        """LongTensor [max_n + 1]: entry n counts the molecules with n atoms."""
        return torch.bincount(self.num_atoms)

    def info(self, dataset: str, **extra: Any) -> MoleculeInfo:
        """What a model trained on this (training) set keeps for sampling: the featurizer, the
        feature width, the histogram of atoms per molecule, the :attr:`conditions` of its targets,
        and ``extra`` fields of :class:`~molgen.dataset_info.MoleculeInfo`."""
        return MoleculeInfo(
            dataset=dataset,
            num_features=self.featurizer.num_features,
            size_histogram=self.num_atoms_histogram().tolist(),
            featurizer=self.featurizer.to_dict(),
            conditions=self.conditions,
            **extra,
        )


CHARGE_CLASSES: tuple[int, ...] = (-1, 0, 1)
"""Formal charges of bond models' ``charge`` channel, in class order."""
BOND_CLASSES: tuple[int, ...] = (0, 1, 2, 3)
"""Bond orders per atom pair, in class order: none, single, double, triple (Kekulé)."""


class BondedMoleculeDataset(MoleculeDataset):
    """Molecules with formal charges and Kekulé bonds: the training graphs of joint (bond) models.

    Items are ``Data`` with, besides ``pos``, ``z`` and ``h`` (as in
    :class:`MoleculeDataset`): ``node_classes`` [n, 2] long (atom-type class,
    charge class), ``pair_class_index`` [2, b] (bonded atom pairs, i < j; PyG
    offsets them when batching) and ``pair_class`` [b] long (bond order 1-3).

    Args:
        pos, z, ptr, featurizer, smiles: as in :class:`MoleculeDataset` (no hydrogen removal
            here: bonds index the atoms as given).
        charge: Integer tensor [A], formal charges in :data:`CHARGE_CLASSES`.
        bond_ptr: Integer tensor [M + 1], molecule offsets into the bond arrays.
        bond_atoms: Integer tensor [B, 2], atom indices within the molecule, i < j.
        bond_order: Integer tensor [B], orders 1-3.
    """

    def __init__(
        self,
        pos: torch.Tensor,
        z: torch.Tensor,
        ptr: torch.Tensor,
        charge: torch.Tensor,
        bond_ptr: torch.Tensor,
        bond_atoms: torch.Tensor,
        bond_order: torch.Tensor,
        *,
        featurizer: AtomFeaturizer = AtomFeaturizer(),
        smiles: Sequence[str] | None = None,
    ) -> None:
        super().__init__(pos, z, ptr, featurizer=featurizer, smiles=smiles)
        charge_class = torch.full((len(charge),), -1, dtype=torch.long)
        for k, value in enumerate(CHARGE_CLASSES):
            charge_class[charge.long() == value] = k
        if (charge_class < 0).any():
            raise ValueError(
                f"formal charges outside {list(CHARGE_CLASSES)}: {sorted(set(charge[charge_class < 0].tolist()))}"
            )
        if not ((bond_order >= 1) & (bond_order <= 3)).all():
            raise ValueError("bond orders must be 1, 2 or 3 (Kekulé)")
        self._node_classes = torch.stack([featurizer.type_indices(self._z), charge_class], dim=1)
        self._bond_ptr_list: list[int] = bond_ptr.long().tolist()
        self._bond_atoms = bond_atoms.long().T.contiguous()  # [2, B]
        self._bond_order = bond_order.long()

    def __getitem__(self, idx: int) -> Data:
        data = super().__getitem__(idx)
        i = int(idx) % len(self)
        a, b = self._ptr_list[i], self._ptr_list[i + 1]
        c, d = self._bond_ptr_list[i], self._bond_ptr_list[i + 1]
        data.node_classes = self._node_classes[a:b].clone()
        data.pair_class_index = self._bond_atoms[:, c:d].clone()
        data.pair_class = self._bond_order[c:d].clone()
        return data

    def marginals(self) -> dict[str, list[float]]:
        """Class frequencies of the channels over this dataset: ``atom_type``, ``charge``, ``bond`` (all pairs)."""
        atom = torch.bincount(self._node_classes[:, 0], minlength=len(self.featurizer.atom_types))
        charge = torch.bincount(self._node_classes[:, 1], minlength=len(CHARGE_CLASSES))
        n = self.num_atoms
        num_pairs = int((n * (n - 1) // 2).sum())
        bond = torch.bincount(self._bond_order, minlength=len(BOND_CLASSES))
        bond[0] = num_pairs - int(bond[1:].sum())

        def normalise(counts: torch.Tensor) -> list[float]:
            return (counts.double() / counts.sum()).tolist()

        return {"atom_type": normalise(atom), "charge": normalise(charge), "bond": normalise(bond)}

    def categorical_info(self) -> dict[str, Any]:
        """The ``categorical`` entry of :class:`~molgen.dataset_info.MoleculeInfo` with this set's marginals:
        node channels ``atom_type`` and ``charge``, pair channel ``bond``."""
        marginals = self.marginals()
        return {
            "node": [
                {"name": "atom_type", "classes": list(self.featurizer.atom_types), "marginals": marginals["atom_type"]},
                {"name": "charge", "classes": list(CHARGE_CLASSES), "marginals": marginals["charge"]},
            ],
            "edge": {"name": "bond", "classes": list(BOND_CLASSES), "marginals": marginals["bond"]},
        }


def _check_atom_arrays(
    pos: torch.Tensor, z: torch.Tensor, ptr: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate and normalise dtypes: pos float64 [A, 3], z long [A], ptr long [M + 1]."""
    pos, z, ptr = torch.as_tensor(pos), torch.as_tensor(z), torch.as_tensor(ptr)
    if pos.dim() != 2 or pos.shape[1] != 3 or not pos.is_floating_point():
        raise ValueError(f"pos must be a float tensor [A, 3], got {pos.dtype} {tuple(pos.shape)}")
    if z.dim() != 1 or len(z) != len(pos) or z.is_floating_point():
        raise ValueError(f"z must be an integer tensor [{len(pos)}], got {z.dtype} {tuple(z.shape)}")
    if ptr.dim() != 1 or len(ptr) < 2 or ptr.is_floating_point():
        raise ValueError(f"ptr must be an integer tensor [M + 1], got {ptr.dtype} {tuple(ptr.shape)}")
    ptr = ptr.long()
    if ptr[0] != 0 or ptr[-1] != len(pos) or (ptr.diff() < 0).any():
        raise ValueError(f"ptr must start at 0, be non-decreasing and end at the atom count {len(pos)}")
    finite = torch.isfinite(pos).all(dim=1)
    if not finite.all():
        atom = int(torch.nonzero(~finite)[0])
        mol = int(torch.searchsorted(ptr, atom, right=True)) - 1
        raise ValueError(f"non-finite (NaN/inf) coordinates in molecule {mol}")
    return pos.double(), z.long(), ptr


def _drop_hydrogens(
    pos: torch.Tensor, z: torch.Tensor, ptr: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Remove atoms with z == 1 and recompute the molecule offsets."""
    keep = z != 1
    kept_before = torch.zeros(len(z) + 1, dtype=torch.long)
    kept_before[1:] = keep.long().cumsum(0)
    return pos[keep], z[keep], kept_before[ptr]


def _center_per_molecule(pos: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Subtract each molecule's centroid (computed in float64); returns float32 [A, 3]."""
    return remove_mean(pos.double(), node_batch(counts), len(counts)).float()


def gather_rows(ptr: torch.Tensor, select: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``ptr[i]:ptr[i+1]`` of the selected items (LongTensor [S]), concatenated: ``(row indices, new ptr)``."""
    starts = ptr[select]
    counts = ptr[select + 1] - starts
    new_ptr = torch.zeros(len(select) + 1, dtype=torch.long)
    new_ptr[1:] = counts.cumsum(0)
    # Row j of the output comes from start-of-its-item + offset-within-item.
    offset = torch.arange(int(new_ptr[-1])) - torch.repeat_interleave(new_ptr[:-1], counts)
    return torch.repeat_interleave(starts, counts) + offset, new_ptr


def gather_bonded(
    pos: torch.Tensor,
    z: torch.Tensor,
    charge: torch.Tensor,
    ptr: torch.Tensor,
    bond_ptr: torch.Tensor,
    bond_atoms: torch.Tensor,
    bond_order: torch.Tensor,
    select: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """The molecules ``select`` (LongTensor [S]) of bonded-molecule arrays, in that order, as the positional
    arguments of :class:`BondedMoleculeDataset`: ``(pos, z, ptr, charge, bond_ptr, bond_atoms, bond_order)``."""
    new_pos, new_z, new_ptr = gather_molecules(pos, z, ptr, select)
    _, new_charge, _ = gather_molecules(pos, charge, ptr, select)
    rows, new_bond_ptr = gather_rows(bond_ptr, select)
    return new_pos, new_z, new_ptr, new_charge, new_bond_ptr, bond_atoms[rows], bond_order[rows]


def gather_molecules(
    pos: torch.Tensor, z: torch.Tensor, ptr: torch.Tensor, select: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Atom arrays and offsets of the molecules ``select`` (LongTensor [S]), in that order."""
    atoms, new_ptr = gather_rows(ptr, select)
    return pos[atoms], z[atoms], new_ptr

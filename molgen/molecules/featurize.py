"""Per-atom feature vectors for the diffusion model.

Atoms are encoded as in EDM (Hoogeboom et al., 2022): a one-hot vector over
the allowed element types scaled by ``one_hot_scale`` (1/4), followed by the
atomic number scaled by ``charge_scale`` (1/10). The scaling keeps the
categorical features on a smaller range than the coordinates (Å).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from rdkit import Chem

__all__ = ["AtomFeaturizer", "atomic_number", "element_symbol"]

_PERIODIC_TABLE = Chem.GetPeriodicTable()
_MAX_Z = 118
# Built once: RDKit's GetAtomicNumber prints a long C++ stack trace for unknown symbols.
_SYMBOL_TO_Z = {_PERIODIC_TABLE.GetElementSymbol(z): z for z in range(1, _MAX_Z + 1)}


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol such as ``"C"``; ValueError if unknown."""
    try:
        return _SYMBOL_TO_Z[symbol]
    except KeyError:
        raise ValueError(f"unknown element symbol {symbol!r}") from None


def element_symbol(z: int) -> str:
    """Element symbol of atomic number ``z`` (1..118); ValueError otherwise."""
    if not 1 <= int(z) <= _MAX_Z:
        raise ValueError(f"atomic number must be in 1..{_MAX_Z}, got {z}")
    return _PERIODIC_TABLE.GetElementSymbol(int(z))


@dataclass(frozen=True)
class AtomFeaturizer:
    """Maps atomic numbers to EDM-style node features and back.

    Attributes:
        atom_types: Element symbols, in one-hot order.
        one_hot_scale: Multiplier applied to the one-hot block.
        charge_scale: Multiplier applied to the atomic number (last column).
    """

    atom_types: tuple[str, ...] = ("H", "C", "N", "O", "F")
    one_hot_scale: float = 0.25
    charge_scale: float = 0.1

    def __post_init__(self) -> None:
        # Accept lists (e.g. from configs) but store a hashable tuple.
        object.__setattr__(self, "atom_types", tuple(self.atom_types))
        if not self.atom_types:
            raise ValueError("atom_types must not be empty")
        if len(set(self.atom_types)) != len(self.atom_types):
            raise ValueError(f"atom_types contains duplicates: {self.atom_types}")
        for symbol in self.atom_types:
            atomic_number(symbol)  # validates the symbol

    @property
    def num_features(self) -> int:
        """Feature width K + 1: one-hot over K types plus the scaled atomic number."""
        return len(self.atom_types) + 1

    @cached_property
    def atomic_numbers(self) -> tuple[int, ...]:
        """Atomic numbers of ``atom_types``, in one-hot order."""
        return tuple(atomic_number(s) for s in self.atom_types)

    @cached_property
    def _type_index(self) -> torch.Tensor:
        """LongTensor[_MAX_Z + 1]: one-hot column of each atomic number, -1 if not allowed."""
        table = torch.full((_MAX_Z + 1,), -1, dtype=torch.long)
        table[list(self.atomic_numbers)] = torch.arange(len(self.atom_types))
        return table

    def type_indices(self, z: torch.Tensor) -> torch.Tensor:
        """One-hot column index of each atom.

        Args:
            z: Integer tensor [N] of atomic numbers.

        Returns:
            LongTensor [N] with values in ``0..K-1``.

        Raises:
            ValueError: if ``z`` is not 1-D integer or contains elements outside ``atom_types``.
        """
        if z.dim() != 1 or z.is_floating_point() or z.is_complex():
            raise ValueError(
                f"atomic numbers must be a 1-D integer tensor, got shape {tuple(z.shape)} and dtype {z.dtype}"
            )
        z = z.long()
        in_range = (z >= 0) & (z <= _MAX_Z)
        idx = torch.full_like(z, -1)
        idx[in_range] = self._type_index.to(z.device)[z[in_range]]
        if (idx < 0).any():
            bad = sorted(set(z[idx < 0].tolist()))
            names = [element_symbol(v) if 1 <= v <= _MAX_Z else str(v) for v in bad]
            raise ValueError(f"unsupported element(s) {names}; allowed atom types are {list(self.atom_types)}")
        return idx

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Encode atomic numbers as node features.

        Args:
            z: Integer tensor [N] of atomic numbers.

        Returns:
            FloatTensor [N, K + 1]: ``[one_hot * one_hot_scale, z * charge_scale]``.

        Raises:
            ValueError: if ``z`` contains an element not in ``atom_types``.
        """
        idx = self.type_indices(z)
        one_hot = torch.nn.functional.one_hot(idx, len(self.atom_types)).float()
        charge = z.float().unsqueeze(-1) * self.charge_scale
        return torch.cat([one_hot * self.one_hot_scale, charge], dim=-1)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Recover atomic numbers from (possibly noisy) node features.

        Uses the argmax over the one-hot block; the atomic-number column is ignored.

        Args:
            h: Tensor [N, K + 1] of node features.

        Returns:
            LongTensor [N] of atomic numbers, on ``h``'s device.
        """
        if h.dim() != 2 or h.shape[1] != self.num_features:
            raise ValueError(f"features must have shape [N, {self.num_features}], got {tuple(h.shape)}")
        idx = h[:, : len(self.atom_types)].argmax(dim=-1)
        return torch.tensor(self.atomic_numbers, device=h.device)[idx]

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python representation (safe for ``torch.load(weights_only=True)``)."""
        return {
            "atom_types": list(self.atom_types),
            "one_hot_scale": float(self.one_hot_scale),
            "charge_scale": float(self.charge_scale),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AtomFeaturizer:
        """Inverse of :meth:`to_dict`; ValueError on missing or unexpected keys."""
        expected = {"atom_types", "one_hot_scale", "charge_scale"}
        if set(d) != expected:
            raise ValueError(f"featurizer dict must have keys {sorted(expected)}, got {sorted(d)}")
        return cls(
            atom_types=tuple(d["atom_types"]),
            one_hot_scale=float(d["one_hot_scale"]),
            charge_scale=float(d["charge_scale"]),
        )

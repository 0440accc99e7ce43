"""Full backbones (N, CA, C, O) from CA traces: the decoder of residue-level backbone models (issue 29).

A model that generates one node per residue, at its CA, leaves the N, C and O atoms to be
placed. Their positions relative to the CA trace are nearly determined by the trace's local
shape (the virtual bond angle at CA_i and the virtual torsions around it: helix, strand and
loop each have their own), which is how fragment-based rebuilders such as BBQ (Gront et al.
2007) work. Here:

- every residue gets a local frame from its CA and its sequence neighbours (interior: the
  chord CA_{i-1} -> CA_{i+1} and the bisector of the bend at CA_i; the first and last residues:
  the bond to the neighbour and the next bond), and a shape descriptor: the CA_{i-1}-CA_{i+1}
  distance and the sine and cosine of the two virtual torsions around CA_i, with flags for the
  termini and for a torsion that does not exist there (:func:`residue_frames`);
- a library of real residues holds each one's descriptor and its N, C, O in its own frame
  (:func:`fit_library`, shipped as ``ca_library.npz``, fitted on the training chains of db55 by
  ``scripts/fit_ca_library.py``);
- a trace is rebuilt by placing, for every residue, the mean local N, C, O of the ``k``
  library residues with the closest descriptors (:func:`backbone_from_ca`).

The rebuild is equivariant under rotations and translations of the trace (frames and
descriptors are built from it), not under reflections (proteins are chiral; the torsions'
signs carry the handedness). Bond lengths and angles come out as the library's averages, close
to ideal but not exact; `molgen sample --relax` makes them exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["LIBRARY_PATH", "CALibrary", "backbone_from_ca", "fit_library", "load_library", "residue_frames"]

LIBRARY_PATH = Path(__file__).with_name("ca_library.npz")
"""The shipped library (see the module docstring)."""

#: Weight of the terminal and missing-torsion flags in the descriptor: a terminus only matches a terminus.
_FLAG_WEIGHT = 10.0
#: Scale of the CA_{i-1}-CA_{i+1} distance in the descriptor (Å): 5.4 (helix) to 7.2 (strand) spans ~0.5.
_CHORD_SCALE = 3.8


@dataclass(frozen=True)
class CALibrary:
    """Residues to rebuild from: ``descriptors`` ``[K, 9]`` and ``local`` ``[K, 3, 3]`` (N, C, O in the
    residue's frame, Å)."""

    descriptors: np.ndarray
    local: np.ndarray


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp(min=1e-9)


def _frame(origin: torch.Tensor, x_dir: torch.Tensor, y_hint: torch.Tensor) -> torch.Tensor:
    """Rows x, y, z ``[L, 3, 3]`` of right-handed frames: x along ``x_dir``, y the part of ``y_hint``
    orthogonal to x."""
    x = _unit(x_dir)
    y = _unit(y_hint - (y_hint * x).sum(-1, keepdim=True) * x)
    return torch.stack([x, y, torch.linalg.cross(x, y)], dim=1)


def _torsion(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Dihedral angles (radians) of the points ``[M, 3]`` each."""
    b0, b1, b2 = a - b, c - b, d - c
    b1 = _unit(b1)
    v = b0 - (b0 * b1).sum(-1, keepdim=True) * b1
    w = b2 - (b2 * b1).sum(-1, keepdim=True) * b1
    return torch.atan2((torch.linalg.cross(b1, v) * w).sum(-1), (v * w).sum(-1))


def residue_frames(ca: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Local frames ``[L, 3, 3]`` (rows x, y, z) and descriptors ``[L, 9]`` of a CA trace ``[L, 3]`` (Å, L >= 4).

    Descriptor: ``[d(CA_{i-1}, CA_{i+1}) / 3.8, sin, cos of torsion(i-2, i-1, i, i+1), sin, cos of
    torsion(i-1, i, i+1, i+2), first, last, no first torsion, no second torsion]`` (flags scaled by 10;
    a missing neighbour's entries are 0; for the termini the chord is that to the residue two along).
    """
    ca = torch.as_tensor(ca, dtype=torch.float64)
    if ca.dim() != 2 or ca.shape[1] != 3 or ca.shape[0] < 4:
        raise ValueError(f"a CA trace must be [L, 3] with L >= 4, got {tuple(ca.shape)}")
    if not torch.isfinite(ca).all():
        raise ValueError("the CA trace has non-finite coordinates")
    n = ca.shape[0]
    prev, nxt = ca[:-2], ca[2:]
    middle = ca[1:-1]
    frames = torch.cat(
        [
            _frame(ca[:1], ca[1:2] - ca[:1], ca[2:3] - ca[1:2]),
            _frame(middle, nxt - prev, (prev - middle) + (nxt - middle)),
            _frame(ca[-1:], ca[-1:] - ca[-2:-1], ca[-3:-2] - ca[-2:-1]),
        ]
    )
    torsions = _torsion(ca[:-3], ca[1:-2], ca[2:-1], ca[3:])  # [L - 3]: around the bond i+1 -> i+2
    descriptors = torch.zeros(n, 9, dtype=torch.float64)
    chord = torch.linalg.vector_norm(ca[2:] - ca[:-2], dim=-1) / _CHORD_SCALE
    descriptors[1:-1, 0] = chord
    descriptors[0, 0], descriptors[-1, 0] = chord[0], chord[-1]
    # residue i's first torsion turns about the bond (i-1, i), torsions[i - 2]; its second about (i, i+1)
    first = torch.full((n,), float("nan"), dtype=torch.float64)
    second = torch.full((n,), float("nan"), dtype=torch.float64)
    first[2 : n - 1] = torsions[: n - 3]
    second[1 : n - 2] = torsions[: n - 3]
    for column, angle in ((1, first), (3, second)):
        present = ~torch.isnan(angle)
        descriptors[present, column] = torch.sin(angle[present])
        descriptors[present, column + 1] = torch.cos(angle[present])
    descriptors[0, 5] = descriptors[-1, 6] = _FLAG_WEIGHT
    descriptors[:, 7] = _FLAG_WEIGHT * torch.isnan(first)
    descriptors[:, 8] = _FLAG_WEIGHT * torch.isnan(second)
    return frames, descriptors


def fit_library(backbones: list[np.ndarray], max_residues: int | None = None, seed: int = 0) -> CALibrary:
    """The library of the residues of ``backbones`` (each ``[L, 4, 3]`` Å, atoms N, CA, C, O, L >= 4),
    a seeded random ``max_residues`` of them if given."""
    descriptors, local = [], []
    for coords in backbones:
        coords = torch.as_tensor(np.asarray(coords), dtype=torch.float64)
        frames, desc = residue_frames(coords[:, 1])
        offsets = coords[:, [0, 2, 3]] - coords[:, 1:2]  # N, C, O relative to CA
        local.append(torch.einsum("lad,lkd->lak", offsets, frames))
        descriptors.append(desc)
    descriptors, local = torch.cat(descriptors).numpy(), torch.cat(local).numpy()
    if max_residues is not None and len(descriptors) > max_residues:
        keep = np.sort(np.random.default_rng(seed).choice(len(descriptors), max_residues, replace=False))
        descriptors, local = descriptors[keep], local[keep]
    return CALibrary(descriptors.astype(np.float32), local.astype(np.float32))


def load_library(path: str | Path = LIBRARY_PATH) -> CALibrary:
    """A library saved with ``np.savez`` (keys ``descriptors``, ``local``; no pickled objects)."""
    with np.load(path, allow_pickle=False) as data:
        return CALibrary(data["descriptors"], data["local"])


def backbone_from_ca(ca: np.ndarray | torch.Tensor, library: CALibrary | None = None, k: int = 8) -> np.ndarray:
    """The backbone ``[L, 4, 3]`` (Å, float64; atoms N, CA, C, O) of a CA trace ``[L, 3]`` (Å, L >= 4):
    the CA atoms as given, N, C and O the mean of the ``k`` library residues of closest descriptor, placed in
    each residue's frame (module docstring). ``library`` defaults to the shipped one."""
    library = library or _shipped()
    frames, descriptors = residue_frames(ca)
    reference = torch.from_numpy(library.descriptors).double()
    nearest = torch.cdist(descriptors, reference).topk(min(k, len(reference)), largest=False).indices
    local = torch.from_numpy(library.local).double()[nearest].mean(dim=1)  # [L, 3, 3]
    ca = torch.as_tensor(ca, dtype=torch.float64)
    placed = ca[:, None] + torch.einsum("lak,lkd->lad", local, frames)
    return torch.stack([placed[:, 0], ca, placed[:, 1], placed[:, 2]], dim=1).numpy()


_SHIPPED: list[CALibrary] = []


def _shipped() -> CALibrary:
    """The shipped library, read once."""
    if not _SHIPPED:
        _SHIPPED.append(load_library())
    return _SHIPPED[0]

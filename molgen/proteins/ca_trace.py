"""Full backbones (N, CA, C, O) from CA traces: the decoder of residue-level backbone models (issue 29).

A model that generates one node per residue, at its CA, leaves the N, C and O atoms to be
placed. The peptide unit between two consecutive CA atoms (CA_i, C_i, O_i, N_{i+1}, CA_{i+1})
is rigid and planar, and its rotation about the CA_i -> CA_{i+1} axis is nearly determined by
the shape of the trace around it (helix, strand and loop each have their own), which is how
fragment-based rebuilders such as BBQ (Gront et al. 2007) work. Here:

- every peptide gets a local frame (origin CA_i, x along CA_i -> CA_{i+1}, y from the
  neighbouring CA atoms) and a descriptor of the trace around it: the CA_{i-1}-CA_{i+1} and
  CA_i-CA_{i+2} distances and the sine and cosine of the virtual torsion CA_{i-1..i+2}, with
  flags where a neighbour does not exist (:func:`peptide_frames`); the chain's first N and last
  C and O come from frames of the terminal residues (:func:`terminal_frames`);
- a library holds real peptides (and termini): each one's descriptor and its atoms in its own
  frame (:func:`fit_library`, shipped as ``ca_library.npz``, fitted on the training chains of db55
  by ``scripts/fit_ca_library.py``);
- a trace is rebuilt by placing, for every peptide, the atoms of one of the library peptides of
  closest descriptor, chosen jointly along the chain (:func:`backbone_from_ca`): a real peptide, so
  its bond lengths and angles are real ones, stretched along its CA-CA axis to the trace's CA-CA
  distance so that a trace's deviation from it is shared by three bonds, not left on one.

The only bond angle that spans two peptides is N-CA-C; every other bond length and angle is one
peptide's own. The rebuild is equivariant under rotations and translations of the trace, not under
reflections (proteins are chiral; the torsions' signs carry the handedness).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from molgen.proteins.geometry import VDW_RADII

__all__ = [
    "LIBRARY_PATH",
    "CALibrary",
    "backbone_from_ca",
    "fit_library",
    "load_library",
    "peptide_frames",
    "save_library",
    "terminal_frames",
]

LIBRARY_PATH = Path(__file__).with_name("ca_library.npz")
"""The shipped library (see the module docstring)."""

#: Weight of the missing-neighbour flags in the descriptors: an end peptide only matches an end peptide.
_FLAG_WEIGHT = 10.0
#: Å per unit of the distances in the descriptors.
_SCALE = 3.8
_PARTS = ("peptide", "first", "last")
#: Engh-Huber's N-CA-C angle (degrees) and the scale of its deviation in the choice of peptides.
IDEAL_N_CA_C = 111.0
ANGLE_SCALE = 10.0


@dataclass(frozen=True)
class CALibrary:
    """Entries to rebuild from, per part: ``peptide`` (C_i, O_i, N_{i+1}), ``first`` (the chain's first N),
    ``last`` (the chain's last C and O); each ``(descriptors [K, D], local [K, A, 3] Å in its frame)``."""

    peptide: tuple[np.ndarray, np.ndarray]
    first: tuple[np.ndarray, np.ndarray]
    last: tuple[np.ndarray, np.ndarray]


def _unit(v: Tensor) -> Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp(min=1e-9)


def _frame(x_dir: Tensor, y_hint: Tensor) -> Tensor:
    """Rows x, y, z ``[M, 3, 3]`` of right-handed frames: x along ``x_dir``, y the part of ``y_hint``
    orthogonal to x."""
    x = _unit(x_dir)
    y = _unit(y_hint - (y_hint * x).sum(-1, keepdim=True) * x)
    return torch.stack([x, y, torch.linalg.cross(x, y)], dim=1)


def _torsion(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    """Dihedral angles (radians) of the points ``[M, 3]`` each."""
    b1 = _unit(c - b)
    v = (a - b) - ((a - b) * b1).sum(-1, keepdim=True) * b1
    w = (d - c) - ((d - c) * b1).sum(-1, keepdim=True) * b1
    return torch.atan2((torch.linalg.cross(b1, v) * w).sum(-1), (v * w).sum(-1))


def _trace(ca: np.ndarray | Tensor) -> Tensor:
    ca = ca.double() if isinstance(ca, Tensor) else torch.tensor(np.asarray(ca, dtype=np.float64))  # own copy
    if ca.dim() != 2 or ca.shape[1] != 3 or ca.shape[0] < 4:
        raise ValueError(f"a CA trace must be [L, 3] with L >= 4, got {tuple(ca.shape)}")
    if not torch.isfinite(ca).all():
        raise ValueError("the CA trace has non-finite coordinates")
    return ca


def peptide_frames(ca: np.ndarray | Tensor) -> tuple[Tensor, Tensor]:
    """Frames ``[L-1, 3, 3]`` (rows x, y, z; origin CA_i) and descriptors ``[L-1, 7]`` of the peptides
    CA_i -> CA_{i+1} of a trace ``[L, 3]`` (Å, L >= 4).

    y comes from ``(CA_{i-1} - CA_i) - (CA_{i+2} - CA_{i+1})``, either term left out where its CA does
    not exist. Descriptor: ``[d(i-1, i+1), d(i, i+2), d(i, i+1)] / 3.8, sin, cos of torsion(i-1, i, i+1,
    i+2), no CA_{i-1}, no CA_{i+2}`` (flags scaled by 10; missing entries 0).
    """
    ca = _trace(ca)
    n = ca.shape[0]
    start, end = ca[:-1], ca[1:]
    before = torch.zeros_like(start)
    after = torch.zeros_like(start)
    before[1:] = ca[:-2] - ca[1:-1]  # CA_{i-1} - CA_i
    after[:-1] = ca[2:] - ca[1:-1]  # CA_{i+2} - CA_{i+1}
    frames = _frame(end - start, before - after)
    descriptors = torch.zeros(n - 1, 7, dtype=torch.float64)
    descriptors[1:, 0] = torch.linalg.vector_norm(ca[2:] - ca[:-2], dim=-1) / _SCALE
    descriptors[:-1, 1] = torch.linalg.vector_norm(ca[2:] - ca[:-2], dim=-1) / _SCALE
    descriptors[:, 2] = torch.linalg.vector_norm(end - start, dim=-1) / _SCALE
    torsion = _torsion(ca[:-3], ca[1:-2], ca[2:-1], ca[3:])  # peptides 1 .. L-3
    descriptors[1:-1, 3], descriptors[1:-1, 4] = torch.sin(torsion), torch.cos(torsion)
    descriptors[0, 5] = descriptors[-1, 6] = _FLAG_WEIGHT
    return frames, descriptors


def terminal_frames(ca: np.ndarray | Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Frames ``[1, 3, 3]`` and descriptors ``[1, 3]`` of the chain's first and last residue (origin at its CA):
    x towards the next (previous) CA, y towards the one after (before); descriptor ``[d(0, 2) / 3.8, sin,
    cos of torsion(0, 1, 2, 3)]`` (mirrored for the last). Returns ``(first frame, first descriptor, last
    frame, last descriptor)``."""
    ca = _trace(ca)

    def at(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        frame = _frame((b - a)[None], (c - b)[None])
        torsion = _torsion(a[None], b[None], c[None], d[None])
        chord = torch.linalg.vector_norm(c - a)[None] / _SCALE
        return frame, torch.stack([chord, torch.sin(torsion), torch.cos(torsion)], dim=1)

    return (*at(ca[0], ca[1], ca[2], ca[3]), *at(ca[-1], ca[-2], ca[-3], ca[-4]))


def _local(atoms: Tensor, origin: Tensor, frames: Tensor) -> Tensor:
    """``atoms`` ``[M, A, 3]`` in the frames ``[M, 3, 3]`` with origins ``[M, 3]``."""
    return torch.einsum("mad,mkd->mak", atoms - origin[:, None], frames)


def fit_library(backbones: list[np.ndarray], max_peptides: int | None = None, seed: int = 0) -> CALibrary:
    """The library of ``backbones`` (each ``[L, 4, 3]`` Å, atoms N, CA, C, O, L >= 4): every peptide (a seeded
    random ``max_peptides`` of them if given) and every chain's termini."""
    parts: dict[str, tuple[list, list]] = {part: ([], []) for part in _PARTS}
    for coords in backbones:
        x = torch.as_tensor(np.asarray(coords), dtype=torch.float64)
        n_atoms, ca, c_atoms, o_atoms = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
        frames, descriptors = peptide_frames(ca)
        atoms = torch.stack([c_atoms[:-1], o_atoms[:-1], n_atoms[1:]], dim=1)
        parts["peptide"][0].append(descriptors)
        parts["peptide"][1].append(_local(atoms, ca[:-1], frames))
        first_frame, first_desc, last_frame, last_desc = terminal_frames(ca)
        parts["first"][0].append(first_desc)
        parts["first"][1].append(_local(n_atoms[:1, None], ca[:1], first_frame))
        parts["last"][0].append(last_desc)
        parts["last"][1].append(_local(torch.stack([c_atoms[-1:], o_atoms[-1:]], dim=1), ca[-1:], last_frame))
    arrays = {part: (torch.cat(d).float().numpy(), torch.cat(a).float().numpy()) for part, (d, a) in parts.items()}
    descriptors, local = arrays["peptide"]
    if max_peptides is not None and len(descriptors) > max_peptides:
        keep = np.sort(np.random.default_rng(seed).choice(len(descriptors), max_peptides, replace=False))
        arrays["peptide"] = (descriptors[keep], local[keep])
    return CALibrary(**arrays)


def save_library(library: CALibrary, path: str | Path) -> None:
    """Write ``library`` as a compressed ``.npz`` of plain arrays (``<part>_descriptors``, ``<part>_local``)."""
    arrays = {
        f"{part}_{key}": value
        for part in _PARTS
        for key, value in zip(("descriptors", "local"), getattr(library, part))
    }
    np.savez_compressed(path, **arrays)


def load_library(path: str | Path = LIBRARY_PATH) -> CALibrary:
    """A library written by :func:`save_library` (no pickled objects are read)."""
    with np.load(path, allow_pickle=False) as data:
        return CALibrary(**{part: (data[f"{part}_descriptors"], data[f"{part}_local"]) for part in _PARTS})


def _nearest(part: tuple[np.ndarray, np.ndarray], descriptors: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Squared descriptor distances ``[M, k]``, local atoms ``[M, k, A, 3]`` and descriptors ``[M, k, D]`` of the
    ``k`` closest entries."""
    reference, local = (torch.from_numpy(array).double() for array in part)
    distances, nearest = torch.cdist(descriptors, reference).topk(min(k, len(reference)), largest=False)
    return distances.square(), local[nearest], reference[nearest]


def _stretched(local: Tensor, entry_descriptors: Tensor, descriptors: Tensor) -> Tensor:
    """Library peptides ``[M, k, 3, 3]`` stretched along their CA_i -> CA_{i+1} axis (x) to the trace's
    CA-CA distance: an entry's next N sits at its own CA-CA distance, so placed unchanged, all of the
    difference (a generated trace's CA-CA spread) would fall on the N-CA_{i+1} bond; stretched, it is
    shared by the three bonds of the path CA_i-C_i-N_{i+1}-CA_{i+1} in proportion to their extent along x."""
    scale = descriptors[:, None, 2] / entry_descriptors[..., 2]
    stretched = local.clone()
    stretched[..., 0] = local[..., 0] * scale[..., None]
    return stretched


def _place(local: Tensor, origin: Tensor, frames: Tensor) -> Tensor:
    """Local atoms ``[M, ..., A, 3]`` placed in ``frames`` ``[M, 3, 3]`` at ``origin`` ``[M, 3]``."""
    return origin.reshape(len(origin), *([1] * (local.dim() - 2)), 3) + torch.einsum("m...k,mkd->m...d", local, frames)


def _n_ca_c_cost(n_atoms: Tensor, ca: Tensor, c_atoms: Tensor) -> Tensor:
    """``((angle N-CA-C - 111 deg) / 10 deg)^2`` for every pair of candidates: N ``[M, k, 3]`` (of peptide i-1)
    and C ``[M, k, 3]`` (of peptide i) around ``ca`` ``[M, 3]``: ``[M, k, k]``."""
    to_n, to_c = _unit(n_atoms - ca[:, None]), _unit(c_atoms - ca[:, None])
    cosine = torch.einsum("mad,mbd->mab", to_n, to_c).clamp(-1.0, 1.0)
    return ((torch.rad2deg(torch.arccos(cosine)) - IDEAL_N_CA_C) / ANGLE_SCALE).square()


def _choose(unary: Tensor, pairwise: Tensor) -> Tensor:
    """The candidate of each peptide ``[P]`` minimising the sum of ``unary`` ``[P, k]`` and ``pairwise``
    ``[P - 1, k, k]`` (candidate of peptide i-1, candidate of peptide i) along the chain (Viterbi)."""
    cost, back = unary[0], []
    for i in range(1, unary.shape[0]):
        total = cost[:, None] + pairwise[i - 1]  # [k_prev, k]
        cost, arg = total.min(dim=0)
        cost = cost + unary[i]
        back.append(arg)
    choice = [int(cost.argmin())]
    for arg in reversed(back):
        choice.append(int(arg[choice[-1]]))
    return torch.tensor(choice[::-1])


def _assemble(ca: Tensor, peptides: Tensor, first: Tensor, last: Tensor) -> np.ndarray:
    """``[L, 4, 3]`` from the CA atoms ``[L, 3]``, every peptide's C, O and next N ``[L-1, 3, 3]``, the first N
    ``[3]`` and the last C and O ``[2, 3]``."""
    backbone = torch.empty(ca.shape[0], 4, 3, dtype=torch.float64)
    backbone[:, 1] = ca
    backbone[0, 0], backbone[1:, 0] = first, peptides[:, 2]
    backbone[:-1, 2], backbone[:-1, 3] = peptides[:, 0], peptides[:, 1]
    backbone[-1, 2], backbone[-1, 3] = last[0], last[1]
    return backbone.numpy()


def backbone_from_ca(
    ca: np.ndarray | Tensor,
    library: CALibrary | None = None,
    k: int = 8,
    clash_rounds: int = 3,
    clash_candidates: int = 32,
) -> np.ndarray:
    """The backbone ``[L, 4, 3]`` (Å, float64; atoms N, CA, C, O) of a CA trace ``[L, 3]`` (Å, L >= 4).

    The CA atoms are kept as given. Every peptide's C, O and next N come from one of its ``k`` library peptides
    of closest descriptor (module docstring), stretched to the trace's CA-CA distance, chosen jointly along the
    chain (dynamic programming) to minimise the sum of the squared descriptor distances and of ``((N-CA-C -
    111°) / 10°)^2`` at every residue, the one angle two peptides share; the first N and the last C and O come
    from the nearest terminal entries. Then, for up to ``clash_rounds`` rounds, each peptide next to a steric
    clash of ``molgen evaluate``'s check takes the candidate, among its ``max(k, clash_candidates)`` nearest
    entries, that leaves the fewest clashing atom pairs (ties: the lowest cost). ``k = 1`` takes every peptide's
    nearest entry. ``library`` defaults to the shipped one."""
    from molgen.proteins.metrics import Tolerances, find_clashes

    library = library or _shipped()
    ca = _trace(ca)
    frames, descriptors = peptide_frames(ca)
    # The k nearest entries (sorted by distance) for the chain's choice, more for the clash rounds.
    distances, local, entries = _nearest(library.peptide, descriptors, max(k, clash_candidates))
    candidates = _place(_stretched(local, entries, descriptors), ca[:-1], frames)  # [L-1, K, 3 (C, O, next N), 3]
    pairwise = _n_ca_c_cost(candidates[:-1, :, 2], ca[1:-1], candidates[1:, :, 0])
    choice = _choose(distances[:, :k], pairwise[:, :k, :k])
    first_frame, first_desc, last_frame, last_desc = terminal_frames(ca)
    first = _place(_nearest(library.first, first_desc, 1)[1][:, 0], ca[:1], first_frame)[0, 0]
    last = _place(_nearest(library.last, last_desc, 1)[1][:, 0], ca[-1:], last_frame)[0]
    peptides = torch.arange(len(candidates))

    def build(picked: Tensor) -> np.ndarray:
        return _assemble(ca, candidates[peptides, picked], first, last)

    def cost(picked: Tensor, p: int) -> float:
        """The joint cost terms that involve peptide ``p``."""
        total = float(distances[p, picked[p]])
        if p > 0:
            total += float(pairwise[p - 1, picked[p - 1], picked[p]])
        if p < len(picked) - 1:
            total += float(pairwise[p, picked[p], picked[p + 1]])
        return total

    tolerances = Tolerances()
    backbone = build(choice)
    for _ in range(clash_rounds):
        clashing, _, _ = find_clashes(backbone, tolerances)
        if not clashing.any():
            break
        residues = np.flatnonzero(clashing)
        for p in sorted({int(q) for r in residues for q in (r - 1, r) if 0 <= q < len(choice)}):
            # Only the pairs that involve peptide p's atoms differ between its candidates.
            counts = _peptide_clashes(backbone, p, candidates[p], tolerances)
            trials = []
            for c in range(candidates.shape[1]):
                picked = choice.clone()
                picked[p] = c
                trials.append((int(counts[c]), cost(picked, p), c))
            choice[p] = min(trials)[2]
            backbone = build(choice)
    return backbone


def _peptide_clashes(backbone: np.ndarray, p: int, options: Tensor, tolerances) -> Tensor:
    """For each candidate ``options`` ``[k, 3 (C_p, O_p, N_{p+1}), 3]`` of peptide ``p`` of ``backbone``
    ``[L, 4, 3]``, the clashing atom pairs of :func:`~molgen.proteins.metrics.find_clashes` (residues
    ``|i - j| >= 2``, cutoff ``atom_clash_scale`` times the sum of the radii) that involve the candidate's
    atoms: ``[k]``. Every other pair is the same for all candidates, so the candidate with the fewest has the
    fewest in the whole chain; O(k L) instead of a whole-chain count per candidate."""
    coords = torch.from_numpy(np.ascontiguousarray(backbone))
    radii = torch.as_tensor(VDW_RADII, dtype=coords.dtype)
    residues = torch.arange(len(coords))
    counts = torch.zeros(options.shape[0], dtype=torch.long)
    for slot, (owner, kind) in enumerate(((p, 2), (p, 3), (p + 1, 0))):  # C_p, O_p, N_{p+1}
        others = coords[(residues - owner).abs() >= 2]  # [M, 4, 3]
        cutoff = tolerances.atom_clash_scale * (radii[kind] + radii)  # [4]
        distances = torch.linalg.vector_norm(options[:, slot, None, None] - others[None], dim=-1)  # [k, M, 4]
        counts += (distances < cutoff).sum(dim=(1, 2))
    return counts


_SHIPPED: list[CALibrary] = []


def _shipped() -> CALibrary:
    """The shipped library, read once."""
    if not _SHIPPED:
        _SHIPPED.append(load_library())
    return _SHIPPED[0]

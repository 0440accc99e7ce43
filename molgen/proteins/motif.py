"""Motifs for backbone inpainting: residues of a structure to keep in a new chain (motif scaffolding).

A motif is one or more contiguous segments of residues (``A12-26,A40-48``: chain A,
residue numbers 12 to 26 and 40 to 48), read with their N, CA, C, O atoms. In a new
chain of ``L`` residues the segments keep their order and the rest of the chain is
generated; :func:`place_motif` chooses where each segment starts in each chain of a
request (given 1-based starts, or drawn at random) and returns a :class:`MotifPlacement`.

Segments stay where the motif file has them relative to each other, so the residues
generated between two of them must span the gap: ``g`` residues bridge at most
``(g + 1) * 3.8`` Å between the CA atoms on either side (a trans peptide's CA-CA distance,
fully extended). Placements that leave fewer are never drawn and refused when given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molgen.proteins.pdb import read_backbones

__all__ = ["Motif", "MotifPlacement", "minimum_gaps", "motif_starts", "parse_starts", "place_motif", "read_motif"]

#: Å: the most one residue step can span between CA atoms (the trans peptide CA-CA distance).
CA_STEP = 3.8

_SEGMENT = re.compile(r"\s*([A-Za-z0-9])(-?\d+)\s*-\s*(-?\d+)\s*")


@dataclass(frozen=True)
class Motif:
    """Segments ``[n_i, 4, 3]`` (Å, atoms N, CA, C, O), their labels (``A12-26``), and optional
    1-based start residues in the new chain (None: drawn per chain, see :func:`motif_starts`)."""

    segments: tuple[np.ndarray, ...]
    labels: tuple[str, ...]
    starts: tuple[int, ...] | None = None

    @property
    def num_residues(self) -> int:
        return sum(len(s) for s in self.segments)


def read_motif(path: str | Path, spec: str, starts: tuple[int, ...] | None = None) -> Motif:
    """The residues ``spec`` (comma-separated ``<chain><first>-<last>``) of the structure file ``path``.

    Raises:
        ValueError: a malformed spec, a chain or residue missing from the file (named), or starts
            that do not match the segments.
    """
    path = Path(path)
    chains, _ = read_backbones(path)
    by_chain = {chain.name.rsplit(":", 1)[-1]: chain for chain in chains}
    segments, labels = [], []
    for part in spec.split(","):
        match = _SEGMENT.fullmatch(part)
        if match is None:
            raise ValueError(f"motif residues must be like A12-26,A40-48; got {part.strip()!r}")
        chain_id, first, last = match.group(1), int(match.group(2)), int(match.group(3))
        if first > last:
            raise ValueError(f"motif segment {part.strip()}: the first residue comes after the last")
        chain = by_chain.get(chain_id)
        if chain is None:
            raise ValueError(
                f"{path} has no chain {chain_id} with complete backbone residues (it has {sorted(by_chain)})"
            )
        index = {rid: i for i, rid in enumerate(chain.residue_ids)}
        missing = [f"{chain_id}{n}" for n in range(first, last + 1) if str(n) not in index]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise ValueError(f"motif residues missing from {path} (or lacking N, CA, C or O): {shown}")
        segments.append(np.asarray(chain.coords[[index[str(n)] for n in range(first, last + 1)]], dtype=np.float64))
        labels.append(f"{chain_id}{first}-{last}")
    if starts is not None and len(starts) != len(segments):
        raise ValueError(f"--motif-positions gives {len(starts)} starts for {len(segments)} motif segments")
    return Motif(tuple(segments), tuple(labels), starts)


def parse_starts(text: str) -> tuple[int, ...]:
    """``"5,40"`` -> ``(5, 40)``: 1-based start residues of the motif segments in the new chain."""
    try:
        starts = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--motif-positions must be comma-separated residue numbers, got {text!r}") from None
    if any(s < 1 for s in starts):
        raise ValueError(f"--motif-positions are 1-based residue numbers, got {text!r}")
    return starts


def minimum_gaps(motif: Motif) -> list[int]:
    """The fewest generated residues between consecutive segments that can span the distance
    between the last CA of one and the first CA of the next (``(g + 1) * CA_STEP`` Å for ``g``)."""
    return [max(math.ceil(_ca_gap(motif, i) / CA_STEP - 1e-9) - 1, 0) for i in range(len(motif.segments) - 1)]


def motif_starts(motif: Motif, length: int, rng: np.random.Generator) -> list[int]:
    """0-based first residue of each segment in a chain of ``length`` residues, in order, without
    overlap and with at least :func:`minimum_gaps` residues between segments: the motif's given
    starts, or a placement drawn uniformly from all such placements with ``rng``.

    Raises:
        ValueError: the chain is too short, or the given starts overlap, leave a gap too short to
            span, or run past its end.
    """
    sizes = [len(s) for s in motif.segments]
    inner = minimum_gaps(motif)
    if motif.starts is not None:
        starts = [s - 1 for s in motif.starts]
        ends = [s + n for s, n in zip(starts, sizes)]
        if any(e > b for e, b in zip(ends[:-1], starts[1:])) or ends[-1] > length:
            raise ValueError(f"--motif-positions {motif.starts} overlap or pass the end of a {length}-residue chain")
        for i, (end, start, gap) in enumerate(zip(ends[:-1], starts[1:], inner)):
            if start - end < gap:
                raise ValueError(
                    f"--motif-positions leave {start - end} residues between {motif.labels[i]} and "
                    f"{motif.labels[i + 1]}, too few to span their {_ca_gap(motif, i):.1f} A (at least {gap})"
                )
        return starts
    spare = length - sum(sizes) - sum(inner)
    if spare < 0:
        needed = sum(sizes) + sum(inner)
        raise ValueError(
            f"a chain of {length} residues cannot hold the motif's {sum(sizes)}"
            + (f" and the {sum(inner)} needed to join its segments ({needed} in all)" if sum(inner) else "")
        )
    # Stars and bars: the segments are k of spare + k slots in order; a uniform k-subset of the
    # slots is a uniform split of the spare residues into the k + 1 gaps.
    slots = np.sort(rng.choice(spare + len(sizes), size=len(sizes), replace=False))
    # segment i follows slots[i] - i spare residues, the segments before it and their joins
    before = np.cumsum([0] + [size + gap for size, gap in zip(sizes[:-1], inner)])
    return [int(slot - i + taken) for i, (slot, taken) in enumerate(zip(slots, before))]


def _ca_gap(motif: Motif, i: int) -> float:
    """Å between the last CA of segment ``i`` and the first CA of segment ``i + 1``."""
    return float(np.linalg.norm(motif.segments[i + 1][0, 1] - motif.segments[i][-1, 1]))


@dataclass(frozen=True)
class MotifPlacement:
    """A motif placed in each chain of a request: ``starts[i]`` are the 0-based first residues of
    its segments in chain ``i`` of ``lengths[i]`` residues."""

    motif: Motif
    lengths: tuple[int, ...]
    starts: tuple[tuple[int, ...], ...]

    def segments(self, index: int) -> list[tuple[int, np.ndarray]]:
        """``(start, segment [n, 4, 3])`` of each segment in chain ``index``."""
        return list(zip(self.starts[index], self.motif.segments))

    def mask(self, index: int) -> np.ndarray:
        """``[L]`` bool: the motif's residues in chain ``index``."""
        mask = np.zeros(self.lengths[index], dtype=bool)
        for start, segment in self.segments(index):
            mask[start : start + len(segment)] = True
        return mask

    def restore(self, index: int, backbone: np.ndarray) -> np.ndarray:
        """A copy of chain ``index``'s backbone ``[L, 4, 3]`` (Å) with the motif's own atoms on its
        residues. Residue-level models generate only the motif's CA atoms and rebuild N, C and O from
        the trace (:mod:`molgen.proteins.ca_trace`), which would move the motif's by the rebuild's
        error (0.2–0.7 Å RMSD)."""
        restored = np.array(backbone, dtype=np.float64)
        for start, segment in self.segments(index):
            restored[start : start + len(segment)] = segment
        return restored

    def describe(self, index: int) -> str:
        """Where chain ``index`` holds each segment, 1-based: ``A3-8 at 6-11, A12-15 at 17-20``."""
        return ", ".join(
            f"{label} at {start + 1}-{start + len(segment)}"
            for label, (start, segment) in zip(self.motif.labels, self.segments(index))
        )


def place_motif(motif: Motif, lengths: Sequence[int], seed: int) -> MotifPlacement:
    """The motif placed in chains of ``lengths`` residues (:func:`motif_starts`); the draws come
    from ``seed`` in chain order, so a seed fixes every placement of a request.

    Raises:
        ValueError: see :func:`motif_starts`.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6D6F74]))  # its own stream: "mot"
    lengths = tuple(int(n) for n in lengths)
    return MotifPlacement(motif, lengths, tuple(tuple(motif_starts(motif, n, rng)) for n in lengths))

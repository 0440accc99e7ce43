"""Motifs for backbone inpainting: residues of a structure to keep in a new chain (motif scaffolding).

A motif is one or more contiguous segments of residues (``A12-26,A40-48``: chain A,
residue numbers 12 to 26 and 40 to 48), read with their N, CA, C, O atoms. In a new
chain of ``L`` residues the segments keep their order; :func:`motif_starts` places
them (given 1-based starts, or spread evenly) and the rest of the chain is generated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molgen.proteins.pdb import read_backbones

__all__ = ["Motif", "motif_starts", "parse_starts", "read_motif"]

_SEGMENT = re.compile(r"\s*([A-Za-z0-9])(-?\d+)\s*-\s*(-?\d+)\s*")


@dataclass(frozen=True)
class Motif:
    """Segments ``[n_i, 4, 3]`` (Å, atoms N, CA, C, O), their labels (``A12-26``), and optional
    1-based start residues in the new chain (None: spread evenly, see :func:`motif_starts`)."""

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


def motif_starts(motif: Motif, length: int) -> list[int]:
    """0-based first residue of each segment in a chain of ``length`` residues, in order, without overlap:
    the given starts, or the free residues spread evenly before, between and after the segments.

    Raises:
        ValueError: the chain is too short, or the given starts overlap or run past its end.
    """
    sizes = [len(s) for s in motif.segments]
    free = length - sum(sizes)
    if free < 0:
        raise ValueError(f"a chain of {length} residues cannot hold the motif's {sum(sizes)}")
    if motif.starts is not None:
        starts = [s - 1 for s in motif.starts]
        ends = [s + n for s, n in zip(starts, sizes)]
        if any(e > b for e, b in zip(ends[:-1], starts[1:])) or ends[-1] > length:
            raise ValueError(f"--motif-positions {motif.starts} overlap or pass the end of a {length}-residue chain")
        return starts
    gaps = [free // (len(sizes) + 1) + (1 if i < free % (len(sizes) + 1) else 0) for i in range(len(sizes) + 1)]
    starts, position = [], 0
    for gap, size in zip(gaps, sizes):
        position += gap
        starts.append(position)
        position += size
    return starts

"""Per-residue secondary-structure labels that a backbone model can be conditioned on (fold conditioning).

A designer asks for a topology — "a helix of 14, a loop, a helix of 14" — rather than for a whole
structure; RFdiffusion and Chroma take it as per-residue secondary structure. Here a label is one of
the three DSSP states the evaluation counts (:func:`molgen.proteins.metrics.dssp`): helix ``H``,
strand ``E``, coil ``-``; or unknown (``?``), which leaves the residue free.

The network sees a label as a one-hot ``[L, 3]`` (:func:`label_features`); an unknown residue is all
zeros, so a model given no labels is exactly the model without them (the map that reads them has no
bias, :class:`molgen.models.egnn_denoiser.EGNNDenoiser`). Training labels are the DSSP states of the
real chains, hidden for a random fraction of the chains (``data.label_dropout``) so that the same model
samples with labels, with some of them, or with none.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from molgen.dataset_info import SECONDARY_STRUCTURE_STATES

__all__ = [
    "LABELS",
    "NUM_LABELS",
    "UNKNOWN",
    "dssp_labels",
    "format_labels",
    "is_label_string",
    "label_agreement",
    "label_features",
    "label_remarks",
    "parse_labels",
    "requested_labels",
]

#: The label alphabet, in the order of the one-hot channels: helix, strand, coil.
LABELS = SECONDARY_STRUCTURE_STATES
NUM_LABELS = len(LABELS)
#: The index of a residue whose label is not given.
UNKNOWN = -1
#: Samples of one ``--secondary-structure`` string when ``--num-samples`` is not given (as `molgen sample`).
DEFAULT_SAMPLES = 100
#: Characters accepted for each label when parsing (DSSP's 8 states fold onto the 3 as in the evaluation).
_ALIASES = {"H": 0, "E": 1, "-": 2, "L": 2, "C": 2, "?": UNKNOWN, ".": UNKNOWN}


def parse_labels(text: str) -> np.ndarray:
    """Labels ``[L]`` int64 (0 helix, 1 strand, 2 coil, :data:`UNKNOWN`) of a string such as ``"HHHH--EEEE"``.

    Accepts ``H``, ``E``, ``-`` (or ``L``, ``C``) and ``?`` (or ``.``) for unknown, case-insensitive.

    Raises:
        ValueError: an empty string or another character (its position named).
    """
    text = text.strip()
    if not text:
        raise ValueError("a secondary-structure string must not be empty")
    labels = np.empty(len(text), dtype=np.int64)
    for i, char in enumerate(text.upper()):
        if char not in _ALIASES:
            raise ValueError(
                f"secondary structure {text[:20]!r}{'...' if len(text) > 20 else ''}: character {char!r} at "
                f"position {i + 1} is not one of H (helix), E (strand), - (coil, also L or C), ? (free)"
            )
        labels[i] = _ALIASES[char]
    return labels


def is_label_string(text: str) -> bool:
    """Whether ``text`` is made of label characters only (what :func:`parse_labels` accepts)."""
    return bool(text) and all(char in _ALIASES for char in text.upper())


def format_labels(labels: np.ndarray) -> str:
    """The string of labels ``[L]`` (``?`` for unknown): the inverse of :func:`parse_labels`."""
    return "".join("?" if k == UNKNOWN else LABELS[k] for k in np.asarray(labels).tolist())


def label_features(labels: Tensor | np.ndarray) -> Tensor:
    """One-hot ``[L, 3]`` float32 of labels ``[L]``; an unknown residue is a row of zeros."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    features = torch.zeros(len(labels), NUM_LABELS)
    given = labels != UNKNOWN
    features[given, labels[given]] = 1.0
    return features


def dssp_labels(coords: np.ndarray) -> np.ndarray:
    """Labels ``[L]`` of a ``[L, 4, 3]`` backbone (N, CA, C, O; Å) from its three-state DSSP."""
    from molgen.proteins.metrics import dssp

    return parse_labels(dssp(coords))


def requested_labels(
    text: str | None, path: str | os.PathLike | None, num_samples: int | None
) -> tuple[list[np.ndarray] | None, int | None]:
    """The labels of `molgen sample`'s ``--secondary-structure STRING`` (every sample) or
    ``--secondary-structure-file FILE`` (one string per line and per sample; blank lines and lines
    starting with ``#`` skipped), and the number of samples (the file's strings unless ``num_samples``
    is given, which must then match).

    Returns ``(None, num_samples)`` without either option.

    Raises:
        ValueError: both options, an unreadable or empty file, a malformed string (line named), or a
            file whose string count is not ``num_samples``.
    """
    if text is not None and path is not None:
        raise ValueError("give --secondary-structure or --secondary-structure-file, not both")
    if text is not None:
        labels = parse_labels(text)
        count = num_samples or DEFAULT_SAMPLES
        return [labels.copy() for _ in range(count)], count
    if path is None:
        return None, num_samples
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read --secondary-structure-file {path}: {err}") from None
    labels = []
    for number, line in enumerate(lines, start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                labels.append(parse_labels(line))
            except ValueError as err:
                raise ValueError(f"{path}, line {number}: {err}") from None
    if not labels:
        raise ValueError(f"--secondary-structure-file {path} holds no secondary-structure string")
    if num_samples is not None and num_samples != len(labels):
        raise ValueError(f"--num-samples {num_samples} but {path} has {len(labels)} secondary-structure strings")
    return labels, len(labels)


def label_agreement(backbones: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    """How generated backbones ``[L, 4, 3]`` follow their requested labels ``[L]``: ``match``, the fraction
    of labelled residues whose DSSP state is the requested one, and per state the fraction of residues asked
    for it that have it (``helix_match``, ``strand_match``, ``coil_match``; NaN where none was asked).
    Chains with non-finite coordinates are skipped."""
    asked, got = [], []
    for coords, chain in zip(backbones, labels):
        if np.isfinite(coords).all():
            asked.append(np.asarray(chain))
            got.append(dssp_labels(coords))
    asked_all = np.concatenate(asked) if asked else np.zeros(0, dtype=np.int64)
    got_all = np.concatenate(got) if got else np.zeros(0, dtype=np.int64)
    given = asked_all != UNKNOWN
    report = {"match": float(np.mean(asked_all[given] == got_all[given])) if given.any() else float("nan")}
    for index, name in enumerate(("helix", "strand", "coil")):
        wanted = asked_all == index
        report[f"{name}_match"] = float(np.mean(got_all[wanted] == index)) if wanted.any() else float("nan")
    return report


def label_remarks(labels: np.ndarray, width: int = 30) -> list[str]:
    """PDB ``REMARK 99`` texts of the requested labels, ``width`` residues a line (each fits 69 characters)."""
    text = format_labels(labels)
    return [
        f"secondary structure {start + 1}-{min(start + width, len(text))} {text[start : start + width]}"
        for start in range(0, len(text), width)
    ]

"""Property targets of conditioned models: training statistics, normalisation, checks, sizes given targets.

A model conditioned on graph-level properties (QM9's polarisability, HOMO-LUMO
gap, ...; issue 26) keeps a ``conditions`` dict in its
:class:`~molgen.dataset_info.DatasetInfo`, made by :func:`conditions_info` from
its training set:

    names, units       the properties, in the order of the network's condition vector
    mean, std          training statistics: the network sees ``(value - mean) / std``
    min, max           the training range: targets outside it are refused
    size_bins          per property, quantile bin ``edges`` [K + 1] and ``counts`` [K][n_max + 1]
                       (training molecules of each size in each bin), for p(N | c)

A request is a list of target rows, ``{name: value}`` in physical units, one per
sample; a row may name any subset of the model's properties (the others are
dropped, as in training) or none (unconditional). :func:`target_tensors` checks
and normalises them; :func:`sample_sizes_given_targets` draws each sample's size
from p(N | c): for one property the training frequency of each size among the
molecules in the target's bin, for several the product of those per property
with p(N) (a naive-Bayes estimate, exact for one property), as EDM draws sizes
from the training pairs.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "SIZE_BINS",
    "conditions_info",
    "denormalize",
    "describe_conditions",
    "normalize",
    "parse_target",
    "read_target_file",
    "requested_targets",
    "sample_sizes_given_targets",
    "target_tensors",
]

SIZE_COLUMN = "num_atoms"
"""A target file's optional column of sample sizes (EDM's protocol takes each target's atom count with it)."""

SIZE_BINS = 20
"""Quantile bins per property of the p(N | c) table."""


def conditions_info(names: Sequence[str], units: Sequence[str], values: Tensor, num_nodes: Tensor) -> dict[str, Any]:
    """The ``conditions`` dict (module docstring) of a training set.

    Args:
        names, units: the properties, in column order.
        values: ``[M, P]`` float, physical units, finite.
        num_nodes: ``[M]`` long, the size of each training graph.
    Raises:
        ValueError: non-finite values, a constant property, or shapes that do not match.
    """
    values = torch.as_tensor(values, dtype=torch.float64)
    if values.dim() != 2 or values.shape != (len(num_nodes), len(names)) or len(units) != len(names):
        raise ValueError(f"values must be [{len(num_nodes)}, {len(names)}], got {tuple(values.shape)}")
    if not torch.isfinite(values).all():
        raise ValueError("property values must be finite")
    std = values.std(dim=0) if len(values) > 1 else torch.zeros(len(names), dtype=torch.float64)
    if (std <= 0).any():
        raise ValueError(f"properties without spread in the training set: {[n for n, s in zip(names, std) if s <= 0]}")
    quantiles = torch.linspace(0, 1, SIZE_BINS + 1, dtype=torch.float64)
    num_sizes = int(num_nodes.max()) + 1
    bins = []
    for column in values.T.contiguous():
        edges = torch.quantile(column, quantiles)
        which = torch.bucketize(column, edges[1:-1], right=True)  # bin k holds edges[k] <= v < edges[k + 1]
        counts = torch.zeros(SIZE_BINS, num_sizes, dtype=torch.long)
        counts.index_put_((which, num_nodes.long()), torch.ones_like(which), accumulate=True)
        bins.append({"edges": edges.tolist(), "counts": counts.tolist()})
    return {
        "names": list(names),
        "units": list(units),
        "mean": values.mean(dim=0).tolist(),
        "std": std.tolist(),
        "min": values.min(dim=0).values.tolist(),
        "max": values.max(dim=0).values.tolist(),
        "size_bins": bins,
    }


def normalize(values: Tensor, conditions: Mapping[str, Any]) -> Tensor:
    """``(values - mean) / std`` per column: ``[M, P]`` physical -> ``[M, P]`` network units (same dtype)."""
    mean, std = (values.new_tensor(conditions[key]) for key in ("mean", "std"))
    return (values - mean) / std


def denormalize(values: Tensor, conditions: Mapping[str, Any]) -> Tensor:
    """Inverse of :func:`normalize`: ``[M, P]`` network units -> physical units."""
    mean, std = (values.new_tensor(conditions[key]) for key in ("mean", "std"))
    return values * std + mean


def describe_conditions(conditions: Mapping[str, Any]) -> str:
    """``alpha in [6.31, 196.6] Bohr^3, gap in [...] meV``: what a model takes, for messages."""
    return ", ".join(
        f"{name} in [{low:.4g}, {high:.4g}] {unit}"
        for name, low, high, unit in zip(conditions["names"], conditions["min"], conditions["max"], conditions["units"])
    )


def parse_target(text: str) -> tuple[str, float]:
    """``"alpha=80.5"`` -> ``("alpha", 80.5)``; ValueError with the expected form."""
    name, sep, value = text.partition("=")
    try:
        if not sep or not name.strip():
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise ValueError(f"a condition is NAME=VALUE, e.g. alpha=80.5; got {text!r}") from None


def read_target_file(path: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of a CSV file with a header of property names (and optionally ``num_atoms``), one row per
    sample; an empty cell leaves that property unset for the row.

    Raises:
        ValueError: an empty file, a row with more or fewer cells than the header, or a cell that is not
            a number (naming the line).
    """
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            raise ValueError(f"{path}: empty target file (expected a header of property names)")
        header = [cell.strip() for cell in header]
        rows = []
        for line, cells in enumerate(reader, start=2):
            if not cells:
                continue
            if len(cells) != len(header):
                raise ValueError(f"{path}, line {line}: {len(cells)} cells for {len(header)} columns")
            row = {}
            for name, cell in zip(header, cells):
                if cell.strip():
                    try:
                        row[name] = float(cell)
                    except ValueError:
                        raise ValueError(f"{path}, line {line}: {name}={cell!r} is not a number") from None
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no target rows after the header")
    return rows


def requested_targets(
    conditions: Sequence[str] | None, condition_file: str | os.PathLike | None, num_samples: int | None
) -> tuple[list[dict[str, float]], Tensor | None, int]:
    """The target rows of `molgen sample`'s ``--condition NAME=VALUE`` (one row for every sample) or
    ``--condition-file`` (one row per sample), the sizes of a file's ``num_atoms`` column, and the number
    of samples (a file's rows unless ``num_samples`` is given; else ``num_samples`` or 100).

    Raises:
        ValueError: both options, a malformed condition, a file that cannot be read, a file whose row count
            is not ``num_samples``, or a ``num_atoms`` column with missing or non-integer cells.
    """
    if conditions and condition_file:
        raise ValueError("give targets with --condition or with --condition-file, not both")
    if not condition_file:
        row = dict(parse_target(text) for text in conditions or [])
        count = num_samples or 100
        return [dict(row) for _ in range(count)] if row else [], None, count
    try:
        rows = read_target_file(condition_file)
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read --condition-file {condition_file}: {err}") from None
    if num_samples is not None and num_samples != len(rows):
        raise ValueError(f"--num-samples {num_samples} but {condition_file} has {len(rows)} target rows")
    sizes = [row.pop(SIZE_COLUMN, None) for row in rows]
    if all(size is None for size in sizes):
        return rows, None, len(rows)
    if any(size is None or size != int(size) or size < 1 for size in sizes):
        raise ValueError(f"{condition_file}: {SIZE_COLUMN} must be a whole number >= 1 in every row")
    return rows, torch.tensor([int(size) for size in sizes]), len(rows)


def target_tensors(rows: Sequence[Mapping[str, float]], conditions: Mapping[str, Any] | None) -> tuple[Tensor, Tensor]:
    """Checked target rows (module docstring) as the network's condition: normalised ``values`` ``[B, P]``
    float64 (0 where not given) and ``mask`` ``[B, P]`` bool (True where given).

    Raises:
        ValueError: a model without conditions, a property it was not trained on, or a value that is
            not finite or lies outside the training range (the message names the range).
    """
    if not conditions:
        raise ValueError("this model was not trained with conditions; it samples unconditionally only")
    names = list(conditions["names"])
    values = torch.zeros(len(rows), len(names), dtype=torch.float64)
    mask = torch.zeros(len(rows), len(names), dtype=torch.bool)
    for i, row in enumerate(rows):
        for name, value in row.items():
            if name not in names:
                raise ValueError(f"this model is conditioned on {describe_conditions(conditions)}; not on {name!r}")
            k = names.index(name)
            low, high = conditions["min"][k], conditions["max"][k]
            if not math.isfinite(value) or not low <= value <= high:
                raise ValueError(
                    f"target {name}={value} is outside the training range [{low:.6g}, {high:.6g}] "
                    f"{conditions['units'][k]}"
                )
            values[i, k], mask[i, k] = value, True
    return torch.where(mask, normalize(values, conditions), 0.0), mask


def sample_sizes_given_targets(
    conditions: Mapping[str, Any],
    size_histogram: Sequence[int],
    values: Tensor,
    mask: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw each sample's size from p(N | c) (module docstring): ``[B]`` long.

    Args:
        size_histogram: training graphs of each size, p(N).
        values: ``[B, P]`` normalised targets; ``mask`` ``[B, P]`` bool, which are given.
    """
    prior = torch.as_tensor(size_histogram, dtype=torch.float64)
    log_p = torch.log(prior / prior.sum()).expand(len(values), -1).clone()
    physical = denormalize(values, conditions)
    for k, table in enumerate(conditions["size_bins"]):
        edges = torch.tensor(table["edges"], dtype=torch.float64)
        counts = torch.tensor(table["counts"], dtype=torch.float64)
        counts = torch.nn.functional.pad(counts, (0, max(len(prior) - counts.shape[1], 0)))[:, : len(prior)]
        # p(bin | N), with half a count per bin so that sizes present in training never get probability 0
        likelihood = (counts + 0.5) / (counts + 0.5).sum(dim=0, keepdim=True)
        which = torch.bucketize(physical[:, k].contiguous(), edges[1:-1], right=True)
        log_p += torch.where(mask[:, k, None], likelihood[which].log(), 0.0)
    weights = torch.softmax(log_p, dim=1)  # sizes absent from training keep weight 0 (log 0 = -inf)
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)

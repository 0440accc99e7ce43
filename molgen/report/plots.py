"""The report's plots: matplotlib set up once (headless Agg, small figures, text kept as text in SVG),
and the few plot shapes every panel uses: sample-against-reference histograms (categorical and
binned), line plots over steps, and 2-D densities.

Samples are drawn in blue and references in grey, every histogram normalised to fractions so
that sets of different sizes compare; the legend gives each set's count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display; set before pyplot is imported anywhere in the process

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

__all__ = ["REFERENCE_COLOR", "SAMPLE_COLOR", "bars", "binned", "new_figure", "values_histogram"]

SAMPLE_COLOR = "#2f6db5"
REFERENCE_COLOR = "#9aa3ad"
#: One panel, inches.
PANEL_SIZE = (4.2, 2.9)

matplotlib.rcParams.update(
    {
        "svg.fonttype": "none",  # text as <text>, not paths: smaller files, crisp in the browser
        "svg.hashsalt": "molgen-report",  # reproducible ids
        "font.size": 8.5,
        "axes.titlesize": 9.5,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "legend.fontsize": 7.5,
    }
)


def new_figure(panels: int = 1, columns: int = 1, size: tuple[float, float] = PANEL_SIZE):
    """A figure of ``panels`` axes on a grid of ``columns``; returns ``(figure, flat list of axes)``."""
    rows = -(-panels // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(size[0] * columns, size[1] * rows), squeeze=False)
    flat = list(axes.ravel())
    for extra in flat[panels:]:
        extra.set_visible(False)
    figure.set_layout_engine("constrained")
    return figure, flat[:panels]


def _label(name: str, total: float) -> str:
    return f"{name} (n = {int(total):,})"


def bars(
    ax,
    sample: Mapping[str, float],
    reference: Mapping[str, float] | None,
    names: tuple[str, str],
    order: Sequence[str] | None = None,
    ylabel: str = "fraction",
) -> None:
    """Side-by-side bars of two count dicts, each normalised to fractions of its total.

    Args:
        sample, reference: category -> count (reference None: the sample alone).
        names: legend names of the sample and the reference.
        order: categories in display order (default: by the sample's count, then the reference's).
    """
    reference = reference or {}
    keys = (
        list(order)
        if order is not None
        else sorted(set(sample) | set(reference), key=lambda k: (-sample.get(k, 0), -reference.get(k, 0)))
    )
    numeric = all(isinstance(k, (int, np.integer)) for k in keys)  # e.g. atom counts: keys are the positions
    x = np.asarray(keys, dtype=float) if numeric else np.arange(len(keys))
    width = 0.4 if reference else 0.7
    for offset, counts, name, color in (
        (-width / 2 if reference else 0.0, sample, names[0], SAMPLE_COLOR),
        (width / 2, reference, names[1], REFERENCE_COLOR),
    ):
        total = sum(counts.values())
        if not total:
            continue
        ax.bar(x + offset, [counts.get(k, 0) / total for k in keys], width, color=color, label=_label(name, total))
    if numeric:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.set_xticks(x, [str(k) for k in keys])
    ax.set_ylabel(ylabel)
    ax.legend()


def binned(
    ax,
    edges: np.ndarray,
    sample: np.ndarray,
    reference: np.ndarray | None,
    names: tuple[str, str],
    xlabel: str,
) -> None:
    """Two histograms on the same bins as density curves (steps), each normalised to unit area.

    Args:
        edges: [B + 1] bin edges, in the unit of ``xlabel``.
        sample, reference: [B] counts (reference None or all zero: the sample alone).
    """
    widths = np.diff(edges)
    for counts, name, color, fill in (
        (reference, names[1], REFERENCE_COLOR, True),
        (sample, names[0], SAMPLE_COLOR, False),
    ):
        if counts is None or counts.sum() == 0:
            continue
        density = counts / (counts.sum() * widths)
        if fill:
            ax.stairs(density, edges, fill=True, color=color, alpha=0.55, label=_label(name, counts.sum()))
        else:
            ax.stairs(density, edges, color=color, linewidth=1.3, label=_label(name, counts.sum()))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend()


def values_histogram(
    ax,
    sample: np.ndarray,
    reference: np.ndarray | None,
    names: tuple[str, str],
    xlabel: str,
    bins: int = 40,
    value_range: tuple[float, float] | None = None,
) -> None:
    """:func:`binned` of raw values: ``bins`` equal bins over ``value_range`` (default: the span of both sets).

    Args:
        sample, reference: [n] finite values (reference None: the sample alone).
    """
    sample = np.asarray(sample, dtype=float)
    both = sample if reference is None else np.concatenate([sample, np.asarray(reference, dtype=float)])
    if value_range is None:
        low, high = (float(both.min()), float(both.max())) if len(both) else (0.0, 1.0)
        value_range = (low, high if high > low else low + 1.0)
    edges = np.linspace(*value_range, bins + 1)

    def count(values: np.ndarray) -> np.ndarray:
        return np.histogram(np.clip(np.asarray(values, dtype=float), *value_range), edges)[0]

    binned(ax, edges, count(sample), None if reference is None else count(reference), names, xlabel)

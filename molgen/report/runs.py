"""The training-run report: the curves of a `molgen train` run directory, from its CSV log.

`molgen train` logs through Lightning's CSVLogger into ``<run>/logs/metrics.csv`` (one row per
logging event, empty cells for the columns it does not set):

    train/loss, train/loss_<term>   training loss and its terms (positions, atom_type, bond, charge, ...)
                                    every ``trainer.log_every_n_steps`` steps
    val/loss, val/loss_<term>       validation loss and terms after each validation
    lr-<optimizer>                  learning rate (LearningRateMonitor)
    train/time, train/samples       seconds since the start and graphs seen (ThroughputMonitor)

The page draws the total loss (training and validation), one panel per loss term, the
learning rate and the throughput in graphs per second (differences of ``train/samples``
over ``train/time``; a resumed run restarts the clock, and those steps are left out),
with the run's Hydra overrides and resolved config. Runs logged before a column existed
simply lack its figure.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from molgen.report.html import Figure, Page, Section, escape, table
from molgen.report.plots import REFERENCE_COLOR, SAMPLE_COLOR, new_figure

__all__ = ["read_metrics", "run_report"]

LOG = Path("logs") / "metrics.csv"


def read_metrics(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The series of a Lightning CSV log: column -> (steps [k] int, values [k] float), rows where the column is set.

    Raises:
        FileNotFoundError: no such file.
        ValueError: no ``step`` column or no logged value.
    """
    path = Path(path)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "step" not in rows[0]:
        raise ValueError(f"{path}: not a Lightning CSV log (no rows with a 'step' column)")
    series: dict[str, tuple[list[int], list[float]]] = {}
    for row in rows:
        try:
            step = int(float(row["step"]))
        except (TypeError, ValueError):
            continue
        for key, text in row.items():
            if key in ("step", "epoch") or key is None or text in ("", None):
                continue
            try:
                value = float(text)
            except ValueError:
                continue
            if math.isfinite(value):
                steps, values = series.setdefault(key, ([], []))
                steps.append(step)
                values.append(value)
    if not series:
        raise ValueError(f"{path}: no logged values")
    return {k: (np.asarray(s, dtype=np.int64), np.asarray(v, dtype=np.float64)) for k, (s, v) in series.items()}


def _terms(series: dict) -> list[str]:
    """Loss terms logged for training or validation, e.g. ``["positions", "bond"]``."""
    names = {key.split("/loss_", 1)[1] for key in series if key.startswith(("train/loss_", "val/loss_"))}
    return sorted(names)


def _throughput(series: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps [k], graphs per second [k]) between consecutive throughput logs, or None when not logged."""
    if "train/time" not in series or "train/samples" not in series:
        return None
    steps, seconds = series["train/time"]
    samples_steps, samples = series["train/samples"]
    if len(steps) < 2 or not np.array_equal(steps, samples_steps):
        return None
    dt, dn = np.diff(seconds), np.diff(samples)
    keep = (dt > 0) & (dn > 0)  # a resumed run restarts both counters
    return steps[1:][keep], dn[keep] / dt[keep]


def run_report(path: str | Path) -> Page:
    """The report page of a run directory (or of its ``logs/metrics.csv`` itself).

    Raises:
        FileNotFoundError: no CSV log.
        ValueError: a CSV without logged values.
    """
    path = Path(path)
    run = path if path.is_dir() else path.parent.parent
    log = path / LOG if path.is_dir() else path
    series = read_metrics(log)
    page = Page(f"molgen report: run {run.name}", f"{log} ({max(s.max() for s, _ in series.values()):,} steps logged)")
    page.sections.append(Section("Summary", _summary(series, run)))
    page.sections.append(Section("Curves", "", _figures(series)))
    return page


def _summary(series: dict, run: Path) -> str:
    rows = []
    for key, label in (("train/loss", "last training loss"), ("val/loss", "last validation loss")):
        if key in series:
            steps, values = series[key]
            rows.append([label, f"{values[-1]:.4f}", f"step {steps[-1]:,}"])
    if "val/loss" in series:
        steps, values = series["val/loss"]
        best = int(np.argmin(values))
        rows.append(["best validation loss", f"{values[best]:.4f}", f"step {steps[best]:,}"])
    rate = _throughput(series)
    if rate is not None:
        rows.append(["median throughput", f"{np.median(rate[1]):.1f}", "graphs / s"])
    body = table(rows, ["", "value", ""], numeric={1})
    overrides = run / ".hydra" / "overrides.yaml"
    if overrides.is_file():
        body += f'<p class="note">overrides:</p><pre>{escape(overrides.read_text())}</pre>'
    config = run / "config_resolved.yaml"
    if config.is_file():
        body += f"<details><summary>resolved config</summary><pre>{escape(config.read_text())}</pre></details>"
    return body


def _figures(series: dict) -> list[Figure]:
    figures = []
    losses = [(key, label) for key, label in (("train/loss", "training"), ("val/loss", "validation")) if key in series]
    if losses:
        figure, (ax,) = new_figure()
        for key, label in losses:
            steps, values = series[key]
            ax.plot(
                steps,
                values,
                "o-" if key.startswith("val") else "-",
                markersize=3,
                label=label,
                color=REFERENCE_COLOR if key.startswith("val") else SAMPLE_COLOR,
            )
        ax.set(xlabel="step", ylabel="loss")
        _log_scale(ax, np.concatenate([series[key][1] for key, _ in losses]))
        ax.legend()
        figures.append(
            Figure("loss", "Total loss: training (as logged) and validation (after each validation).", figure)
        )

    terms = _terms(series)
    if terms:
        figure, axes = new_figure(len(terms), columns=min(len(terms), 3), size=(3.2, 2.4))
        for ax, term in zip(axes, terms):
            for prefix, style, color in (("train", "-", SAMPLE_COLOR), ("val", "o-", REFERENCE_COLOR)):
                if f"{prefix}/loss_{term}" in series:
                    steps, values = series[f"{prefix}/loss_{term}"]
                    ax.plot(steps, values, style, markersize=3, color=color, label=prefix)
            ax.set(title=term, xlabel="step", ylabel="loss")
            ax.legend()
        figures.append(Figure("loss_terms", "Loss terms: training (line) and validation (dots).", figure))

    rates = [key for key in series if key.startswith("lr-")]
    if rates:
        figure, (ax,) = new_figure()
        for key in rates:
            ax.plot(*series[key], label=key.removeprefix("lr-"))
        ax.set(xlabel="step", ylabel="learning rate")
        ax.legend()
        figures.append(Figure("learning_rate", "Learning rate of each optimizer.", figure))

    rate = _throughput(series)
    if rate is not None and len(rate[0]):
        figure, (ax,) = new_figure()
        ax.plot(*rate, color=SAMPLE_COLOR)
        ax.set(xlabel="step", ylabel="graphs / second", ylim=(0, None))
        figures.append(Figure("throughput", "Training throughput between logged steps (validation excluded).", figure))
    return figures


def _log_scale(ax, values: np.ndarray) -> None:
    """A logarithmic y axis where the values are positive and span more than a factor 10."""
    if values.min() > 0 and values.max() / values.min() > 10:
        ax.set_yscale("log")

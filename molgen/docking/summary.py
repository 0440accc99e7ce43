"""The summary of a docking run: score distribution beside ligand efficiency, QED and SA, and the failure table.

Scores are those of each docked molecule's best pose. "Best 10 %" is the mean of the
best tenth of the molecules (at least one), the figure virtual screening looks at;
mean and median describe the whole set, so generated molecules can be compared with
a baseline docked the same way (scripts/docking_benchmark.py).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from molgen.docking.results import MoleculeResult

__all__ = ["FAILURES_SHOWN", "distribution", "format_failures", "format_summary", "summarize"]

FAILURES_SHOWN = 20
"""Failures listed one by one in the printed table (all of them are in the JSON report)."""

#: Preparation changes counted in the summary, by their key in MoleculeResult.changes.
_CHANGES = {
    "largest_fragment": "largest fragment kept",
    "hydrogens_added": "hydrogens added",
    "bonds_perceived": "bonds perceived",
}


def distribution(values: list[float], lower_is_better: bool = True) -> dict[str, float]:
    """``n``, ``mean``, ``median``, ``best_10pct`` (mean of the best tenth, at least one value), ``best``
    of ``values``; NaN for an empty list."""
    x = np.sort(np.asarray(values, dtype=float))
    if not lower_is_better:
        x = x[::-1]
    if len(x) == 0:
        return {"n": 0, "mean": float("nan"), "median": float("nan"), "best_10pct": float("nan"), "best": float("nan")}
    tenth = max(1, len(x) // 10)
    return {
        "n": len(x),
        "mean": float(x.mean()),
        "median": float(np.median(x)),
        "best_10pct": float(x[:tenth].mean()),
        "best": float(x[0]),
    }


def summarize(results: list[MoleculeResult]) -> dict[str, Any]:
    """The run's figures as a JSON-ready dict (see :func:`format_summary` for the printed form)."""
    docked = [r for r in results if r.docked]
    failed = [r for r in results if not r.docked]
    return {
        "molecules": len(results),
        "docked": len(docked),
        "failed": len(failed),
        "failures_by_category": dict(Counter(r.failure for r in failed).most_common()),
        "changes": {key: sum(key in r.changes for r in results) for key in _CHANGES},
        "score": distribution([r.score for r in docked]),
        "ligand_efficiency": distribution([r.ligand_efficiency for r in docked], lower_is_better=False),
        "qed": distribution([r.properties["qed"] for r in docked], lower_is_better=False),
        "sa": distribution([r.properties["sa"] for r in docked]),
        "failures": [{"index": r.index, "title": r.title, "category": r.failure, "reason": r.reason} for r in failed],
    }


def format_summary(report: dict[str, Any]) -> str:
    """The printed summary: counts, the distribution table, and the failures (the first :data:`FAILURES_SHOWN`)."""
    lines = [f"molecules {report['molecules']}, docked {report['docked']}, failed {report['failed']}"]
    changed = [f"{_CHANGES[key]} {n}" for key, n in report["changes"].items() if n]
    if changed:
        lines.append("changed before docking: " + ", ".join(changed))
    lines.append(f"{'':26}{'mean':>8}{'median':>8}{'best 10%':>10}{'best':>8}")
    rows = (
        ("Vina score (kcal/mol)", "score"),
        ("ligand efficiency", "ligand_efficiency"),
        ("QED", "qed"),
        ("SA score", "sa"),
    )
    for label, key in rows:
        d = report[key]
        lines.append(f"{label:26}{d['mean']:8.3f}{d['median']:8.3f}{d['best_10pct']:10.3f}{d['best']:8.3f}")
    if report["failed"]:
        lines.append(format_failures(report["failures"]))
    return "\n".join(lines)


def format_failures(failures: list[dict[str, Any]]) -> str:
    """The failure table: counts by category, then the first :data:`FAILURES_SHOWN` failures
    (dicts with ``index``, ``title``, ``category``, ``reason``), one per line."""
    counts = ", ".join(f"{category} {n}" for category, n in Counter(f["category"] for f in failures).most_common())
    lines = [f"failures: {counts}", f"{'index':>7}  {'title':20}  reason"]
    for failure in failures[:FAILURES_SHOWN]:
        lines.append(f"{failure['index']:>7}  {failure['title'][:20]:20}  {failure['category']}: {failure['reason']}")
    if len(failures) > FAILURES_SHOWN:
        lines.append(f"... and {len(failures) - FAILURES_SHOWN} more (all in the --json report)")
    return "\n".join(lines)

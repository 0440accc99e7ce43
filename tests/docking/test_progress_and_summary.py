"""The progress file that makes `molgen dock` resumable, and the summary's figures."""

from __future__ import annotations

import json
import math

import pytest

from molgen.docking.progress import ProgressFile, run_fingerprint
from molgen.docking.results import MoleculeResult
from molgen.docking.summary import FAILURES_SHOWN, distribution, format_summary, summarize


def docked(index: int, score: float) -> MoleculeResult:
    return MoleculeResult(
        index, f"mol{index}", poses=[(score, "block")], properties={"heavy_atoms": 10, "qed": 0.5, "sa": 3.0}
    )


def failed(index: int) -> MoleculeResult:
    return MoleculeResult(index, f"bad{index}", failure="does not sanitise", reason="valence")


def test_progress_survives_a_torn_last_line_and_ignores_other_runs(tmp_path):
    path = tmp_path / "out.sdf.progress"
    progress = ProgressFile(path, run_fingerprint(seed=1))
    assert progress.start() == {}
    progress.append(docked(0, -7.0))
    progress.append(failed(2))
    with open(path, "a") as handle:
        handle.write('{"index": 3, "title": "cut sh')  # killed while writing
    done = ProgressFile(path, run_fingerprint(seed=1)).start()
    assert sorted(done) == [0, 2] and done[0].score == -7.0 and done[2].failure == "does not sanitise"
    assert len(path.read_text().splitlines()) == 3  # header and the two results: appending is safe again
    assert ProgressFile(path, run_fingerprint(seed=2)).start() == {}  # another run starts over
    assert json.loads(path.read_text().splitlines()[0]) == {"fingerprint": run_fingerprint(seed=2)}


def test_result_json_round_trip():
    result = docked(4, -6.5)
    result.changes = {"hydrogens_added": "added 3 hydrogens with coordinates"}
    assert MoleculeResult.from_json(json.loads(json.dumps(result.to_json()))) == result
    assert result.ligand_efficiency == pytest.approx(0.65)


def test_distribution_best_tenth_and_direction():
    d = distribution([float(-i) for i in range(1, 21)])
    assert d == {"n": 20, "mean": -10.5, "median": -10.5, "best_10pct": -19.5, "best": -20.0}
    assert distribution([0.1, 0.9, 0.5], lower_is_better=False)["best"] == 0.9
    assert math.isnan(distribution([])["mean"])


def test_summary_counts_and_failure_table():
    results = [docked(i, -5.0 - i) for i in range(3)] + [failed(i) for i in range(3, 3 + FAILURES_SHOWN + 2)]
    results[0].changes = {"largest_fragment": "kept the largest of 2 fragments (9 of 10 heavy atoms)"}
    report = summarize(results)
    assert (report["molecules"], report["docked"], report["failed"]) == (25, 3, 22)
    assert report["changes"] == {"largest_fragment": 1, "hydrogens_added": 0, "bonds_perceived": 0}
    assert report["failures_by_category"] == {"does not sanitise": 22}
    assert report["score"]["mean"] == -6.0 and report["score"]["best"] == -7.0
    text = format_summary(report)
    assert "largest fragment kept 1" in text
    assert "failures: does not sanitise 22" in text
    assert "... and 2 more" in text
    json.dumps(report)  # JSON-ready

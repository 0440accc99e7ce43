"""The docking sections of `molgen report`: a docked SDF against a baseline, the best poses inside the receptor,
and bad docking input."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from molgen.cli import main
from tests.report.conftest import BASELINE, DOCKED, Elements
from tests.report.test_report import external_urls, report


def figure_svg(text: str, name: str) -> str:
    """The SVG of the page's figure ``name``, decoded from its data URI."""
    match = re.search(rf'<figure id="fig-{name}"><img alt="[^"]*" src="data:image/svg\+xml;base64,([^"]+)"', text)
    assert match, f"no figure {name}"
    return base64.b64decode(match.group(1)).decode()


def viewer_data(text: str, box: str) -> dict:
    """The JSON payload of the viewer ``box``."""
    match = re.search(rf'<div class="viewer-box" id="{box}">.*?<script type="application/json" class="viewer-data">'
                      r"(.*?)</script>", text, re.DOTALL)  # fmt: skip
    assert match, f"no viewer {box}"
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def docking_page(docked_sdf, receptor_pdb, baseline_sdf, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("docking_report") / "report.html"
    assert main([
        "report", str(docked_sdf), "--receptor", str(receptor_pdb), "--baseline", str(baseline_sdf),
        "--reference", "none", "--best-poses", "3", "-o", str(out), "--no-progress",
    ]) == 0  # fmt: skip
    return out.read_text()


def test_docking_section_with_baseline(docking_page):
    text = docking_page
    page = Elements(text)
    assert external_urls(page) == []
    assert 'id="docking"' in text and 'id="docked-poses"' in text
    # each molecule once, by its best pose: the first sample has two poses
    assert f"samples: {len(DOCKED)} docked molecules ({len(DOCKED) + 1} poses" in text
    assert f"baseline.sdf: {len(BASELINE)} docked molecules" in text
    histogram = figure_svg(text, "docking_scores")
    assert f"samples (n = {len(DOCKED)})" in histogram and f"baseline.sdf (n = {len(BASELINE)})" in histogram
    sample_median = np.median([score for _, score in DOCKED])
    baseline_median = np.median([score for _, score in BASELINE])
    assert f"median {sample_median:.2f}" in histogram and f"median {baseline_median:.2f}" in histogram
    assert "baseline.sdf" in figure_svg(text, "docking_properties")
    # the summary table: mean, median, mean of the best 10 %, best; the samples' row beside the baseline's
    assert "<th>mean</th><th>median</th><th>mean of the best 10 %</th><th>best</th>" in text
    scores = sorted(score for _, score in DOCKED)
    row = f'<tr><td>samples</td><td class="num">{np.mean(scores):.2f}</td><td class="num">{sample_median:.2f}</td>'
    assert row + f'<td class="num">{scores[0]:.2f}</td><td class="num">{scores[0]:.2f}</td></tr>' in text
    assert f'<tr><td>baseline.sdf</td><td class="num">{np.mean([s for _, s in BASELINE]):.2f}</td>' in text


def test_best_poses_in_the_pocket_with_the_receptor_inline(docking_page):
    data = viewer_data(docking_page, "pocket-viewer")
    assert [item["label"].split()[:3] for item in data["items"]] == [["1.", "-6.10", "kcal/mol"], ["2.", "-5.40",
            "kcal/mol"], ["3.", "-4.90", "kcal/mol"]]  # fmt: skip
    assert all(item["style"] == "pose" and item["format"] == "sdf" for item in data["items"])
    receptor = data["receptor"]
    assert "TRP A   4" in receptor and receptor.count("ATOM") > 50
    elements = {line[76:78].strip() for line in receptor.splitlines() if line.startswith(("ATOM", "HETATM"))}
    assert "H" not in elements and "HOH" not in receptor  # no hydrogens, no waters
    assert "all 9 residues" in docking_page
    assert len(Elements(docking_page).inside("option", "viewer-box")) == 3 + len(DOCKED) + 1  # pocket + grid


def test_without_receptor_the_poses_are_shown_alone(docked_sdf, tmp_path, capsys):
    out = tmp_path / "report.html"
    status, _, err = report(capsys, str(docked_sdf), "--reference", "none", "-o", str(out))
    assert status == 0, err
    text = out.read_text()
    assert viewer_data(text, "pocket-viewer")["receptor"] == ""
    assert "no receptor given" in text and "No baseline given" in text
    assert f"samples (n = {len(DOCKED)})" in figure_svg(text, "docking_scores")


def test_large_receptors_are_cropped_to_the_pocket(receptor_pdb, peptide):
    from molgen.report.docking import read_receptor
    from tests.report.conftest import pocket_center

    center = pocket_center(peptide)[None]
    whole = read_receptor(receptor_pdb, [center])
    assert not whole.cropped and whole.residues_shown == len("GSAWYDKLG")
    cropped = read_receptor(receptor_pdb, [center], max_atoms=10, crop=6.0)
    assert cropped.cropped and 1 <= cropped.residues_shown < whole.residues_shown
    assert " TRP " in cropped.pdb and len(cropped.pdb) < len(whole.pdb)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing receptor", "receptor"),
        ("unparsable receptor", "no atoms"),
        ("receptor far away", "were they docked into this receptor"),
        ("missing baseline", "baseline SDF not found"),
        ("baseline not docked", "has no docking scores"),
        ("samples not docked", "need docked molecules"),
        ("no poses", "--best-poses must be a positive integer"),
    ],
)
def test_bad_docking_input_is_one_line_and_writes_nothing(
    case, message, docked_sdf, receptor_pdb, baseline_sdf, molecules_sdf, tmp_path, capsys
):
    far = tmp_path / "far.pdb"
    far.write_text("ATOM      1  CA  GLY A   1     100.000 100.000 100.000  1.00  0.00           C\nEND\n")
    (tmp_path / "garbage.pdb").write_text("this is not a PDB file\n")
    args = {
        "missing receptor": [str(docked_sdf), "--receptor", str(tmp_path / "missing.pdb")],
        "unparsable receptor": [str(docked_sdf), "--receptor", str(tmp_path / "garbage.pdb")],
        "receptor far away": [str(docked_sdf), "--receptor", str(far)],
        "missing baseline": [str(docked_sdf), "--baseline", str(tmp_path / "missing.sdf")],
        "baseline not docked": [str(docked_sdf), "--baseline", str(molecules_sdf)],
        "samples not docked": [str(molecules_sdf), "--receptor", str(receptor_pdb)],
        "no poses": [str(docked_sdf), "--best-poses", "0"],
    }[case]
    out = tmp_path / "report.html"
    status, _, err = report(capsys, *args, "--reference", "none", "-o", str(out))
    assert status == 1
    assert err.count("\n") == 1 and err.startswith("molgen report: error: ") and message in err, err
    assert not out.exists()


def test_docking_options_need_an_sdf(designs, receptor_pdb, tmp_path, capsys):
    out = tmp_path / "report.html"
    status, _, err = report(capsys, str(designs), "--receptor", str(receptor_pdb), "-o", str(out))
    assert status == 1 and "apply to docked molecules" in err and not out.exists()

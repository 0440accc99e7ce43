"""`molgen report` as a user runs it: each kind of input, the page's content, and bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from molgen.cli import main
from tests.report.conftest import Elements

URL = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)


def report(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["report", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return status, out, err


def external_urls(page: Elements) -> list[str]:
    return [value for _, a, _ in page.elements for key, value in a.items() if key in ("src", "href") and value
            and URL.match(value)]  # fmt: skip


def test_molecule_report_grid_failed_tiles_and_no_external_resources(molecules_sdf, tmp_path, capsys):
    out = tmp_path / "report.html"
    status, printed, _ = report(capsys, str(molecules_sdf), "-o", str(out), "--reference", "none")
    assert status == 0 and "molecules report" in printed
    text = out.read_text()
    page = Elements(text)
    assert len(page.inside("img", "tile")) == 5  # one depiction per readable molecule
    failed = page.with_class("failed")
    assert len(failed) == 1 and "unparsable" in text
    assert external_urls(page) == []
    assert all(a["src"].startswith("data:image/") for _, a, _ in page.elements if a.get("src"))
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert len(page.with_class("viewer")) == 1 and "$3Dmol" in text  # the bundled viewer, inline
    assert "QED 0.50" in text  # the SD tag as a badge
    for figure in ("fig-atoms_per_molecule", "fig-elements", "fig-bond_lengths", "fig-bond_angles", "fig-ring_sizes"):
        assert f'id="{figure}"' in text


def test_reference_file_max_grid_and_figures(molecules_sdf, reference_sdf, tmp_path, capsys):
    out, figures = tmp_path / "report.html", tmp_path / "figures"
    status, _, err = report(
        capsys, str(molecules_sdf), "-o", str(out), "--reference", str(reference_sdf), "--max-grid", "2",
        "--figures", str(figures),
    )  # fmt: skip
    assert status == 0, err
    text = out.read_text()
    assert len(Elements(text).inside("img", "tile")) == 2
    assert "The first 2 of 6 records" in text and "reference.sdf" in text
    assert {p.name for p in figures.iterdir()} >= {"elements.svg", "elements.png", "ring_sizes.svg"}
    assert (figures / "bond_angles.png").read_bytes()[:4] == b"\x89PNG"


def test_backbone_report(designs, tmp_path, capsys):
    out = tmp_path / "designs.html"
    status, printed, err = report(capsys, str(designs), "-o", str(out))
    assert status == 0 and "backbones report" in printed, err
    text = out.read_text()
    page = Elements(text)
    assert external_urls(page) == []
    assert len(page.inside("option", "viewer-box")) == 2  # one 3D item per chain
    assert "backbone_0002.pdb" in text  # the unreadable file, with its reason
    for figure in ("ramachandran", "backbone_bonds", "secondary_structure", "radius_of_gyration", "contact_maps"):
        assert f'id="fig-{figure}"' in text


def test_backbone_report_with_natural_reference(designs, tmp_path, capsys):
    natural = tmp_path / "natural"
    natural.mkdir()
    from molgen.proteins.geometry import ideal_helix
    from molgen.proteins.pdb import write_backbone_pdb

    write_backbone_pdb(natural / "n.pdb", ideal_helix(45))
    status, _, err = report(capsys, str(designs), "-o", str(tmp_path / "r.html"), "--reference", str(natural))
    assert status == 0, err
    assert "natural reference: 1 segments" in (tmp_path / "r.html").read_text()


def test_run_report(run_dir, tmp_path, capsys):
    out = tmp_path / "run.html"
    status, printed, err = report(capsys, str(run_dir), "-o", str(out))
    assert status == 0 and "run report" in printed, err
    text = out.read_text()
    for figure in ("loss", "loss_terms", "learning_rate", "throughput"):
        assert f'id="fig-{figure}"' in text
    assert "experiment=qm9_bonds" in text and "best validation loss" in text
    assert external_urls(Elements(text)) == []


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.sdf", None, "no such file"),
        ("empty.sdf", "", "no molecules"),
        ("notes.txt", "x", "cannot tell what"),
        ("bad.sdf", "nonsense\n$$$$\n", "no readable molecules"),
        ("log.csv", "a,b\n1,2\n", "not a Lightning CSV log"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(name, content, message, tmp_path, capsys):
    if content is not None:
        (tmp_path / name).write_text(content)
    out = tmp_path / "report.html"
    status, _, err = report(capsys, str(tmp_path / name), "-o", str(out), "--reference", "none")
    assert status == 1
    assert err.count("\n") == 1 and err.startswith("molgen report: error: ") and message in err
    assert not out.exists()


def test_unwritable_output_fails_before_any_work(molecules_sdf, tmp_path, capsys):
    status, _, err = report(capsys, str(molecules_sdf), "-o", str(tmp_path / "missing" / "report.html"))
    assert status == 1 and err.startswith("molgen report: error: ") and "does not exist" in err
    assert list(tmp_path.iterdir()) == []


def test_evaluate_writes_a_report(molecules_sdf, tmp_path, capsys):
    out = tmp_path / "evaluated.html"
    status = main(["evaluate", str(molecules_sdf), "--reference", "none", "--posebusters", "0", "--no-progress",
                   "--report", str(out)])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert len(Elements(out.read_text()).inside("img", "tile")) == 5


def test_evaluate_with_unwritable_report_fails_before_evaluating(molecules_sdf, tmp_path, capsys):
    status = main(["evaluate", str(molecules_sdf), "--reference", "none", "--report", str(tmp_path / "no" / "r.html")])
    out, err = capsys.readouterr()
    assert status == 1 and "molgen evaluate: error:" in err and "[rdkit]" not in out


def test_input_kind(molecules_sdf, designs, run_dir):
    from molgen.report.command import input_kind

    assert input_kind(molecules_sdf) == "molecules"
    assert input_kind(designs) == "backbones"
    assert input_kind(run_dir) == "run"
    assert input_kind(Path(run_dir) / "logs" / "metrics.csv") == "run"

"""`molgen dock` and `molgen export` end to end on the peptide receptor: outputs, bad input, resuming."""

from __future__ import annotations

import json

import pytest
from rdkit import Chem

from molgen.cli import main
from molgen.docking import pipeline
from molgen.docking.results import POSE_TAGS
from tests.docking.conftest import NEEDS_EXTRA, embedded, molblock, residue_center, write_sdf_text

pytest.importorskip("vina", reason=NEEDS_EXTRA)
pytest.importorskip("meeko", reason=NEEDS_EXTRA)


@pytest.fixture
def box_args(peptide) -> list[str]:
    center = residue_center(peptide, 4)
    return ["--center", *(f"{c:.3f}" for c in center), "--size", "16", "16", "16"]


@pytest.fixture
def samples(tmp_path, peptide):
    """Two good molecules (one without hydrogens, one with a second fragment), and three bad records."""
    center = residue_center(peptide, 4)
    return write_sdf_text(
        tmp_path / "samples.sdf",
        [
            molblock(embedded("Oc1ccccc1", center, title="phenol", hydrogens=False)),
            molblock(embedded("OB(O)c1ccccc1", center, title="boronic")),
            "corrupt\n  nonsense\n\n$$$$\n",
            molblock(embedded("CC(N)=O.O", center, title="acetamide_water")),
        ],
    )


def dock(samples, receptor, box_args, out, *extra):
    return main(
        [
            "dock",
            str(samples),
            "--receptor",
            str(receptor),
            *box_args,
            "--out",
            str(out),
            "--exhaustiveness",
            "1",
            "--no-progress",
            *extra,
        ]
    )


def test_dock_writes_tagged_poses_and_reports_every_failure(samples, receptor_pdb, box_args, tmp_path, capsys):
    out = tmp_path / "docked.sdf"
    assert dock(samples, receptor_pdb, box_args, out, "--num-poses", "2", "--json", str(tmp_path / "r.json")) == 0
    poses = list(Chem.SDMolSupplier(str(out), removeHs=False))
    assert {p.GetProp("source_title") for p in poses} == {"phenol", "acetamide_water"}
    for pose in poses:
        assert set(POSE_TAGS) - {"docking_notes"} <= set(pose.GetPropNames())
        assert pose.GetNumAtoms() == Chem.AddHs(pose).GetNumAtoms()  # explicit hydrogens
        assert float(pose.GetProp("vina_score")) < 0
    phenol = [p for p in poses if p.GetProp("source_index") == "0"]
    assert [p.GetProp("vina_rank") for p in phenol] == ["1", "2"][: len(phenol)]
    assert phenol[0].GetProp("docking_notes") == "added 6 hydrogens with coordinates"
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["docked"], report["failed"]) == (2, 2)
    assert report["changes"]["largest_fragment"] == 1 and report["changes"]["hydrogens_added"] == 1
    assert {(f["index"], f["category"]) for f in report["failures"]} == {
        (1, "element Vina cannot type"),
        (2, "unreadable record"),
    }
    captured = capsys.readouterr()
    assert "failures: " in captured.out and "Vina score (kcal/mol)" in captured.out
    assert "warning: 1 molecule(s) lacked hydrogens" in captured.err
    assert not (tmp_path / "docked.sdf.progress").exists() and not (tmp_path / "docked.sdf.lock").exists()


def test_a_killed_run_continues_without_docking_finished_molecules_again(
    samples, receptor_pdb, box_args, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "docked.sdf"
    real = pipeline.dock_record
    calls = []

    def killed_after_two(item):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(item[0])
        return real(item)

    monkeypatch.setattr(pipeline, "dock_record", killed_after_two)
    assert dock(samples, receptor_pdb, box_args, out) == 130
    assert "run the same command again to continue" in capsys.readouterr().err
    assert not out.exists() and (tmp_path / "docked.sdf.progress").is_file()

    resumed = []
    monkeypatch.setattr(pipeline, "dock_record", lambda item: resumed.append(item[0]) or real(item))
    assert dock(samples, receptor_pdb, box_args, out) == 0
    assert "resuming: 2 of 4 molecules already done" in capsys.readouterr().err
    assert calls == [0, 1] and resumed == [2, 3]

    fresh = tmp_path / "fresh.sdf"
    monkeypatch.setattr(pipeline, "dock_record", real)
    assert dock(samples, receptor_pdb, box_args, fresh) == 0
    assert out.read_text() == fresh.read_text()  # deterministic, and resuming changes nothing


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--receptor", "absent.pdb"], "receptor file not found: absent.pdb"),
        (["--size", None], "--center needs --size"),
        (["--center", None, "--size", None], "a docking box is needed"),
        (["samples", "absent.sdf"], "samples file not found"),
    ],
)
def test_bad_arguments_are_one_line_errors(samples, receptor_pdb, box_args, tmp_path, capsys, change, message):
    args = {"samples": str(samples), "--receptor": str(receptor_pdb), "--center": box_args[1:4], "--size": box_args[5:]}
    for key, value in zip(change[::2], change[1::2]):
        args[key] = value
    argv = ["dock", args.pop("samples")]
    for key, value in args.items():
        if value is not None:
            argv += [key, *(value if isinstance(value, list) else [value])]
    assert main([*argv, "--out", str(tmp_path / "o.sdf")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("molgen dock: error: ") and message in err and "\n" not in err


def test_export_writes_pdbqt_files_receptor_and_box(samples, receptor_pdb, box_args, tmp_path, capsys):
    out = tmp_path / "export"
    assert (
        main(["export", str(samples), "--out", str(out), "--receptor", str(receptor_pdb), *box_args, "--no-progress"])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "box.txt",
        "ligand_0000.pdbqt",
        "ligand_0003.pdbqt",
        "receptor.pdbqt",
    ]
    assert "TORSDOF" in (out / "ligand_0000.pdbqt").read_text()
    assert (out / "box.txt").read_text().splitlines()[3] == "size_x = 16.000"
    captured = capsys.readouterr().out
    assert "wrote 2 of 4 molecules as PDBQT" in captured and "unreadable record" in captured
    assert main(["export", str(samples), "--out", str(out), *box_args]) == 1  # a box without a receptor


@pytest.mark.slow
def test_parallel_jobs_give_the_same_output(samples, receptor_pdb, box_args, tmp_path):
    one, two = tmp_path / "one.sdf", tmp_path / "two.sdf"
    assert dock(samples, receptor_pdb, box_args, one) == 0
    assert dock(samples, receptor_pdb, box_args, two, "--jobs", "2") == 0
    assert one.read_text() == two.read_text()

import gzip
import io
import os
from pathlib import Path

import numpy as np
import pytest
from Bio.PDB import MMCIFIO, PDBParser

from molgen.proteins.geometry import BACKBONE_ATOMS, ideal_helix
from molgen.proteins.pdb import (
    MODIFIED_RESIDUES,
    BackboneChain,
    ParseReport,
    StructureError,
    format_backbone_pdb,
    read_backbone_folder,
    read_backbones,
    write_backbone_pdb,
)

HELIX = ideal_helix(12)  # [12, 4, 3] Å, consecutive CA atoms 3.8 Å apart


def atom(serial, name, resname, chain, resseq, xyz, *, icode=" ", altloc=" ", occ=1.0, het=False, element=None):
    """One fixed-column PDB ATOM/HETATM line."""
    element = element or name[0]
    padded = f" {name:<3s}" if len(name) < 4 and len(element) == 1 else f"{name:<4s}"
    x, y, z = xyz
    record = "HETATM" if het else "ATOM  "
    return (
        f"{record}{serial:5d} {padded}{altloc}{resname:>3s} {chain}{resseq:4d}{icode}   "
        f"{x:8.3f}{y:8.3f}{z:8.3f}{occ:6.2f}{20.0:6.2f}          {element:>2s}"
    )


def residue(serial, resname, chain, resseq, coords, *, atoms=BACKBONE_ATOMS, **kw):
    """Backbone lines of one residue from ``coords`` [4, 3] (only the atoms named in ``atoms``)."""
    return [
        atom(serial + i, name, resname, chain, resseq, coords[BACKBONE_ATOMS.index(name)], **kw)
        for i, name in enumerate(atoms)
    ]


def messy_pdb() -> str:
    """A deposited-style file: altlocs, insertion code, MSE, water, ligand, missing O, break, 2 models.

    Chain A keeps 7 residues: helix residues 0-5 (residue 1 has altlocs, residue 3 is
    "3A", residue 4 is MSE) and a residue far away (a chain break). Residue 6 (LYS)
    lacks O and is skipped. Chain B keeps 2 residues. Chain W holds only waters.
    """
    h = HELIX
    shifted = h[6] + np.array([0.0, 0.0, 30.0])
    lines = ["HEADER    TEST", "MODEL        1"]
    lines += residue(1, "GLY", "A", 1, h[0])
    # Residue 2: N has a tie (A and B at 0.50 -> A); CA's B location has the higher occupancy.
    lines += [
        atom(5, "N", "ALA", "A", 2, h[1, 0], altloc="A", occ=0.5),
        atom(6, "N", "ALA", "A", 2, h[1, 0] + 0.2, altloc="B", occ=0.5),
        atom(7, "CA", "ALA", "A", 2, h[1, 1] + 0.3, altloc="A", occ=0.4),
        atom(8, "CA", "ALA", "A", 2, h[1, 1], altloc="B", occ=0.6),
        atom(9, "C", "ALA", "A", 2, h[1, 2]),
        atom(10, "O", "ALA", "A", 2, h[1, 3]),
    ]
    lines += residue(11, "SER", "A", 3, h[2])
    lines += residue(15, "THR", "A", 3, h[3], icode="A")
    lines += residue(19, "MSE", "A", 4, h[4], het=True) + [atom(23, "SE", "MSE", "A", 4, h[4, 1] + 2, het=True)]
    lines += residue(24, "VAL", "A", 5, h[5])
    lines += residue(28, "LYS", "A", 6, h[6], atoms=("N", "CA", "C"))  # no O: skipped
    lines += residue(31, "ARG", "A", 7, shifted)  # 30 Å away: a chain break
    lines += ["TER      35      ARG A   7"]
    lines += residue(36, "GLY", "B", 1, h[8]) + residue(40, "GLY", "B", 2, h[9])
    lines += [
        atom(44, "O", "HOH", "A", 101, (5.0, 5.0, 5.0), het=True),
        atom(45, "ZN", "ZN", "A", 102, (6.0, 6.0, 6.0), het=True, element="ZN"),
        atom(46, "C1", "NAG", "B", 201, (7.0, 7.0, 7.0), het=True),
        atom(47, "O", "HOH", "W", 1, (8.0, 8.0, 8.0), het=True),
        atom(48, "O", "HOH", "W", 2, (9.0, 9.0, 9.0), het=True),
        "ENDMDL",
        "MODEL        2",
    ]
    lines += residue(1, "GLY", "A", 1, h[0] + 1.0)
    lines += ["ENDMDL", "END"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def messy_file(tmp_path) -> Path:
    path = tmp_path / "1ABC_r_u.pdb"
    path.write_text(messy_pdb())
    return path


def test_policy_on_deposited_style_file(messy_file):
    chains, report = read_backbones(messy_file)
    assert [c.name for c in chains] == ["1ABC_r_u:A", "1ABC_r_u:B"]
    a, b = chains
    assert a.length == 7 and b.length == 2
    assert a.residue_ids == ("1", "2", "3", "3A", "4", "5", "7")
    assert a.residue_names == ("GLY", "ALA", "SER", "THR", "MSE", "VAL", "ARG")
    assert a.coords.dtype == np.float64 and a.coords.shape == (7, 4, 3)
    # Altlocs: N tie -> label A (unshifted); CA -> B (occupancy 0.6, unshifted).
    np.testing.assert_allclose(a.coords[1], HELIX[1], atol=1e-3)
    np.testing.assert_allclose(a.coords[:6], HELIX[:6], atol=1e-3)
    np.testing.assert_allclose(b.coords, HELIX[8:10], atol=1e-3)
    assert report.as_dict() == {
        "files": 1,
        "files_failed": 0,
        "failures": [],
        "models_ignored": 1,
        "chains": 3,
        "chains_empty": 1,  # W: waters only
        "residues_kept": 9,
        "modified_residues_kept": 1,  # MSE
        "hetero_residues_skipped": 5,  # 3 waters, ZN, NAG
        "residues_missing_backbone": 1,  # LYS without O
        "altloc_residues": 1,
        "insertion_code_residues": 1,
        # Skipping LYS 6 leaves VAL 5 -> ARG 7 far apart: the only break (ARG is 30 Å away anyway).
        "chain_breaks": 1,
        "chains_with_breaks": 1,
    }
    summary = report.format()
    assert "1 further models ignored" in summary and "1 missing N/CA/C/O" in summary


def test_segments_split_at_breaks(messy_file):
    (a, b), _ = read_backbones(messy_file)
    first, second = a.segments()
    assert (first.name, first.length, second.name, second.length) == ("1ABC_r_u:A/1", 6, "1ABC_r_u:A/2", 1)
    assert second.residue_ids == ("7",)
    assert [s.name for s in a.segments(min_length=2)] == ["1ABC_r_u:A/1"]
    assert b.segments() == [b]  # unbroken: itself, not renamed
    assert b.segments(min_length=3) == []
    assert a.break_mask().tolist() == [False] * 5 + [True]


def test_chain_is_read_only_and_validated():
    chain = BackboneChain("x:A", HELIX[:2], ("GLY", "GLY"), ("1", "2"))
    with pytest.raises(ValueError):
        chain.coords[0, 0, 0] = 1.0
    with pytest.raises(ValueError, match="x:A: .*2 residues but 1 names"):
        BackboneChain("x:A", HELIX[:2], ("GLY",), ("1", "2"))
    with pytest.raises(ValueError, match="shape"):
        BackboneChain("x:A", HELIX[:2, :3], ("GLY", "GLY"), ("1", "2"))


def test_gzip_and_mmcif_round_trips(messy_file, tmp_path):
    reference, ref_report = read_backbones(messy_file)

    gz = tmp_path / "gz" / "1ABC_r_u.pdb.gz"
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(messy_file.read_bytes()))
    from_gz, gz_report = read_backbones(gz)
    assert gz_report.as_dict() == ref_report.as_dict()

    structure = PDBParser(QUIET=True).get_structure("1ABC", str(messy_file))
    cif = tmp_path / "1ABC_r_u.cif"
    io = MMCIFIO()
    io.set_structure(structure)
    io.save(str(cif))
    cif_gz = tmp_path / "cifgz" / "1ABC_r_u.cif.gz"
    cif_gz.parent.mkdir()
    cif_gz.write_bytes(gzip.compress(cif.read_bytes()))

    for path in (gz, cif, cif_gz):
        chains, report = read_backbones(path)
        assert [c.name for c in chains] == [c.name for c in reference]
        for got, want in zip(chains, reference):
            np.testing.assert_allclose(got.coords, want.coords, atol=1e-3)
            assert got.residue_ids == want.residue_ids and got.residue_names == want.residue_names
        assert report.residues_kept == 9 and report.altloc_residues == 1 and report.models_ignored == 1


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("a.xyz", b"ATOM", "unknown structure file extension"),
        ("a.pdb.gz", b"not gzip at all", "cannot read file"),
        ("a.pdb.gz", gzip.compress(b"ATOM  ")[:-6], "cannot read file"),  # truncated
        ("a.pdb", b"", "empty file"),
        ("a.cif.gz", gzip.compress(b"  \n"), "empty file"),
        ("a.pdb", b"HEADER    NOTHING\nEND\n", "no atoms"),
        ("a.ent", b"\x00\x01\x02garbage", "no atoms"),
        (
            "a.pdb",
            atom(1, "CA", "GLY", "A", 1, (0.0, 0.0, 0.0)).replace("   0.000", "     nan", 1).encode(),
            "non-finite",
        ),
        ("a.pdb", atom(1, "CA", "GLY", "A", 1, (0.0, 0.0, 0.0)).replace("   0.000", "    abcd", 1).encode(), "parse"),
        ("a.cif", b"data_x\nloop_\n_atom_site.id\n", "parse"),
    ],
)
def test_bad_files_raise_structure_error(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(StructureError, match=reason) as info:
        read_backbones(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert info.value.path == path


def test_missing_file(tmp_path):
    with pytest.raises(StructureError, match="no such file"):
        read_backbones(tmp_path / "missing.pdb")


def test_folder_counts_failures_and_sorts(tmp_path, messy_file):
    sub = tmp_path / "sub"
    sub.mkdir()
    write_backbone_pdb(sub / "2XYZ_l_u.pdb", HELIX[:5])
    (tmp_path / "0BAD_l_u.pdb").write_text("")
    (tmp_path / "notes.txt").write_text("not a structure")

    chains, report = read_backbone_folder(tmp_path, progress=False)
    assert [c.name for c in chains] == ["1ABC_r_u:A", "1ABC_r_u:B", "2XYZ_l_u:A"]
    assert (report.files, report.files_failed) == (2, 1)
    assert report.failures == [(str(tmp_path / "0BAD_l_u.pdb"), "empty file")]
    assert report.residues_kept == 9 + 5 and "0BAD_l_u.pdb: empty file" in report.format()

    flat, flat_report = read_backbone_folder(tmp_path, recursive=False, progress=False)
    assert [c.name for c in flat] == ["1ABC_r_u:A", "1ABC_r_u:B"] and flat_report.files == 1


def test_folder_errors(tmp_path):
    with pytest.raises(StructureError, match="does not exist"):
        read_backbone_folder(tmp_path / "nope", progress=False)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(StructureError, match="no structure files"):
        read_backbone_folder(tmp_path, progress=False)
    (tmp_path / "a.pdb").write_text("")
    (tmp_path / "b.pdb").write_text("HEADER\n" + atom(1, "O", "HOH", "A", 1, (0, 0, 0), het=True) + "\n")
    with pytest.raises(StructureError, match="no readable backbone chain in 2 structure files"):
        read_backbone_folder(tmp_path, progress=False)


def test_report_addition():
    a = ParseReport(files=1, chains=2, residues_kept=10, failures=[("x", "bad")], files_failed=1)
    b = ParseReport(files=2, chains=1, residues_kept=5, chain_breaks=3)
    total = a + b
    assert (total.files, total.chains, total.residues_kept, total.chain_breaks, total.files_failed) == (3, 3, 15, 3, 1)
    assert total.failures == [("x", "bad")] and a.residues_kept == 10  # operands untouched
    assert total.as_dict()["failures"] == [["x", "bad"]]


# --------------------------------------------------------------------------- #
# Writer
# --------------------------------------------------------------------------- #


def parse_like_proteinmpnn(text: str) -> tuple[list, list[str]]:
    """(atom rows, other lines) read by fixed column slices, as ProteinMPNN's parse_PDB does."""
    rows, other = [], []
    for line in text.splitlines():
        if line[:4] == "ATOM":
            rows.append(
                {
                    "serial": int(line[6:11]),
                    "atom": line[12:16],
                    "altloc": line[16],
                    "resn": line[17:20],
                    "chain": line[21],
                    "resi": int(line[22:26]),
                    "icode": line[26],
                    "xyz": (float(line[30:38]), float(line[38:46]), float(line[46:54])),
                    "occ": line[54:60],
                    "b": line[60:66],
                    "element": line[76:78],
                }
            )
        else:
            other.append(line)
    return rows, other


def test_writer_fixed_columns():
    coords = HELIX[:3] + np.array([-500.0, 0.0, 1000.0])
    rows, other = parse_like_proteinmpnn(format_backbone_pdb(coords))
    assert len(rows) == 12
    assert [r["atom"] for r in rows[:4]] == [" N  ", " CA ", " C  ", " O  "]
    assert [r["element"] for r in rows[:4]] == [" N", " C", " C", " O"]
    assert [r["serial"] for r in rows] == list(range(1, 13))
    assert [r["resi"] for r in rows] == [1] * 4 + [2] * 4 + [3] * 4
    assert {(r["resn"], r["chain"], r["altloc"], r["icode"], r["occ"], r["b"]) for r in rows} == {
        ("GLY", "A", " ", " ", "  1.00", "  0.00")
    }
    np.testing.assert_allclose(np.array([r["xyz"] for r in rows]).reshape(3, 4, 3), coords, atol=5e-4)
    ter, end = other
    assert ter[:6] == "TER   " and int(ter[6:11]) == 13
    assert (ter[17:20], ter[21], int(ter[22:26])) == ("GLY", "A", 3)
    assert end == "END"


def test_writer_options_and_limits():
    rows, _ = parse_like_proteinmpnn(format_backbone_pdb(HELIX[:1], chain_id="B", residue_name="ALA"))
    assert {(r["resn"], r["chain"]) for r in rows} == {("ALA", "B")}
    extreme = np.zeros((1, 4, 3))
    extreme[0, 0] = (-999.999, 9999.999, 0.0)
    rows, _ = parse_like_proteinmpnn(format_backbone_pdb(extreme))
    assert rows[0]["xyz"] == (-999.999, 9999.999, 0.0)
    for bad, match in [
        (np.zeros((3, 3, 3)), "shape"),
        (np.zeros((0, 4, 3)), "at least 1"),
        (np.full((1, 4, 3), np.nan), "finite"),
        (np.zeros((10_000, 4, 3)), "at most 9999"),
        (np.full((1, 4, 3), 10_000.0), "-999.999..9999.999"),
        (np.full((1, 4, 3), -1000.0), "-999.999..9999.999"),
    ]:
        with pytest.raises(ValueError, match=match):
            format_backbone_pdb(bad)
    with pytest.raises(ValueError, match="chain_id"):
        format_backbone_pdb(HELIX[:1], chain_id="AB")
    with pytest.raises(ValueError, match="residue_name"):
        format_backbone_pdb(HELIX[:1], residue_name="GLYX")
    text = format_backbone_pdb(HELIX[:2], remarks=["motif A3-8 at 6-11"])
    assert text.splitlines()[0] == "REMARK  99 motif A3-8 at 6-11"
    assert PDBParser(QUIET=True).get_structure("x", io.StringIO(text))[0]["A"].child_list[1].id[1] == 2
    for remark in ("x" * 70, "two\nlines"):
        with pytest.raises(ValueError, match="remark"):
            format_backbone_pdb(HELIX[:1], remarks=[remark])


def test_write_read_round_trip(tmp_path):
    path = write_backbone_pdb(tmp_path / "sample_0.pdb", HELIX)
    assert path == tmp_path / "sample_0.pdb"
    (chain,), report = read_backbones(path)
    assert chain.name == "sample_0:A" and chain.residue_ids == tuple(str(i) for i in range(1, 13))
    assert set(chain.residue_names) == {"GLY"}
    np.testing.assert_allclose(chain.coords, HELIX, atol=1e-3)
    assert (report.chain_breaks, report.residues_missing_backbone, report.hetero_residues_skipped) == (0, 0, 0)


def test_writer_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "keep.pdb"
    path.write_text("original\n")
    with pytest.raises(ValueError):
        write_backbone_pdb(path, np.full((2, 4, 3), np.inf))
    assert path.read_text() == "original\n"

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_backbone_pdb(path, HELIX)
    assert path.read_text() == "original\n"
    assert os.listdir(tmp_path) == ["keep.pdb"]  # no temp file left behind


# --------------------------------------------------------------------------- #
# Real data
# --------------------------------------------------------------------------- #


def _polymer_residue_counts(path: Path) -> dict[str, int]:
    """Polymer residues per chain of ``path`` (ATOM records and modified-residue HETATM records of
    the first model), counted from the text without Biopython."""
    seen: dict[str, set] = {}
    with gzip.open(path, "rt") as f:
        for line in f:
            if line.startswith("ENDMDL"):
                break
            if line.startswith("ATOM") or (line.startswith("HETATM") and line[17:20] in MODIFIED_RESIDUES):
                seen.setdefault(line[21].strip() or "_", set()).add(line[22:27])
    return {chain: len(keys) for chain, keys in seen.items()}


@pytest.mark.shared_data
def test_db55_counts(shared_proteins):
    """db55's README: 542 files, 719 chains, 528 chains of 40-256 residues with complete N/CA/C/O
    (443 without a chain break). Measured here, see the issue 4 report for the analysis:

    - 720 chains keep at least one residue, 719 at least two: the README's 719 leaves out
      3H11_r_u:B, a peptide inhibitor whose only standard residue is one ASP among
      non-standard HETATM residues.
    - "Complete N/CA/C/O" is taken as: no polymer residue of the chain was skipped for a
      missing backbone atom (kept length == polymer residue count of the file). That gives
      527 chains of 40-256 residues, 435 of them without a chain break (README: 528, 443).
    """
    root = shared_proteins / "db55"
    chains, report = read_backbone_folder(root, progress=False)
    assert (report.files, report.files_failed, report.models_ignored) == (542, 0, 0)
    assert len(chains) == report.chains - report.chains_empty == 720
    assert sum(c.length >= 2 for c in chains) == 719
    assert [c.name for c in chains if c.length < 2] == ["3H11_r_u:B"]

    polymer = {
        f"{path.name[: -len('.pdb.gz')]}:{chain}": n
        for path in sorted(root.glob("*.pdb.gz"))
        for chain, n in _polymer_residue_counts(path).items()
    }
    assert sum(polymer[c.name] - c.length for c in chains) == report.residues_missing_backbone
    complete = [c for c in chains if 40 <= c.length <= 256 and c.length == polymer[c.name]]
    assert len(complete) == 527
    assert sum(not c.break_mask().any() for c in complete) == 435

"""Backbone validation: ideal structures pass, each planted defect trips its own counter."""

import json

import numpy as np
import pytest

from molgen.proteins import geometry as g
from molgen.proteins import metrics as m

TOL = m.Tolerances()


def rotate_about(coords: np.ndarray, origin: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rodrigues rotation of points ``[..., 3]`` about a line."""
    k = axis / np.linalg.norm(axis)
    t = np.radians(degrees)
    v = coords - origin
    return origin + v * np.cos(t) + np.cross(k, v) * np.sin(t) + k * (v @ k)[..., None] * (1 - np.cos(t))


def stretch_peptide(coords: np.ndarray, k: int, by: float) -> np.ndarray:
    """Move residues k+1.. along C(k)→N(k+1): only that C–N bond length changes."""
    out = coords.copy()
    direction = out[k + 1, 0] - out[k, 2]
    out[k + 1 :] += by * direction / np.linalg.norm(direction)
    return out


def bend_n_ca_c(coords: np.ndarray, k: int, degrees: float) -> np.ndarray:
    """Rotate C(k), O(k) and residues k+1.. about CA(k), normal to the N–CA–C plane: only N–CA–C(k) changes."""
    out = coords.copy()
    n, ca, c = out[k, 0], out[k, 1], out[k, 2]
    normal = np.cross(n - ca, c - ca)
    out[k, 2:] = rotate_about(out[k, 2:], ca, normal, degrees)
    out[k + 1 :] = rotate_about(out[k + 1 :], ca, normal, degrees)
    return out


def strand_with(length: int = 20, **dihedrals) -> np.ndarray:
    """Ideal strand with some dihedrals overridden: ``phi={index: degrees}``, ``psi=...``, ``omega=...``."""
    values = {
        "phi": np.full(length, g.STRAND_PHI_PSI[0]),
        "psi": np.full(length, g.STRAND_PHI_PSI[1]),
        "omega": np.full(length, 180.0),
    }
    for name, changes in dihedrals.items():
        for index, value in changes.items():
            values[name][index] = value
    return g.build_backbone(values["phi"], values["psi"], values["omega"])


def assert_only(result: m.BackboneValidation, *problems: str) -> None:
    """Exactly the named counters are non-zero."""
    counters = {
        "bond_length": result.bond_length_outliers.sum(),
        "bond_angle": result.bond_angle_outliers.sum(),
        "omega": result.omega_outliers.sum(),
        "cis": result.cis_peptides.sum(),
        "chain_break": result.num_chain_breaks,
        "ca_clash": result.num_ca_clashes,
        "atom_clash": result.num_atom_clashes,
    }
    assert {k for k, v in counters.items() if v} == set(problems), counters


def test_ideal_helix_passes_every_check():
    result = m.validate_backbone(g.ideal_helix(30))
    assert_only(result)
    assert result.passes and result.residue_pass_fraction == 1.0
    assert not result.clashes.any()
    np.testing.assert_allclose(result.ca_distances, g.CA_CA_DISTANCE, atol=0.01)
    fractions = m.secondary_structure_fractions(result.secondary_structure)
    assert fractions["helix"] >= 0.9 and fractions["strand"] == 0.0
    expected_ratio = g.radius_of_gyration(g.ideal_helix(30)) / (2.2 * 30**0.38)
    assert result.rg_ratio == pytest.approx(expected_ratio)
    assert result.rg_ratio > 1.2  # a 30-residue rod is less compact than a globule


def test_ideal_strand_is_strand_or_coil_not_helix():
    result = m.validate_backbone(g.ideal_strand(30))
    assert_only(result)
    assert result.passes
    fractions = m.secondary_structure_fractions(result.secondary_structure)
    assert fractions["helix"] == 0.0
    assert fractions["strand"] + fractions["coil"] == 1.0


def test_paired_strands_are_called_strand():
    # Antiparallel partner: the strand turned 180° about the sheet normal through a point 2.7 Å
    # beside CA(5), so O(5)···N'(5) is 2.9 Å (a hydrogen bond) and CA(5)-CA'(5) 5.4 Å.
    strand = g.ideal_strand(12)
    ca = strand[:, 1]
    along = (ca[-1] - ca[0]) / np.linalg.norm(ca[-1] - ca[0])
    side = strand[5, 3] - strand[5, 2]
    side = side - (side @ along) * along
    side /= np.linalg.norm(side)
    partner = rotate_about(strand, ca[5] + 2.7 * side, np.cross(along, side), 180.0)
    assert np.linalg.norm(strand[5, 3] - partner[5, 0]) == pytest.approx(2.9, abs=0.05)
    states = m.dssp(np.concatenate([strand, partner]))
    # The strands twist apart away from the centre: three residues each are bridged.
    assert states[4:7] == states[16:19] == "EEE" and "H" not in states


@pytest.mark.parametrize("by, detected", [(0.07, False), (0.09, True), (-0.09, True)])
def test_stretched_bond_detected_at_its_residue(by, detected):
    result = m.validate_backbone(stretch_peptide(g.ideal_helix(30), 10, by))
    assert result.bond_lengths["C-N"][10] == pytest.approx(g.BOND_C_N + by)
    if detected:
        assert_only(result, "bond_length")
        assert np.flatnonzero(result.bond_length_outliers).tolist() == [10]
    else:
        assert_only(result)
    assert result.passes  # one residue in 30 is within the 90 % allowance


def test_many_stretched_bonds_fail():
    coords = g.ideal_helix(30)
    for k in (3, 8, 13, 18):  # 4 / 30 = 13 % of residues > 10 % allowed
        coords = stretch_peptide(coords, k, 0.2)
    result = m.validate_backbone(coords)
    assert_only(result, "bond_length")
    assert result.residue_pass_fraction == pytest.approx(26 / 30)
    assert not result.passes


@pytest.mark.parametrize("degrees, detected", [(8.0, False), (12.0, True), (-12.0, True)])
def test_bent_n_ca_c_angle(degrees, detected):
    result = m.validate_backbone(bend_n_ca_c(g.ideal_strand(20), 9, degrees))
    assert abs(result.bond_angles["N-CA-C"][9] - g.ANGLE_N_CA_C) == pytest.approx(abs(degrees))
    if detected:
        assert_only(result, "bond_angle")
        assert np.flatnonzero(result.bond_angle_outliers).tolist() == [9]
    else:
        assert_only(result)


def test_many_bent_angles_fail():
    coords = g.ideal_strand(20)
    for k in (2, 6, 10, 14):
        coords = bend_n_ca_c(coords, k, 15.0)
    result = m.validate_backbone(coords)
    assert_only(result, "bond_angle")
    assert not result.passes


def test_cis_peptide_is_counted_not_an_outlier():
    result = m.validate_backbone(strand_with(omega={9: 0.0}))
    assert_only(result, "cis")
    assert np.flatnonzero(result.cis_peptides).tolist() == [9]

    # Planar cis peptide with C at the origin and N on +x: both CA atoms on the +y side.
    def unit(degrees):
        return np.array([np.cos(np.radians(degrees)), np.sin(np.radians(degrees))])

    ca_i = g.BOND_CA_C * unit(g.ANGLE_CA_C_N)
    ca_next = np.array([g.BOND_C_N, 0.0]) + g.BOND_N_CA * unit(180.0 - g.ANGLE_C_N_CA)
    expected = np.linalg.norm(ca_next - ca_i)
    assert result.ca_distances[9] == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(2.77, abs=0.01)  # real cis peptides: ~2.9 Å
    assert result.passes


def test_non_planar_omega_is_an_outlier():
    result = m.validate_backbone(strand_with(omega={9: 140.0}))  # 40° from trans
    assert_only(result, "omega")
    assert np.flatnonzero(result.omega_outliers).tolist() == [9]
    assert result.passes  # a single residue
    many = m.validate_backbone(strand_with(omega={k: 120.0 for k in (2, 6, 10, 14)}))
    assert many.omega_outliers.sum() == 4 and not many.passes


def test_chain_break_detected():
    coords = g.ideal_helix(30)
    coords[15:] += np.array([5.0, 0.0, 0.0])
    result = m.validate_backbone(coords)
    assert result.ca_distances[14] > g.CHAIN_BREAK_CA_DISTANCE
    assert result.num_chain_breaks == 1 and np.flatnonzero(result.chain_breaks).tolist() == [14]
    assert result.num_clashes == 0
    assert not result.passes  # even though 29 of 30 residues have ideal geometry
    assert result.residue_pass_fraction >= TOL.min_residue_pass_fraction


def test_chain_folded_onto_itself_clashes():
    # A turn that sends the chain back through itself (found by a grid search over the three dihedrals).
    result = m.validate_backbone(strand_with(phi={7: 30, 8: -30, 9: -60}, psi={7: -180, 8: -90, 9: -60}))
    assert_only(result, "ca_clash", "atom_clash")
    assert result.residue_pass_fraction == 1.0  # covalent geometry stays ideal
    assert not result.passes


def test_heavy_atom_clash_without_ca_clash():
    # phi 0 at residue 6 swings O(4) onto O(7) (1.17 Å) while every CA pair stays >= 4.8 Å apart.
    coords = strand_with(12, phi={5: -30, 6: 0}, psi={5: -150, 6: -30})
    result = m.validate_backbone(coords)
    assert np.linalg.norm(coords[4, 3] - coords[7, 3]) == pytest.approx(1.17, abs=0.01)
    assert_only(result, "atom_clash")
    assert result.clashes[[4, 7]].all()
    assert not result.passes


def test_find_clashes_matches_brute_force():
    rng = np.random.default_rng(0)
    # A crumpled chain: random dihedrals produce many close contacts at all ranges.
    coords = g.build_backbone(*rng.uniform(-180, 180, size=(2, 60)))
    mask, ca_clashes, atom_clashes = m.find_clashes(coords, TOL)
    flat = coords.reshape(-1, 3)
    residue = np.repeat(np.arange(60), 4)
    radii = np.tile(g.VDW_RADII, 60)
    dist = np.linalg.norm(flat[:, None] - flat[None], axis=-1)
    pairs = np.triu(residue[None] - residue[:, None] >= 2) & (dist < TOL.atom_clash_scale * (radii[:, None] + radii))
    assert atom_clashes == pairs.sum() > 0
    ca = coords[:, 1]
    ca_pairs = np.triu(np.linalg.norm(ca[:, None] - ca[None], axis=-1) < TOL.ca_clash, k=2)
    assert ca_clashes == ca_pairs.sum()
    expected = np.zeros(60, dtype=bool)
    for i, j in zip(*np.nonzero(ca_pairs)):
        expected[[i, j]] = True
    for p, q in zip(*np.nonzero(pairs)):
        expected[[residue[p], residue[q]]] = True
    np.testing.assert_array_equal(mask, expected)


def test_short_chain_secondary_structure_is_coil():
    assert m.validate_backbone(g.ideal_helix(5)).secondary_structure == "-----"


@pytest.mark.parametrize(
    "coords, match",
    [(np.zeros((1, 4, 3)), "at least 2"), (np.full((4, 4, 3), np.inf), "finite"), (np.zeros((4, 3, 3)), "shape")],
)
def test_validate_rejects_bad_input(coords, match):
    with pytest.raises(ValueError, match=match):
        m.validate_backbone(coords)


def test_tm_score_self_and_rotated_copy_are_one():
    pytest.importorskip("tmtools")
    helix, strand = g.ideal_helix(40), g.ideal_strand(40)
    axis = np.array([0.3, -1.0, 0.5])
    rotated = rotate_about(helix, np.array([4.0, 1.0, -2.0]), axis, 73.0) + np.array([10.0, -5.0, 3.0])
    scores = m.pairwise_tm_scores([helix, helix, rotated, strand])
    assert scores.shape == (4, 4)
    np.testing.assert_allclose(scores[:3, :3], 1.0, atol=1e-6)
    assert scores[0, 3] < 0.5 and scores[3, 0] < 0.5
    summary = m.tm_diversity(scores)
    assert summary["num_pairs"] == 6
    assert summary["pairs_below_0.5_fraction"] == pytest.approx(0.5)  # the 3 pairs with the strand


def test_tm_scores_none_without_tmtools(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tmtools", None)  # makes `import tmtools` raise ImportError
    assert m.pairwise_tm_scores([g.ideal_helix(10), g.ideal_helix(12)]) is None
    report = m.evaluate_backbones([g.ideal_helix(10), g.ideal_helix(12)])
    assert report["diversity"] == {}
    assert any("tmtools is not installed" in note for note in report["notes"])


def test_evaluate_report_is_json_ready_and_correct():
    broken = g.ideal_helix(30)
    broken[15:] += np.array([5.0, 0.0, 0.0])
    backbones = [g.ideal_helix(30), g.ideal_strand(30), broken.astype(np.float32), g.ideal_helix(1)]
    report = m.evaluate_backbones(backbones, tm_score=False)
    assert json.loads(json.dumps(report)) == report  # plain types only
    assert report["input"]["num_structures"] == 3 and report["input"]["num_too_short"] == 1
    validity = report["validity"]
    assert validity["passing_fraction"] == pytest.approx(2 / 3)
    assert validity["no_chain_break_fraction"] == pytest.approx(2 / 3)
    assert validity["chain_breaks_per_structure"] == pytest.approx(1 / 3)
    assert report["geometry"]["N-CA-C_ideal"] == g.ANGLE_N_CA_C
    assert report["geometry"]["N-CA_mean"] == pytest.approx(g.BOND_N_CA, abs=1e-5)  # float32 input
    ss = report["secondary_structure"]
    assert ss["helix_mean_fraction"] + ss["strand_mean_fraction"] + ss["coil_mean_fraction"] == pytest.approx(1.0)
    assert ss["helix_pooled_fraction"] > 0.5  # two helices of three structures
    text = m.format_backbone_report(report)
    assert "[validity]" in text and "66.67 %" in text and "N-CA-C_ideal" in text


def test_evaluate_rejects_nothing_to_evaluate():
    with pytest.raises(ValueError, match="at least 2 residues"):
        m.evaluate_backbones([g.ideal_helix(1)])


def test_evaluate_with_tm_subset():
    pytest.importorskip("tmtools")
    backbones = [g.ideal_helix(20 + k) for k in range(4)] + [g.ideal_strand(25)]
    report = m.evaluate_backbones(backbones, tm_max_structures=3, seed=1)
    assert report["diversity"]["num_structures"] == 3 and report["diversity"]["num_pairs"] == 3


@pytest.mark.shared_data
def test_real_db55_segments_pass(shared_proteins):
    from molgen.proteins.pdb import find_structure_files, read_backbones

    chains = []
    for path in find_structure_files(shared_proteins / "db55"):
        chains += read_backbones(path)[0]
        if len(chains) >= 30:
            break
    segments = [s.coords for c in chains[:30] for s in c.segments(min_length=2)]
    results = [m.validate_backbone(s) for s in segments]
    assert len(results) >= 30
    assert np.mean([r.passes for r in results]) >= 0.95
    assert all(r.num_chain_breaks == 0 for r in results)
    pooled = m.secondary_structure_fractions("".join(r.secondary_structure for r in results))
    assert 0.45 <= pooled["helix"] + pooled["strand"] <= 0.75  # natural domains: ~61 %
    assert pooled["helix"] > 0.1 and pooled["strand"] > 0.1
    ca_ca = np.concatenate([r.ca_distances for r in results])
    assert np.median(ca_ca) == pytest.approx(g.CA_CA_DISTANCE, abs=0.02)


def test_helical_handedness_tells_a_helix_from_its_mirror_image():
    helix = g.ideal_helix(20)
    right = m.helical_handedness([helix])
    assert right == {"right_helical_torsion_fraction": 1.0, "left_helical_torsion_fraction": 0.0}
    left = m.helical_handedness([-helix])  # the mirror image: a left-handed helix
    assert left == {"right_helical_torsion_fraction": 0.0, "left_helical_torsion_fraction": 1.0}
    strand = m.helical_handedness([g.ideal_strand(20), helix[:3]])  # too short a chain adds nothing
    assert strand["right_helical_torsion_fraction"] == strand["left_helical_torsion_fraction"] == 0.0
    report = m.evaluate_backbones([helix, -helix], tm_score=False)["secondary_structure"]
    assert report["right_helical_torsion_fraction"] == report["left_helical_torsion_fraction"] == 0.5

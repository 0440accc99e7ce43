"""Backbone validation: is a ``[L, 4, 3]`` backbone (N, CA, C, O; Å) physically plausible?

Per structure, :func:`validate_backbone` checks covalent geometry against Engh–Huber
ideal values, peptide planarity, chain continuity, steric clashes, secondary structure
(DSSP) and compactness. :func:`evaluate_backbones` summarises a set of structures,
adding TM-score diversity (optional ``tmtools``), into a JSON-ready dict that
:func:`format_backbone_report` prints as a table.

Default tolerances (:class:`Tolerances`) come from the spread measured on real chains,
read with :func:`molgen.proteins.pdb.read_backbone_folder` from ``../shared/data/proteins``
and split at chain breaks: 955 segments of Docking Benchmark 5.5 (149,262 residues) and
430 of DIPS (55,207 residues):

- bond lengths: SD 0.008–0.017 Å around Engh–Huber (robust SD 0.004–0.009 Å). The
  tolerance 0.08 Å is 4 σ of Engh–Huber's own σ ≈ 0.02 Å (MolProbity's 4 σ outlier
  rule) and flags 0.007–0.04 % of real bonds.
- bond angles: N–CA–C is the widest (SD 2.8–3.2°, robust 2.4–2.8°, Engh–Huber σ ≈ 2.7°,
  it varies with phi/psi and residue type). 10° ≈ 4 σ flags 0.75 % (db55) / 0.34 % (DIPS)
  of N–CA–C angles and ≤ 0.13 % of CA–C–O, CA–C–N, C–N–CA.
- omega: 99.5–99.7 % of real peptides lie within 30° of 180° (trans), 0.2–0.4 % within
  30° of 0° (cis: legitimate, counted apart), 0.03–0.06 % in between (outliers).
- clashes, between atoms of residues ``|i − j| ≥ 2`` (never bonded, not neighbours):
  CA–CA < 3.0 Å (2 of 1,385 real segments), and any backbone heavy-atom pair closer than
  0.7 × the sum of their Bondi van der Waals radii (N 1.55, C 1.70, O 1.52 Å), i.e.
  N···O < 2.15 Å, well short of backbone hydrogen bonds (2.8–3.0 Å), up to C···C < 2.38 Å.
  Of the 40–256-residue segments, 9 of 692 (db55) and 2 of 217 (DIPS) have such a clash;
  a scale of 0.75 would flag 31 and 12.
- a structure passes with no chain break, no clash and at least 90 % of its residues
  free of bond-length, bond-angle and omega outliers. Outliers cluster in a few
  low-resolution entries (worst 40–256-residue segment: 75 % of residues clean), so a
  stricter share fails real proteins: 97.8 % (db55) / 99.5 % (DIPS) of segments reach
  90 %, only 94.5 % / 99.1 % reach 95 %. Overall 96.4 % / 98.6 % of real segments pass.

Secondary structure: DSSP reduced to three states (H: alpha, 3-10 and pi helix;
E: strand and bridge; coil) by ``pydssp``, which places the amide H itself and
treats every residue as a donor (prolines included, the sequence is unknown).
Handedness: the fractions of CA virtual torsions in the right- and left-handed helix
ranges (:func:`helical_handedness`), since a left-handed helix is no DSSP helix. Strand
pairing: the extended CA-trace residues and the share of them with an extended partner
within 5.5 Å (:func:`strand_pairing`), since a DSSP strand needs its partner.

Compactness: CA radius of gyration over the natural scaling of folded globular
proteins, Rg ≈ 2.2 · L^0.38 Å (Skolnick, Kolinski & Ortiz 1997, J. Mol. Biol. 265,
217–241); ratio ≈ 1 for compact domains, larger for extended or multi-domain chains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from molgen.proteins.geometry import (
    CHAIN_BREAK_CA_DISTANCE,
    IDEAL_BOND_ANGLES,
    IDEAL_BOND_LENGTHS,
    VDW_RADII,
    as_backbone,
    backbone_dihedrals,
    bond_angles,
    bond_lengths,
    ca_distances,
    dihedral,
    radius_of_gyration,
)
from molgen.proteins.internal_coordinates import ca_internal_coordinates
from molgen.reports import format_sections

#: Natural radius-of-gyration scaling Rg = prefactor · L^exponent (Å), Skolnick et al. 1997.
RG_PREFACTOR = 2.2
RG_EXPONENT = 0.38
#: pydssp needs this many residues; shorter chains are reported as all coil.
MIN_DSSP_RESIDUES = 6
#: TM-align needs this many residues.
MIN_TM_RESIDUES = 3
#: Pairs of structures below this TM-score are taken to have different folds.
TM_SAME_FOLD = 0.5


@dataclass(frozen=True)
class Tolerances:
    """Thresholds of :func:`validate_backbone` (rationale in the module docstring).

    Attributes:
        bond_length: largest accepted deviation from the Engh–Huber bond length (Å).
        bond_angle: largest accepted deviation from the Engh–Huber bond angle (degrees).
        omega: a peptide is trans within this many degrees of 180°, cis within this of 0°.
        chain_break: consecutive CA atoms farther apart than this are a break (Å).
        ca_clash: CA atoms of residues ``|i − j| ≥ 2`` closer than this clash (Å).
        atom_clash_scale: heavy atoms of residues ``|i − j| ≥ 2`` clash below this
            fraction of the sum of their van der Waals radii.
        min_residue_pass_fraction: fraction of residues that must be free of bond-length,
            bond-angle and omega outliers for the structure to pass.
    """

    bond_length: float = 0.08
    bond_angle: float = 10.0
    omega: float = 30.0
    chain_break: float = CHAIN_BREAK_CA_DISTANCE
    ca_clash: float = 3.0
    atom_clash_scale: float = 0.7
    min_residue_pass_fraction: float = 0.90


@dataclass
class BackboneValidation:
    """Results of :func:`validate_backbone` for one backbone of ``L`` residues.

    Per-residue masks are ``[L]`` bool. Checks spanning the peptide bond i → i+1
    (C–N length, CA–C–N and C–N–CA angles, omega, chain break) are attributed to
    residue i. Each check stands alone: a chain break is also a stretched C–N bond.
    """

    length: int
    tolerances: Tolerances
    #: Raw measurements: Å, degrees (keys as in :mod:`molgen.proteins.geometry`).
    bond_lengths: dict[str, np.ndarray]
    bond_angles: dict[str, np.ndarray]
    omega: np.ndarray  # [L] degrees, NaN for the last residue
    ca_distances: np.ndarray  # [L-1] Å
    #: Some bond (angle) of the residue deviates from Engh–Huber by more than the tolerance.
    bond_length_outliers: np.ndarray
    bond_angle_outliers: np.ndarray
    #: The following peptide bond is neither trans nor cis.
    omega_outliers: np.ndarray
    cis_peptides: np.ndarray
    #: CA(i)–CA(i+1) exceeds the chain-break distance.
    chain_breaks: np.ndarray
    #: The residue takes part in a CA–CA or heavy-atom clash.
    clashes: np.ndarray
    num_ca_clashes: int  # residue pairs
    num_atom_clashes: int  # atom pairs
    #: DSSP, one character per residue: "H" helix, "E" strand, "-" coil.
    secondary_structure: str
    radius_of_gyration: float  # Å, CA atoms

    @property
    def residue_pass(self) -> np.ndarray:
        """``[L]`` bool: the residue has no bond-length, bond-angle or omega outlier."""
        return ~(self.bond_length_outliers | self.bond_angle_outliers | self.omega_outliers)

    @property
    def residue_pass_fraction(self) -> float:
        """Fraction of residues free of bond-length, bond-angle and omega outliers."""
        return float(self.residue_pass.mean())

    @property
    def num_chain_breaks(self) -> int:
        """Consecutive CA pairs farther apart than the chain-break distance."""
        return int(self.chain_breaks.sum())

    @property
    def num_clashes(self) -> int:
        """CA–CA clashing residue pairs plus heavy-atom clashing atom pairs."""
        return self.num_ca_clashes + self.num_atom_clashes

    @property
    def passes(self) -> bool:
        """No chain break, no clash, and enough residues with ideal-enough covalent geometry."""
        return (
            self.num_chain_breaks == 0
            and self.num_clashes == 0
            and self.residue_pass_fraction >= self.tolerances.min_residue_pass_fraction
        )

    @property
    def rg_ratio(self) -> float:
        """Radius of gyration over the natural scaling 2.2 · L^0.38 Å."""
        return self.radius_of_gyration / (RG_PREFACTOR * self.length**RG_EXPONENT)

    def summary(self) -> dict:
        """Per-structure numbers, plain Python types (fractions of residues in [0, 1])."""
        return {
            "length": self.length,
            "passes": self.passes,
            "residue_pass_fraction": self.residue_pass_fraction,
            "bond_length_outlier_fraction": float(self.bond_length_outliers.mean()),
            "bond_angle_outlier_fraction": float(self.bond_angle_outliers.mean()),
            "omega_outlier_fraction": float(self.omega_outliers.mean()),
            "cis_peptide_fraction": float(self.cis_peptides.mean()),
            "chain_breaks": self.num_chain_breaks,
            "ca_clashes": self.num_ca_clashes,
            "atom_clashes": self.num_atom_clashes,
            **{f"{k}_fraction": v for k, v in secondary_structure_fractions(self.secondary_structure).items()},
            "radius_of_gyration": self.radius_of_gyration,
            "rg_ratio": self.rg_ratio,
        }


def find_clashes(coords: np.ndarray, tolerances: Tolerances) -> tuple[np.ndarray, int, int]:
    """Steric clashes between residues ``|i − j| ≥ 2`` of a checked ``[L, 4, 3]`` backbone.

    Returns ``(clash mask [L], CA–CA clashing residue pairs, heavy-atom clashing atom pairs)``.
    Memory is O(L²) for the CA distance matrix; atom pairs are only computed for residue
    pairs whose CA atoms are close enough for any of their atoms to clash.
    """
    length = len(coords)
    ca = coords[:, 1]
    ca_dist = np.linalg.norm(ca[:, None] - ca[None], axis=-1)
    far = np.triu(np.ones((length, length), dtype=bool), k=2)
    ca_i, ca_j = np.nonzero(far & (ca_dist < tolerances.ca_clash))

    cutoff = tolerances.atom_clash_scale * (VDW_RADII[:, None] + VDW_RADII[None])  # [4, 4]
    # Measured reach of each residue's atoms from its CA, so distorted residues are not missed.
    reach = np.linalg.norm(coords - ca[:, None], axis=-1).max(axis=1)
    near = far & (ca_dist < reach[:, None] + reach[None] + cutoff.max())
    res_i, res_j = np.nonzero(near)
    atom_dist = np.linalg.norm(coords[res_i][:, :, None] - coords[res_j][:, None], axis=-1)  # [P, 4, 4]
    atom_clash = (atom_dist < cutoff).any(axis=(1, 2))

    mask = np.zeros(length, dtype=bool)
    mask[np.concatenate([ca_i, ca_j, res_i[atom_clash], res_j[atom_clash]])] = True
    return mask, len(ca_i), int((atom_dist < cutoff).sum())


def dssp(coords: np.ndarray) -> str:
    """Three-state DSSP string ("H", "E", "-") of a checked ``[L, 4, 3]`` backbone."""
    if len(coords) < MIN_DSSP_RESIDUES:
        return "-" * len(coords)
    import pydssp  # imports torch (~2 s): paid only when DSSP runs

    return "".join(pydssp.assign(coords, out_type="c3"))


def secondary_structure_fractions(states: str) -> dict[str, float]:
    """``{"helix", "strand", "coil"}`` fractions of residues in a three-state DSSP string."""
    codes = np.frombuffer(states.encode(), dtype="S1")
    return {name: float(np.mean(codes == code)) for name, code in (("helix", b"H"), ("strand", b"E"), ("coil", b"-"))}


def validate_backbone(coords, tolerances: Tolerances = Tolerances()) -> BackboneValidation:
    """Validate one backbone ``[L, 4, 3]`` (N, CA, C, O; Å), L >= 2.

    Raises:
        ValueError: wrong shape, fewer than 2 residues, or non-finite coordinates.
    """
    x = as_backbone(coords, min_residues=2)
    length = len(x)
    lengths, angles = bond_lengths(x), bond_angles(x)
    _, _, omega = backbone_dihedrals(x)
    ca_ca = ca_distances(x)

    def per_residue(measured: dict[str, np.ndarray], ideal: dict[str, float], tolerance: float) -> np.ndarray:
        # Inter-residue terms have L-1 entries; padding with False attributes them to residue i.
        mask = np.zeros(length, dtype=bool)
        for name, values in measured.items():
            mask[: len(values)] |= np.abs(values - ideal[name]) > tolerance
        return mask

    # NaN omega of the last residue compares False everywhere: neither cis, trans nor outlier.
    trans = 180.0 - np.abs(omega) <= tolerances.omega
    cis = np.abs(omega) <= tolerances.omega
    clash_mask, ca_clashes, atom_clashes = find_clashes(x, tolerances)
    return BackboneValidation(
        length=length,
        tolerances=tolerances,
        bond_lengths=lengths,
        bond_angles=angles,
        omega=omega,
        ca_distances=ca_ca,
        bond_length_outliers=per_residue(lengths, IDEAL_BOND_LENGTHS, tolerances.bond_length),
        bond_angle_outliers=per_residue(angles, IDEAL_BOND_ANGLES, tolerances.bond_angle),
        omega_outliers=np.isfinite(omega) & ~trans & ~cis,
        cis_peptides=cis,
        chain_breaks=np.append(ca_ca > tolerances.chain_break, False),
        clashes=clash_mask,
        num_ca_clashes=ca_clashes,
        num_atom_clashes=atom_clashes,
        secondary_structure=dssp(x),
        radius_of_gyration=radius_of_gyration(x),
    )


def pairwise_tm_scores(backbones) -> np.ndarray | None:
    """TM-scores between all pairs of backbones by TM-align on CA atoms (poly-glycine sequences).

    Entry ``[i, j]`` is the score of the ``i``–``j`` alignment normalised by the length of
    structure ``i`` (so the matrix is asymmetric when lengths differ); the diagonal is 1.
    One TM-align run per unordered pair (about 20–70 ms for 150 residues).

    Returns:
        ``[N, N]`` float array, or None when the optional ``tmtools`` (GPL) is not installed.

    Raises:
        ValueError: a backbone with a wrong shape, non-finite coordinates or fewer than 3 residues.
    """
    cas = [np.ascontiguousarray(as_backbone(b, min_residues=MIN_TM_RESIDUES)[:, 1]) for b in backbones]
    try:
        from tmtools import tm_align
    except ImportError:
        return None
    scores = np.eye(len(cas))
    for i, j in zip(*np.triu_indices(len(cas), k=1)):
        result = tm_align(cas[i], cas[j], "G" * len(cas[i]), "G" * len(cas[j]))
        scores[i, j], scores[j, i] = result.tm_norm_chain1, result.tm_norm_chain2
    return scores


def tm_diversity(scores: np.ndarray) -> dict:
    """Diversity summary of a :func:`pairwise_tm_scores` matrix ``[N, N]``, N >= 2.

    A pair's score is the mean of its two normalisations. Returns plain types:
    ``num_pairs``, ``mean_pairwise_tm``, ``max_pairwise_tm`` and
    ``pairs_below_0.5_fraction`` (pairs with different folds).
    """
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1] or len(scores) < 2:
        raise ValueError(f"need a square matrix of at least 2 structures, got shape {scores.shape}")
    i, j = np.triu_indices(len(scores), k=1)
    pair = (scores[i, j] + scores[j, i]) / 2
    return {
        "num_pairs": len(pair),
        "mean_pairwise_tm": float(pair.mean()),
        "max_pairwise_tm": float(pair.max()),
        f"pairs_below_{TM_SAME_FOLD}_fraction": float(np.mean(pair < TM_SAME_FOLD)),
    }


def evaluate_backbones(
    backbones,
    tm_score: bool = True,
    *,
    tolerances: Tolerances = Tolerances(),
    tm_max_structures: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Validate every backbone and summarise the set.

    Args:
        backbones: sequence of ``[L, 4, 3]`` arrays (Å), lengths may differ. Single-residue
            backbones cannot be validated: they are skipped and counted (``input.num_too_short``).
        tm_score: compute TM-score diversity (needs ``tmtools``; a note otherwise).
        tolerances: thresholds of :func:`validate_backbone`.
        tm_max_structures: TM-align only a seeded random subset of this many structures
            (pairs grow quadratically); None = all.
        seed: seed of that subset.
        progress: show a tqdm progress bar over the structures.

    Returns:
        A dict of sections with plain types only (see :func:`format_backbone_report`):
        ``input``, ``validity`` (means over structures), ``geometry`` (pooled over
        bonds/residues: Å, degrees), ``secondary_structure`` (``*_mean`` over structures,
        ``*_pooled`` over residues), ``compactness``, ``diversity`` and ``notes``.
        Keys ending in ``_fraction`` are fractions in [0, 1].

    Raises:
        ValueError: a backbone with a wrong shape or non-finite coordinates, or no backbone
            of at least 2 residues.
    """
    checked = [as_backbone(b) for b in backbones]
    usable = [b for b in checked if len(b) >= 2]
    if not usable:
        raise ValueError(f"no backbone of at least 2 residues to evaluate (got {len(checked)} backbones)")
    results = [
        validate_backbone(b, tolerances)
        for b in tqdm(usable, desc="Validating backbones", unit="structure", disable=not progress)
    ]
    rows = [r.summary() for r in results]

    def mean(key: str) -> float:
        return float(np.mean([row[key] for row in rows]))

    lengths = np.array([r.length for r in results])
    report: dict = {
        "input": {
            "num_structures": len(results),
            "num_too_short": len(checked) - len(usable),
            "num_residues": int(lengths.sum()),
            "length_min": int(lengths.min()),
            "length_mean": float(lengths.mean()),
            "length_max": int(lengths.max()),
        },
        "validity": {
            "passing_fraction": mean("passes"),
            "no_chain_break_fraction": float(np.mean([r.num_chain_breaks == 0 for r in results])),
            "no_clash_fraction": float(np.mean([r.num_clashes == 0 for r in results])),
            "residue_threshold_met_fraction": float(
                np.mean([r.residue_pass_fraction >= tolerances.min_residue_pass_fraction for r in results])
            ),
            "residue_pass_fraction": mean("residue_pass_fraction"),
            "bond_length_outlier_fraction": mean("bond_length_outlier_fraction"),
            "bond_angle_outlier_fraction": mean("bond_angle_outlier_fraction"),
            "omega_outlier_fraction": mean("omega_outlier_fraction"),
            "cis_peptide_fraction": mean("cis_peptide_fraction"),
            "chain_breaks_per_structure": mean("chain_breaks"),
            "ca_clashes_per_structure": mean("ca_clashes"),
            "atom_clashes_per_structure": mean("atom_clashes"),
        },
        "geometry": {},
        "secondary_structure": {},
        "compactness": {
            "radius_of_gyration_mean": mean("radius_of_gyration"),
            "rg_ratio_mean": mean("rg_ratio"),
            "rg_ratio_std": float(np.std([row["rg_ratio"] for row in rows])),
        },
        "diversity": {},
        "notes": [],
    }
    if len(usable) < len(checked):
        report["notes"].append(f"{len(checked) - len(usable)} single-residue backbones skipped")
    for measured, ideal in (("bond_lengths", IDEAL_BOND_LENGTHS), ("bond_angles", IDEAL_BOND_ANGLES)):
        for name, value in ideal.items():
            pooled = np.concatenate([getattr(r, measured)[name] for r in results])
            report["geometry"][f"{name}_mean"] = float(pooled.mean())
            report["geometry"][f"{name}_ideal"] = value
    ca_ca = np.concatenate([r.ca_distances for r in results])
    report["geometry"]["CA-CA_mean"] = float(ca_ca.mean())
    report["geometry"]["CA-CA_std"] = float(ca_ca.std())

    states = "".join(r.secondary_structure for r in results)
    pooled = secondary_structure_fractions(states)
    for name in ("helix", "strand", "coil"):
        report["secondary_structure"][f"{name}_mean_fraction"] = mean(f"{name}_fraction")
        report["secondary_structure"][f"{name}_pooled_fraction"] = pooled[name]

    report["secondary_structure"].update(helical_handedness(usable))
    report["secondary_structure"].update(strand_pairing(usable))

    if not tm_score:
        report["notes"].append("diversity: skipped (tm_score=False)")
    elif sum(len(b) >= MIN_TM_RESIDUES for b in usable) < 2:
        report["notes"].append(f"diversity: skipped, needs 2 structures of at least {MIN_TM_RESIDUES} residues")
    else:
        chosen = [b for b in usable if len(b) >= MIN_TM_RESIDUES]
        if tm_max_structures is not None and len(chosen) > tm_max_structures:
            pick = np.random.default_rng(seed).choice(len(chosen), size=tm_max_structures, replace=False)
            chosen = [chosen[k] for k in sorted(pick)]
        scores = pairwise_tm_scores(chosen)
        if scores is None:
            report["notes"].append("diversity: skipped, tmtools is not installed (pip install molgen[tm])")
        else:
            report["diversity"] = {"num_structures": len(chosen), **tm_diversity(scores)}
    return report


#: CA virtual torsion ranges (degrees) of right- and left-handed helices (the alpha helix: about +50).
RIGHT_HELIX_TORSIONS, LEFT_HELIX_TORSIONS = (20.0, 80.0), (-80.0, -20.0)


def helical_handedness(backbones) -> dict[str, float]:
    """Fractions of CA virtual torsions (residues i..i+3) in the right-handed (+20..+80 degrees) and
    left-handed (-80..-20) helix ranges, pooled over ``[L, 4, 3]`` backbones (real chains: 34-49 % and
    3-4 %); empty when no backbone has 4 residues. A reflection-equivariant model gives both alike
    (:mod:`molgen.nn.chirality`)."""
    torsions = [dihedral(c[:-3, 1], c[1:-2, 1], c[2:-1, 1], c[3:, 1]) for c in backbones if len(c) >= 4]
    if not torsions:
        return {}
    pooled = np.concatenate(torsions)
    return {
        f"{hand}_helical_torsion_fraction": float(np.mean((pooled > low) & (pooled < high)))
        for hand, (low, high) in (("right", RIGHT_HELIX_TORSIONS), ("left", LEFT_HELIX_TORSIONS))
    }


#: Strand pairing (:func:`strand_pairing_counts`): a residue is extended when its CA virtual bond angle exceeds
#: 105 degrees and its virtual torsion lies beyond +150 or -130 (an ideal strand: 120, -170); helical in the
#: right-handed region 80-100 degrees, +30..+70 (an ideal helix: 91, +50). Two extended residues at least
#: 3 apart in sequence are paired when their CA atoms are within 5.5 Å (across a beta ladder: 4.4-5.5 Å).
EXTENDED_MIN_ANGLE, EXTENDED_TORSIONS = 105.0, (150.0, -130.0)
HELICAL_ANGLES, HELICAL_TORSIONS = (80.0, 100.0), (30.0, 70.0)
PAIR_DISTANCE, PAIR_MIN_SEPARATION = 5.5, 3


def strand_pairing_counts(ca: np.ndarray) -> tuple[int, int, int, int]:
    """``(residues with defined CA angles, extended, helical, extended and paired)`` of a CA trace ``[L, 3]`` Å.

    A DSSP strand needs a partner strand in space: a model can make extended residues as often as real
    chains do and still no strands, when they are not paired (real chains: 56-65 % of extended residues).
    """
    theta, tau = (np.degrees(a) for a in ca_internal_coordinates(ca))
    defined = np.isfinite(theta) & np.isfinite(tau)
    extended = defined & (theta > EXTENDED_MIN_ANGLE) & ((tau > EXTENDED_TORSIONS[0]) | (tau < EXTENDED_TORSIONS[1]))
    helical = (
        defined
        & (theta > HELICAL_ANGLES[0])
        & (theta < HELICAL_ANGLES[1])
        & (tau > HELICAL_TORSIONS[0])
        & (tau < HELICAL_TORSIONS[1])
    )
    index = np.arange(len(ca))
    apart = np.abs(index[:, None] - index[None]) >= PAIR_MIN_SEPARATION
    close = np.linalg.norm(ca[:, None] - ca[None], axis=-1) < PAIR_DISTANCE
    paired = extended & (close & apart & extended[None]).any(axis=1)
    return int(defined.sum()), int(extended.sum()), int(helical.sum()), int(paired.sum())


def strand_pairing(backbones) -> dict[str, float]:
    """Pooled over ``[L, 4, 3]`` backbones: the fraction of residues (with defined CA angles) that are extended,
    and the fraction of those that are paired (:func:`strand_pairing_counts`); empty when no angle is defined."""
    totals = np.zeros(4, dtype=np.int64)
    for backbone in backbones:
        totals += strand_pairing_counts(backbone[:, 1])
    residues, extended, _, paired = (int(x) for x in totals)
    if residues == 0:
        return {}
    return {"extended_fraction": extended / residues, "paired_extended_fraction": paired / max(extended, 1)}


def format_backbone_report(report: dict) -> str:
    """The :func:`evaluate_backbones` report as an aligned text table, one block per section
    (keys ending in ``_fraction`` as percentages)."""
    return format_sections(report, lambda section, key, value: key.endswith("_fraction"))

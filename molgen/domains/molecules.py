"""The molecule domain: atoms as nodes, QM9 data, SDF output, chemistry validation.

Coordinate-and-type models diffuse atom-type features with the positions;
bond models (joint diffusion, docs/bonds.md) also generate formal charges and
bond orders as categorical channels. Both decode to :class:`GeneratedMolecule`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rdkit import Chem, rdBase
from torch import Tensor
from tqdm.auto import tqdm

from molgen.commands import fail, generate_on_ranks, write_json
from molgen.dataset_info import MoleculeInfo
from molgen.diffusion.inpainting import KnownPart
from molgen.diffusion.process import GraphState
from molgen.domains import DOMAINS, Domain
from molgen.graph_batch import node_batch, pair_index
from molgen.molecules.featurize import AtomFeaturizer, atomic_number, element_symbol
from molgen.molecules.fragments import Fragment, read_fragment
from molgen.molecules.hydrogens import place_hydrogens
from molgen.molecules.metrics.graph_stability import atom_stability, kekulized
from molgen.molecules.relax import RELAX_STATUSES, RelaxedMolecule, relax_molecule, relaxation_summary
from molgen.molecules.sdf import molecule_from_coordinates, molecule_from_graph
from molgen.molecules.valence_decoding import ValenceConstraint
from molgen.sampling import sample_from_histogram, seeded_generator

__all__ = ["DOMAIN", "FILTERS", "GeneratedMolecule", "MoleculeDomain"]

#: Property / SD tag of heavy-atom models' molecules: how the hydrogens were placed (HYDROGEN_PLACEMENTS).
HYDROGENS_TAG = "hydrogens"

#: SD tag of `molgen sample --relax`: the molecule's relaxation status (RELAX_STATUSES).
RELAXATION_TAG = "relaxation"

#: `molgen sample --filter` choices and the per-molecule evaluation key each keeps.
FILTERS = {"valid": "rdkit_valid", "stable": "edm_mol_stable"}


@dataclass
class GeneratedMolecule:
    """One sample: atomic numbers [n] and coordinates [n, 3] in Å (zero CoM).

    Joint models also give ``bonds`` [b, 3] int (rows ``(i, j, order)``,
    ``i < j``, order 1-3, Kekulé) and formal ``charges`` [n] int; both are
    None for coordinate-only models (bonds are then perceived from the geometry).
    ``place_hydrogens``: the model generates heavy atoms only (drug-like models);
    :meth:`to_rdkit` adds the hydrogens.
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    bonds: np.ndarray | None = None
    charges: np.ndarray | None = None
    place_hydrogens: bool = False

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.positions).all())

    @property
    def finite_positions(self) -> np.ndarray:
        """``positions`` with non-finite values set to 0 (a diverged sample stays writable)."""
        return np.nan_to_num(self.positions, nan=0.0, posinf=0.0, neginf=0.0)

    def to_rdkit(self) -> tuple[Chem.Mol, bool]:
        """RDKit molecule with a 3D conformer (``finite_positions``) and whether it has a bond graph.

        Joint models: the generated bonds and charges, never perceived (True);
        heavy-atom models get their hydrogens here
        (:func:`~molgen.molecules.hydrogens.place_hydrogens`, heavy atoms first and
        unmoved; the string property ``hydrogens`` says how they were placed).
        Coordinate-only models: bonds perceived from the geometry
        (:func:`~molgen.molecules.sdf.molecule_from_coordinates`); False when
        that failed and the molecule has atoms only.
        """
        if self.bonds is None:
            return molecule_from_coordinates(self.atomic_numbers, self.finite_positions)
        mol = molecule_from_graph(self.atomic_numbers, self.finite_positions, self.bonds, self.charges)
        if self.place_hydrogens:
            mol, placement = place_hydrogens(mol)
            mol.SetProp(HYDROGENS_TAG, placement)
        return mol, True


def _channel_classes(info: MoleculeInfo, kind: str, name: str) -> list:
    channels = info.categorical["node"] if kind == "node" else [info.categorical["edge"]]
    for channel in channels:
        if channel["name"] == name:
            return list(channel["classes"])
    raise ValueError(f"this joint checkpoint has no {kind} channel {name!r}")


def _class_indices(values: np.ndarray, classes: list, what: str, name) -> torch.Tensor:
    """Index of each value among a channel's ``classes``; ValueError naming values the model lacks."""
    lookup = {value: i for i, value in enumerate(classes)}
    missing = sorted({int(v) for v in values if int(v) not in lookup})
    if missing:
        shown = ", ".join(name(v) for v in missing)
        raise ValueError(f"the fragment has {what}s this model does not generate: {shown} (it knows {classes})")
    return torch.tensor([lookup[int(v)] for v in values], dtype=torch.long)


def _graph_ranges(state: GraphState) -> list[tuple[int, int]]:
    ptr = np.concatenate([[0], np.cumsum(state.num_nodes.cpu().numpy())])
    return list(zip(ptr[:-1].tolist(), ptr[1:].tolist()))


class MoleculeDomain(Domain):
    name = "molecules"
    unit = "molecules"
    default_batch_size = 100
    datasets = ("qm9", "qm9_bonds", "drugs")
    size_options = ("num_atoms",)
    default_output = "samples.sdf"

    def build_data(self, dataset: str, **options: Any):
        if dataset == "qm9":
            from molgen.molecules.qm9 import qm9_train_val

            return qm9_train_val(**options)
        if dataset == "drugs":  # MOSES with MMFF conformers, heavy atoms with bonds (docs/druglike.md)
            from molgen.molecules.drugs import drugs_train_val

            return drugs_train_val(**options)
        # QM9 with perceived bonds and charges, for joint models (docs/bonds.md)
        from molgen.molecules.qm9_bonds import qm9_bonds_train_val

        return qm9_bonds_train_val(**options)

    def sample_sizes(
        self, info: MoleculeInfo, num_samples: int, seed: int, num_atoms: int | tuple[int, int] | None = None
    ) -> Tensor:
        """Atoms per molecule: ``num_atoms`` for all, an inclusive range ``(lo, hi)`` drawn uniformly,
        or draws from the training histogram."""
        if num_atoms is None:
            return sample_from_histogram(info.size_histogram, num_samples, seed)
        low, high = num_atoms if isinstance(num_atoms, tuple) else (num_atoms, num_atoms)
        if not 1 <= low <= high:
            raise ValueError(f"num_atoms must be >= 1 (a range: 1 <= lo <= hi), got {num_atoms}")
        if low == high:
            return torch.full((num_samples,), low, dtype=torch.long)
        return torch.randint(low, high + 1, (num_samples,), generator=seeded_generator(seed))

    def fixed_from_options(self, opts) -> Fragment | None:
        """The fragment of ``--fix`` or ``--link``; sets ``opts.num_atoms`` to the range of sizes
        ``--linker-atoms`` asks for."""
        from molgen.domains.backbones import parse_length

        if opts.linker_atoms is not None and opts.link is None:
            raise ValueError("--linker-atoms applies only with --link")
        if opts.fix is None and opts.link is None:
            return None
        fragment = read_fragment(opts.fix or opts.link)
        k = fragment.num_atoms
        if opts.fix is not None:
            if opts.num_atoms is None:
                raise ValueError(f"--fix needs --num-atoms: the atoms of each molecule, the {k} kept included")
            if opts.num_atoms <= k:
                raise ValueError(
                    f"--num-atoms {opts.num_atoms} leaves nothing to generate around the {k} atoms of {opts.fix}"
                )
            return fragment
        if fragment.num_components < 2:
            raise ValueError(f"--link needs two or more disconnected fragments; {opts.link} has one")
        if opts.linker_atoms is None or opts.num_atoms is not None:
            raise ValueError("--link takes --linker-atoms (the atoms to generate), not --num-atoms")
        try:
            low, high = parse_length(opts.linker_atoms)
        except ValueError:
            raise ValueError(
                f"--linker-atoms must be K or MIN-MAX with 2 <= MIN <= MAX, got {opts.linker_atoms!r}"
            ) from None
        opts.num_atoms = (k + low, k + high)
        return fragment

    def known_part(self, info: MoleculeInfo, fixed: Fragment, num_nodes: Tensor, first: int) -> KnownPart:
        """The fragment's atoms as the first nodes of every molecule (whichever ``first``), in their input
        order: positions, then type features (coordinate-and-type models) or atom-type and charge
        classes and the bond classes of the pairs among them (bond models)."""
        k = fixed.num_atoms
        if (num_nodes <= k).any():
            raise ValueError(f"the molecules must have more atoms than the {k} kept, got {int(num_nodes.min())}")
        batch = node_batch(num_nodes)
        local = torch.arange(len(batch)) - (torch.cumsum(num_nodes, 0) - num_nodes)[batch]
        mask = local < k
        index = local.clamp(max=k - 1)  # the fragment atom of each node (meaningful where mask)
        z = torch.as_tensor(fixed.atomic_numbers)
        known = KnownPart(mask, torch.as_tensor(fixed.positions, dtype=torch.float64)[index])
        if info.categorical is None:
            known.h = AtomFeaturizer.from_dict(info.featurizer).encode(z)[index]
            return known
        atom_types = [atomic_number(symbol) for symbol in _channel_classes(info, "node", "atom_type")]
        classes = {
            "atom_type": _class_indices(fixed.atomic_numbers, atom_types, "element", element_symbol),
            "charge": _class_indices(fixed.charges, _channel_classes(info, "node", "charge"), "formal charge", str),
        }
        names = [channel["name"] for channel in info.categorical["node"]]
        known.node_classes = torch.stack([classes[name] for name in names], dim=1)[index]
        bond_classes = _channel_classes(info, "edge", info.categorical["edge"]["name"])
        orders = _class_indices(fixed.bonds[:, 2], bond_classes, "bond order", str)
        by_pair = torch.zeros(k, k, dtype=torch.long)  # class 0: no bond
        by_pair[fixed.bonds[:, 0], fixed.bonds[:, 1]] = orders
        pairs = pair_index(batch)
        known.pair_mask = mask[pairs[0]] & mask[pairs[1]]
        known.edge_classes = by_pair[index[pairs[0]], index[pairs[1]]]
        return known

    def class_constraint(self, info: MoleculeInfo) -> ValenceConstraint:
        """Bond models whose hydrogens are placed at export: no atom above the largest valence of its
        element and charge (:mod:`molgen.molecules.valence_decoding`).

        Only bond models get here: the sampler refuses ``constrained_decoding`` for the others.

        Raises:
            ValueError: a model that generates its hydrogens, where a lowered bond leaves a radical
                (RDKit passes it, the graph stays unstable: docs/bonds.md).
        """
        if not info.remove_h:
            raise ValueError(
                "constrained decoding applies to models whose hydrogens are placed at export (e.g. drugs); this "
                "model generates its hydrogens, so a lowered bond would leave a radical rather than gain a hydrogen"
            )
        node_names = [channel["name"] for channel in info.categorical["node"]]
        return ValenceConstraint(
            _channel_classes(info, "node", "atom_type"),
            _channel_classes(info, "node", "charge"),
            _channel_classes(info, "edge", info.categorical["edge"]["name"]),
            atom_column=node_names.index("atom_type"),
            charge_column=node_names.index("charge"),
        )

    def decode(
        self, info: MoleculeInfo, state: GraphState, fixed: Any = None, first: int = 0
    ) -> list[GeneratedMolecule]:
        """Elements from the decoded type features, or (bond models) from the generated classes
        with the charges and bonds. A fixed fragment's atoms are nodes the sampler held, so
        ``fixed`` needs nothing more here."""
        pos = state.pos.double().cpu().numpy()
        ranges = _graph_ranges(state)
        if state.node_classes is None:
            z = AtomFeaturizer.from_dict(info.featurizer).decode(state.h.cpu()).numpy()
            return [GeneratedMolecule(z[a:b], pos[a:b]) for a, b in ranges]
        elements = np.array(
            [AtomFeaturizer(atom_types=tuple(_channel_classes(info, "node", "atom_type"))).atomic_numbers],
            dtype=np.int64,
        ).reshape(-1)
        charge_values = np.array(_channel_classes(info, "node", "charge"), dtype=np.int64)
        bond_orders = np.array(_channel_classes(info, "edge", info.categorical["edge"]["name"]), dtype=np.int64)
        node_names = [channel["name"] for channel in info.categorical["node"]]
        atom_col, charge_col = node_names.index("atom_type"), node_names.index("charge")
        node_classes = state.node_classes.cpu().numpy()
        z, charges = elements[node_classes[:, atom_col]], charge_values[node_classes[:, charge_col]]
        orders = bond_orders[state.edge_classes.cpu().numpy()]
        pairs = state.pair_index.cpu().numpy()
        pair_graph = state.batch.cpu().numpy()[pairs[0]]
        molecules = []
        for g, (a, b) in enumerate(ranges):
            keep = (pair_graph == g) & (orders > 0)
            bonds = np.stack([pairs[0][keep] - a, pairs[1][keep] - a, orders[keep]], axis=1)
            molecules.append(
                GeneratedMolecule(z[a:b], pos[a:b], bonds.astype(np.int64), charges[a:b], place_hydrogens=info.remove_h)
            )
        return molecules

    def api_objects(self, samples: list[GeneratedMolecule]) -> list[Chem.Mol]:
        """RDKit molecules with one 3D conformer each."""
        return [molecule.to_rdkit()[0] for molecule in samples]

    # ----- commands ---------------------------------------------------------
    def sample_command(self, model, opts, sampling, device, rank) -> int:
        from molgen.energy_guidance_arguments import energy_label
        from molgen.io import check_writable
        from molgen.molecules.record import MoleculeRecord
        from molgen.molecules.sdf import write_sdf

        if opts.length is not None:
            return fail("sample", "--length is for backbone checkpoints; this one generates molecules (--num-atoms)")
        if opts.motif:
            return fail("sample", "--motif is for backbone checkpoints; molecules keep atoms with --fix or --link")
        out = opts.out or self.default_output
        try:
            check_writable(out)  # on every rank, so that all of them stop alike
            for extra in (opts.json_out, opts.report):
                if extra:
                    check_writable(extra)
            molecules = generate_on_ranks(
                model, opts, sampling, device, rank, fixed=opts.fixed, num_atoms=opts.num_atoms
            )
        except (OSError, ValueError) as err:
            return fail("sample", str(err))
        if molecules is None:  # rank 0 writes the file
            return 0

        sdf_records, molecule_records, unperceived, nonfinite, generated, hydrogens_not_placed = [], [], 0, 0, 0, 0
        relaxations = []
        relax_fixed = range(opts.fixed.num_atoms) if opts.fixed is not None else ()  # --fix/--link atoms stay
        for index, molecule in tqdm(
            enumerate(molecules), total=len(molecules), desc="Writing", unit="mol", disable=opts.no_progress
        ):
            tags = {
                "index": str(index),
                "seed": str(opts.seed),
                "checkpoint": model.source,
                "steps": str(sampling.steps),
                "sampler": sampling.label,
            }
            if opts.target_rows:  # the requested properties (free ones are not named)
                tags.update({f"target_{name}": str(value) for name, value in opts.target_rows[index].items()})
            if getattr(opts, "energy_guidance", None) is not None:
                tags["energy_guidance"] = energy_label(opts.energy_predictor, opts.energy_guidance)
            if opts.fixed is not None:  # 1-based, as SDF atom numbers
                tags["fixed_atoms"] = ",".join(str(i + 1) for i in range(opts.fixed.num_atoms))
            if not molecule.finite:
                nonfinite += 1
                tags["finite_coordinates"] = "0"
            mol, bonds_ok = molecule.to_rdkit()
            if mol.HasProp(HYDROGENS_TAG):
                tags[HYDROGENS_TAG] = mol.GetProp(HYDROGENS_TAG)
                hydrogens_not_placed += tags[HYDROGENS_TAG] == "not_placed"
            if opts.relax:
                relaxed = (
                    relax_molecule(mol, relax_fixed, restraint_sigma=opts.relax_restraint)
                    if bonds_ok
                    else RelaxedMolecule(mol, "not_sanitized")
                )
                relaxations.append(relaxed)
                mol = relaxed.mol
                tags[RELAXATION_TAG] = relaxed.status
            generated += molecule.bonds is not None
            unperceived += not bonds_ok
            sdf_records.append((mol, f"molgen_{index}", tags))
            molecule_records.append(
                MoleculeRecord(  # the atoms as written: heavy-atom models' hydrogens included
                    np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()]),
                    mol.GetConformer().GetPositions(),
                    mol if bonds_ok else None,
                    str(index),
                )
            )

        if opts.fixed is not None:
            print(format_fixed_part_report(fixed_part_report(molecules, opts.fixed)))
        relaxation = None
        if opts.relax:
            relaxation = {**relaxation_summary(relaxations), "restraint_sigma_A": opts.relax_restraint}
        if opts.evaluate or opts.filter:
            try:
                evaluation = evaluate_and_report(molecule_records, opts, relaxation=relaxation)
            except (OSError, ValueError, ImportError) as err:
                return fail("sample", str(err))
            if opts.filter:
                key = FILTERS[opts.filter]
                if generated and opts.filter == "stable":  # joint models: the stability of the generated graph
                    key = "graph_mol_stable"
                kept = [r for r, row in zip(sdf_records, evaluation.per_molecule) if row.get(key)]
                print(f"--filter {opts.filter}: kept {len(kept)}, dropped {len(molecule_records) - len(kept)}")
                sdf_records = kept
        try:
            write_sdf(out, sdf_records)
        except OSError as err:
            return fail("sample", str(err))
        bonds_note = (
            "bonds and charges generated by the model"
            if generated
            else f"{unperceived} of {len(molecules)} generated without perceived bond orders"
        )
        print(
            f"wrote {len(sdf_records)} molecules to {out} ({bonds_note}"
            + (f", {nonfinite} with non-finite coordinates set to 0" if nonfinite else "")
            + (
                f", hydrogens placed on {len(molecules) - hydrogens_not_placed}"
                + (f", not on {hydrogens_not_placed} with an over-valent heavy atom" if hydrogens_not_placed else "")
                if molecules and molecules[0].place_hydrogens
                else ""
            )
            + ")"
        )
        if relaxation is not None:
            print(format_relaxation(relaxation))
        if opts.report:
            try:
                write_molecule_report(opts, out)
            except (OSError, ValueError, ImportError) as err:
                return fail("sample", str(err))
        return 0

    def evaluate_command(self, opts) -> int:
        from molgen.io import check_writable
        from molgen.molecules.sdf import SDFRecord, read_records, write_sdf

        if opts.designability:
            return fail("evaluate", "--designability is for protein backbones (PDB/mmCIF files)")
        try:
            for out in (opts.annotate, opts.json_out, opts.report):
                if out:
                    check_writable(out)
            records, problems = read_records(opts.path)
            evaluation = evaluate_and_report(records, opts, problems)
            if opts.annotate:
                write_sdf(
                    opts.annotate,
                    (
                        SDFRecord(r.mol, r.name, {k: int(v) if isinstance(v, bool) else v for k, v in row.items()})
                        for r, row in zip(records, evaluation.per_molecule)
                    ),
                )
            if opts.report:
                write_molecule_report(opts, opts.path, records, problems, evaluation)
        except (OSError, ValueError, ImportError) as err:
            return fail("evaluate", str(err))
        return 0


def fixed_part_report(molecules: list[GeneratedMolecule], fragment: Fragment) -> dict[str, float]:
    """How the samples of ``--fix`` / ``--link`` kept their fixed part (the first atoms of each).

    ``fixed_rmsd_max``: the largest RMSD (Å) of the fixed atoms from their input positions;
    ``substructure_kept``: the fraction whose fixed atoms keep their elements, charges and the bonds
    among them (generated bonds, or those perceived from the geometry); ``valid``: the fraction that
    sanitize in RDKit; ``valid_and_connected``: the fraction that are one valid connected molecule (for
    linking: the fragments were linked, and nothing was generated beside them); ``stable_and_connected``:
    those whose every atom also has a valence its element and charge allow
    (:func:`~molgen.molecules.metrics.graph_stability.atom_stability`), which RDKit's sanitisation does not
    ask of a model that generates its hydrogens (an atom short of bonds passes as a radical).
    """
    k = fragment.num_atoms
    expected = {(int(i), int(j)): int(order) for i, j, order in fragment.bonds}
    rmsd, kept, valid, connected, stable = [], 0, 0, 0, 0
    for molecule in molecules:
        rmsd.append(float(np.sqrt(((molecule.finite_positions[:k] - fragment.positions) ** 2).sum(1).mean())))
        mol, _ = molecule.to_rdkit()
        if molecule.bonds is not None:  # the generated Kekulé orders (RDKit may have made them aromatic)
            among = {(i, j): order for i, j, order in molecule.bonds.tolist() if j < k}
        else:
            among = {
                tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))): int(b.GetBondTypeAsDouble())
                for b in kekulized(mol).GetBonds()
                if max(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) < k
            }
        charges = [atom.GetFormalCharge() for atom in mol.GetAtoms()][:k]
        kept += bool(
            np.array_equal(molecule.atomic_numbers[:k], fragment.atomic_numbers)
            and charges == fragment.charges.tolist()
            and among == expected
        )
        try:
            with rdBase.BlockLogs():  # one RDKit line per invalid sample would bury the report
                Chem.SanitizeMol(Chem.Mol(mol))
        except (ValueError, RuntimeError):
            continue
        valid += 1
        one_piece = len(Chem.GetMolFrags(mol)) == 1
        connected += one_piece
        stable += one_piece and all(atom_stability(mol))
    n = len(molecules)
    return {
        "fixed_rmsd_max": max(rmsd),
        "substructure_kept": kept / n,
        "valid": valid / n,
        "valid_and_connected": connected / n,
        "stable_and_connected": stable / n,
    }


def format_fixed_part_report(report: dict[str, float]) -> str:
    lines = ["[fixed part]", f"  fixed_rmsd_max                       {report['fixed_rmsd_max']:.2e} A"]
    lines += [f"  {key:<36} {100 * value:6.2f} %" for key, value in report.items() if key != "fixed_rmsd_max"]
    return "\n".join(lines)


def format_relaxation(summary: dict) -> str:
    """One line on what ``--relax`` did (:func:`~molgen.molecules.relax.relaxation_summary`)."""
    left = {status: summary[f"num_{status}"] for status in RELAX_STATUSES[2:] if summary[f"num_{status}"]}
    line = f"relaxed {summary['num_relaxed'] + summary['num_not_converged']} of {summary['num_molecules']} with MMFF94s"
    if summary.get("restraint_sigma_A") is not None:
        line += f", heavy atoms tethered (width {summary['restraint_sigma_A']:g} A)"
    if "median_heavy_rmsd_A" in summary:
        line += (
            f" (median energy drop {summary['median_energy_drop_kcal_mol']:.1f} kcal/mol, heavy atoms moved"
            f" {summary['median_heavy_rmsd_A']:.2f} A RMSD median, {summary['max_heavy_rmsd_A']:.2f} A at most,"
            f" stereochemistry changed in {100 * summary['stereo_changed_fraction']:.1f} %"
            + (f", {summary['num_not_converged']} stopped before converging" if summary["num_not_converged"] else "")
            + ")"
        )
    if left:
        line += "; left as generated: " + ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in left.items())
    return line


def evaluate_and_report(records, opts, problems=None, relaxation: dict | None = None):
    """Evaluate molecule records with the command's options, print the table, write --json;
    returns the :class:`~molgen.molecules.evaluate.Evaluation`. ``relaxation``: the summary of
    ``molgen sample --relax``, added to the report as its own section."""
    from molgen.molecules.evaluate import evaluate_molecules, format_report, load_reference

    evaluation = evaluate_molecules(
        records,
        reference=load_reference(opts.reference, progress=not opts.no_progress),
        problems=problems,
        posebusters_max=opts.posebusters,
        posebusters_energy=opts.posebusters_energy,
        posebusters_workers=opts.workers,
    )
    if relaxation is not None:
        evaluation.report["relaxation"] = relaxation
    print(format_report(evaluation.report))
    if opts.json_out:
        write_json(opts.json_out, evaluation.report)
    return evaluation


def write_molecule_report(opts, path, records=None, problems=None, evaluation=None) -> None:
    """Write the `molgen report` page of the SDF ``path`` to ``opts.report`` (``--report``); reuses the
    command's records and evaluation when given (aligned with the file), else reads and evaluates the file."""
    from molgen.report.molecules import molecule_report

    page = molecule_report(
        path, opts.reference, records=records, problems=problems, evaluation=evaluation, progress=not opts.no_progress
    )
    page.write(opts.report)
    print(f"wrote the report to {opts.report}")


DOMAIN = DOMAINS.register(MoleculeDomain.name)(MoleculeDomain())

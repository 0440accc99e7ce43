"""EDM's protocol for property-conditioned generation (Hoogeboom et al. 2022, Sec. 5.2): `molgen evaluate-conditioning`.

The QM9 training split is halved (:func:`~molgen.molecules.qm9_properties.training_half`):
a property predictor is trained on the first half (``experiment=qm9_property``), the
conditional generator on the second (``data.half=second``). Targets and their atom counts
are pairs drawn from the second half; each generated molecule is scored by the MAE between
its target and the predictor's estimate. Three baselines put the figure in context, all
scored by the same predictor on molecules of the second half:

- ``qm9``: the real molecules with their own values (the predictor's error, a lower bound);
- ``random``: the real molecules against the values of other molecules (a shuffle: no
  information about the property);
- ``n_atoms``: the median value of first-half molecules with the same atom count, against
  the true value (what the atom count alone tells).

A generator that conditions well lands between ``qm9`` and ``n_atoms``; EDM's published
figures are in :data:`PUBLISHED` (alpha in Bohr^3, gap/homo/lumo in meV, mu in D, Cv in
cal/(mol K)). One row per guidance scale shows what classifier-free guidance buys.

A fourth reading cannot be bent by geometry: ``composition``, a least-squares fit of each property
on the element counts (H, C, N, O, F and a constant) of the first half. Its MAE on the drawn real
molecules is the floor of what composition alone tells; on generated molecules it says whether
guidance changed *which atoms* a molecule has, whatever the coordinates the predictor reads.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from molgen.energy_guidance_arguments import add_energy_guidance_arguments, check_energy_options
from molgen.sampler_arguments import add_sampler_arguments, given_options, resolve_sampling

__all__ = ["PUBLISHED", "ProtocolData", "agreement", "evaluate_conditioning", "format_table", "main", "protocol_data"]

PUBLISHED: dict[str, dict[str, float]] = {
    "QM9 (lower bound)": {"alpha": 0.10, "gap": 64, "homo": 39, "lumo": 36, "mu": 0.043, "Cv": 0.040},
    "Random": {"alpha": 9.01, "gap": 1470, "homo": 645, "lumo": 1457, "mu": 1.616, "Cv": 6.857},
    "N_atoms": {"alpha": 3.86, "gap": 866, "homo": 426, "lumo": 813, "mu": 1.053, "Cv": 1.971},
    "EDM": {"alpha": 2.76, "gap": 655, "homo": 356, "lumo": 584, "mu": 1.111, "Cv": 1.101},
    "GeoLDM": {"alpha": 2.37, "gap": 587, "homo": 340, "lumo": 522, "mu": 1.108, "Cv": 1.025},
}
"""MAE of EDM's Table 3 (and GeoLDM's), as published; GPU-trained models, 10,000 samples."""


@dataclass
class ProtocolData:
    """The second half's molecules drawn as targets, and the first half's values per atom count.

    Attributes:
        molecules: ``(atomic_numbers [n], positions [n, 3] Å)`` of each drawn second-half molecule.
        values: ``[M, P]`` their properties (physical units), columns in ``names`` order.
        num_atoms: ``[M]`` their atom counts.
        names: the properties.
        median_by_size: ``{n: [P] medians}`` of first-half molecules with ``n`` atoms.
        composition: ``[len(COMPOSITION_ELEMENTS) + 1, P]`` coefficients of each property's least-squares fit on
            the element counts and a constant over the first half (:func:`composition_estimate`), or None.
    """

    molecules: list[tuple[np.ndarray, np.ndarray]]
    values: np.ndarray
    num_atoms: np.ndarray
    names: list[str]
    median_by_size: dict[int, np.ndarray]
    composition: np.ndarray | None = None


#: Atomic numbers counted by the composition reading (QM9's elements).
COMPOSITION_ELEMENTS = (1, 6, 7, 8, 9)


def element_counts(atomic_numbers: Sequence[np.ndarray]) -> np.ndarray:
    """``[M, len(COMPOSITION_ELEMENTS) + 1]``: each molecule's count of every element, and a constant 1."""
    sizes = [len(z) for z in atomic_numbers]
    z = np.concatenate([np.asarray(z, dtype=int).reshape(-1) for z in atomic_numbers] or [np.zeros(0, dtype=int)])
    molecule = np.repeat(np.arange(len(sizes)), sizes)
    elements = np.asarray(COMPOSITION_ELEMENTS)
    column = np.minimum(np.searchsorted(elements, z), len(elements) - 1)
    counted = elements[column] == z  # other elements are not counted
    flat = np.bincount(molecule[counted] * len(elements) + column[counted], minlength=len(sizes) * len(elements))
    return np.concatenate([flat.reshape(len(sizes), len(elements)).astype(float), np.ones((len(sizes), 1))], axis=1)


def composition_estimate(atomic_numbers: Sequence[np.ndarray], data: ProtocolData) -> np.ndarray:
    """``[M, P]``: the properties read from the molecules' element counts alone (``data.composition``)."""
    return element_counts(atomic_numbers) @ data.composition


def protocol_data(names: Sequence[str], num_samples: int, seed: int = 0, cache_dir: str | None = None) -> ProtocolData:
    """``num_samples`` molecules drawn (without replacement, seeded) from the second half of QM9's training split,
    and the first half's per-size medians of ``names``."""
    from molgen.molecules.qm9 import QM9Dataset

    second = QM9Dataset("train", half="second", conditions=names, cache_dir=cache_dir)
    first = QM9Dataset("train", half="first", conditions=names, cache_dir=cache_dir)
    if not 1 <= num_samples <= len(second):
        raise ValueError(f"num_samples must be between 1 and {len(second)}, got {num_samples}")
    pick = np.random.default_rng(seed).choice(len(second), size=num_samples, replace=False)
    molecules = [(item.z.numpy(), item.pos.double().numpy()) for item in (second[i] for i in pick.tolist())]
    values, first_values = second.property_values[pick].numpy(), first.property_values.numpy()
    first_sizes = first.num_atoms.numpy()
    medians = {int(n): np.median(first_values[first_sizes == n], axis=0) for n in np.unique(first_sizes)}
    counts = element_counts([z.numpy() for z in first.atomic_numbers()])
    composition = np.linalg.lstsq(counts, first_values, rcond=None)[0]
    return ProtocolData(molecules, values, second.num_atoms.numpy()[pick], list(names), medians, composition)


def baselines(data: ProtocolData, predicted_real: np.ndarray, seed: int = 0) -> dict[str, dict[str, float]]:
    """The ``qm9``, ``random`` and ``n_atoms`` MAE per property (module docstring); ``predicted_real`` [M, P] is
    the predictor on the drawn real molecules."""
    shuffled = data.values[np.random.default_rng(seed + 1).permutation(len(data.values))]
    by_size = size_medians(data)
    rows = {"qm9": predicted_real - data.values, "random": predicted_real - shuffled, "n_atoms": by_size - data.values}
    if data.composition is not None:
        rows["composition"] = composition_estimate([z for z, _ in data.molecules], data) - data.values
    return {row: dict(zip(data.names, np.abs(error).mean(axis=0).tolist())) for row, error in rows.items()}


def evaluate_conditioning(
    predictor: Any,
    model: Any,
    prop: str,
    data: ProtocolData,
    guidance: Sequence[float],
    sampling: Any,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool = True,
    energies: Sequence[Any] = (None,),
) -> list[dict[str, float]]:
    """Sample one molecule per drawn target of property ``prop`` (the model's other properties free) with the
    target's atom count, at each guidance scale and each energy guidance (an
    :class:`~molgen.diffusion.energy_guidance.EnergyGuidance`, or None for none); returns one row per pair,
    ``{"guidance", "energy_scale", "energy_class_scale", "mae", "bias", "beyond_size_correlation", "seconds"}``,
    the molecules' quality (:func:`quality`) and, where ``data`` has a composition fit, ``composition_mae`` and
    ``composition_bias`` (the targets against :func:`composition_estimate`)."""
    from molgen.diffusion.conditioning import GraphCondition
    from molgen.sampling import generate
    from molgen.targets import target_tensors

    column = data.names.index(prop)
    rows = [{prop: float(value)} for value in data.values[:, column]]
    targets = GraphCondition(*target_tensors(rows, model.info.conditions))
    sizes = torch.as_tensor(data.num_atoms, dtype=torch.long)
    results = []
    for scale, energy in itertools.product(guidance, energies):
        start = time.perf_counter()
        molecules = generate(
            model,
            len(rows),
            sampling.updated(options={"guidance": float(scale)}),
            batch_size=batch_size,
            seed=seed,
            progress=progress,
            targets=targets,
            sizes=sizes,
            energy_guidance=energy,
        )
        seconds = time.perf_counter() - start
        estimate = predictor.predict([(m.atomic_numbers, m.finite_positions) for m in molecules])
        composition = {}
        if data.composition is not None:
            reading = agreement(
                composition_estimate([m.atomic_numbers for m in molecules], data)[:, column], data, prop
            )
            composition = {"composition_mae": reading["mae"], "composition_bias": reading["bias"]}
        results.append(
            {
                "guidance": float(scale),
                "energy_scale": 0.0 if energy is None else energy.scale,
                "energy_class_scale": 0.0 if energy is None else energy.class_scale,
                "energy_times": None if energy is None else [energy.min_time, energy.max_time],
                "energy_through_network": energy is not None and energy.through_network,
                **agreement(estimate[:, predictor.names.index(prop)], data, prop),
                **quality(molecules),
                **composition,
                "seconds": seconds,
            }
        )
    return results


#: The quality figures of a generated row, in table order: ``name: (report section, key)`` of ``molgen evaluate``.
QUALITY_COLUMNS = {
    "rdkit_validity": ("rdkit", "validity"),
    "edm_mol_stability": ("edm", "mol_stability"),
    "graph_mol_stability": ("graph", "mol_stability"),
}


def quality(molecules: list) -> dict[str, float]:
    """What guidance may cost: the generated molecules' RDKit validity and molecule stability, EDM's (bonds
    from distances: the geometry) and of their own bonds (``graph``, bond models), as fractions."""
    from molgen.molecules.evaluate import evaluate_molecules
    from molgen.molecules.record import MoleculeRecord

    records = []
    for molecule in molecules:
        mol, has_bonds = molecule.to_rdkit()
        records.append(MoleculeRecord(molecule.atomic_numbers, molecule.finite_positions, mol if has_bonds else None))
    report = evaluate_molecules(records).report
    found = {name: (report.get(section) or {}).get(key) for name, (section, key) in QUALITY_COLUMNS.items()}
    return {name: float(value) for name, value in found.items() if value is not None}


def agreement(estimate: np.ndarray, data: ProtocolData, prop: str) -> dict[str, float]:
    """How the predictor's estimates ``[M]`` for generated molecules meet the targets of ``prop``.

    ``mae`` is the protocol's figure; ``bias`` the mean signed error; ``beyond_size_correlation`` the
    correlation of estimate and target after both lose their size's first-half median (the ``n_atoms``
    baseline): what the model conditions on beyond the atom count it is given (0: nothing; real
    molecules scored by a good predictor: near 1).
    """
    target = data.values[:, data.names.index(prop)]
    size_median = size_medians(data)[:, data.names.index(prop)]
    error = estimate - target
    beyond = np.corrcoef(estimate - size_median, target - size_median)[0, 1] if len(target) > 1 else float("nan")
    return {"mae": float(np.abs(error).mean()), "bias": float(error.mean()), "beyond_size_correlation": float(beyond)}


def size_medians(data: ProtocolData) -> np.ndarray:
    """``[M, P]``: the first half's median of each property for each drawn molecule's atom count (the overall
    median for a count the first half lacks)."""
    overall = np.median(np.concatenate([m[None] for m in data.median_by_size.values()]), axis=0)
    return np.stack([data.median_by_size.get(int(n), overall) for n in data.num_atoms])


def format_table(report: dict[str, Any]) -> str:
    """The MAE table of a :func:`main` report beside the published rows (markdown)."""
    props = report["properties"]
    lines = ["| row | " + " | ".join(props) + " |", "| --- |" + " --- |" * len(props)]
    for name, row in PUBLISHED.items():
        lines.append(f"| {name} (published) | " + " | ".join(f"{row[p]:.4g}" for p in props) + " |")
    for name in [row for row in ("qm9", "random", "n_atoms", "composition") if row in report["baselines"]]:
        lines.append(
            f"| {name} (this predictor) | " + " | ".join(f"{report['baselines'][name][p]:.4g}" for p in props) + " |"
        )
    keys = sorted({_row_key(entry) for p in props for entry in report["generated"][p]})
    rows = {key: [next(e for e in report["generated"][p] if _row_key(e) == key) for p in props] for key in keys}
    for key, cells in rows.items():
        lines.append(f"| model, {_row_label(key)} | " + " | ".join(f"{c['mae']:.4g}" for c in cells) + " |")
    lines += ["", "bias: mean(estimate - target); r: correlation of estimate and target beyond the atom count;"]
    lines += ["validity and stability (RDKit, EDM's from distances, of the generated bonds) per property's samples;"]
    lines += ["composition: MAE (bias) of the property read from the element counts alone", ""]
    lines += [
        "| model | "
        + " | ".join(f"{p} bias | {p} r | {p} valid / EDM / graph stable | {p} composition" for p in props)
        + " |",
        "| --- |" + " --- |" * 4 * len(props),
    ]
    for key, cells in rows.items():
        values = " | ".join(
            f"{c['bias']:+.4g} | {c['beyond_size_correlation']:.3f} | "
            + " / ".join(_percent(c.get(name)) for name in QUALITY_COLUMNS)
            + " | "
            + (f"{c['composition_mae']:.4g} ({c['composition_bias']:+.3g})" if "composition_mae" in c else "-")
            for c in cells
        )
        lines.append(f"| {_row_label(key)} | {values} |")
    return "\n".join(lines)


def _row_key(entry: dict[str, float]) -> tuple[float, float, float]:
    """A generated row's sampler settings: guidance, energy scale, energy class scale (0 when absent)."""
    return entry["guidance"], entry.get("energy_scale", 0.0), entry.get("energy_class_scale", 0.0)


def _row_label(key: tuple[float, float, float]) -> str:
    guidance, energy, classes = key
    label = f"guidance {guidance:g}"
    return label if not (energy or classes) else f"{label}, energy {energy:g} (classes {classes:g})"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="molgen evaluate-conditioning",
        description="EDM's protocol for property-conditioned generation on QM9: MAE between targets and a "
        "property predictor's estimate for the generated molecules, beside the QM9, random and N_atoms baselines "
        "(docs/conditioning.md).",
    )
    p.add_argument("--predictor", required=True, help="checkpoint of `molgen train experiment=qm9_property`")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", help="conditional model checkpoint (trained with data.half=second)")
    source.add_argument("--model", help="a shipped conditional model")
    p.add_argument(
        "--property",
        dest="properties",
        action="append",
        help="a property to evaluate (repeat; default: every property both the model and the predictor know)",
    )
    p.add_argument("--num-samples", type=int, default=1000, help="targets drawn from the second half (EDM: 10,000)")
    p.add_argument("--guidance", type=float, nargs="+", default=[0.0], help="guidance scales, one row each")
    add_energy_guidance_arguments(p, several_scales=True)
    add_sampler_arguments(p)  # default: the model card's sampler (a checkpoint: ddpm, 1000 steps)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help="QM9 cache directory (default ~/.cache/molgen/qm9)")
    p.add_argument("--json", dest="json_out", help="also write the report as JSON")
    p.add_argument("--no-progress", action="store_true")
    return p


def energy_rows(opts: argparse.Namespace, judge: Any, model: Any) -> list[Any]:
    """The energy guidance of each row (None: a row without), from ``--energy-predictor`` and its scales.

    Raises:
        ValueError: the energy predictor has the judge's weights: it would grade its own guidance (one line).
    """
    from molgen.energy_guidance_arguments import energy_guidance
    from molgen.property_prediction import load_property_predictor

    if not opts.energy_predictor:
        return [None]
    guide = load_property_predictor(opts.energy_predictor)
    if _same_weights(guide.predictor, judge.predictor):
        raise ValueError(
            f"--energy-predictor {opts.energy_predictor} has the judging predictor's weights: guidance would be graded "
            "by its own guide; train one on the generator's half (docs/conditioning.md, 'Energy guidance')"
        )
    rows = [energy_guidance(guide, model, opts, scale) for scale in (opts.energy_scale or [None])]
    return [None if not (row.scale or row.class_scale) else row for row in rows]


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    first, second = a.state_dict(), b.state_dict()
    return first.keys() == second.keys() and all(
        first[k].shape == second[k].shape and torch.equal(first[k].cpu(), second[k].cpu()) for k in first
    )


def main(argv: Sequence[str] | None = None) -> int:
    from molgen.checkpoint import load_checkpoint
    from molgen.checkpoint_files import CheckpointError
    from molgen.commands import fail, write_json
    from molgen.io import check_writable
    from molgen.property_prediction import load_property_predictor

    opts = _parser().parse_args(argv)
    try:
        given = given_options(opts)
        if opts.json_out:
            check_writable(opts.json_out)
        check_energy_options(opts)
        predictor = load_property_predictor(opts.predictor)
        if opts.ckpt:
            model = load_checkpoint(opts.ckpt)
        else:
            from molgen.pretrained import load_pretrained

            model = load_pretrained(opts.model)
        conditions = getattr(model.info, "conditions", None)
        if not conditions:
            raise ValueError("the model was not trained with conditions")
        known = [p for p in conditions["names"] if p in predictor.names]
        props = opts.properties or known
        missing = [p for p in props if p not in known]
        if missing or not props:
            raise ValueError(f"both the model and the predictor must know {missing or 'a property'}; shared: {known}")
        sampling = resolve_sampling(model, opts, given)
        energies = energy_rows(opts, predictor, model)
        data = protocol_data(predictor.names, opts.num_samples, opts.seed, opts.cache_dir)
        predicted_real = predictor.predict(data.molecules)
        report = {
            "properties": props,
            "units": {p: predictor.units[predictor.names.index(p)] for p in props},
            "num_samples": opts.num_samples,
            "sampler": sampling.label,
            "steps": sampling.steps,
            "energy_predictor": opts.energy_predictor,
            "baselines": baselines(data, predicted_real, opts.seed),
            "generated": {
                p: evaluate_conditioning(
                    predictor,
                    model,
                    p,
                    data,
                    opts.guidance,
                    sampling,
                    opts.seed,
                    opts.batch_size,
                    not opts.no_progress,
                    energies,
                )
                for p in props
            },
        }
    except (CheckpointError, OSError, ValueError) as err:
        return fail("evaluate-conditioning", str(err))
    print(format_table(report))
    if opts.json_out:
        write_json(opts.json_out, report)
    return 0

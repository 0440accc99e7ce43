"""``molgen dock`` and ``molgen export``: the commands, from parsed options to files and a summary.

``dock`` checks every argument before any work (one ``molgen dock: error: ...`` line
and a non-zero exit for a missing file, a box without a size, a receptor that cannot
be prepared), holds ``<out>.lock`` while it runs, docks the molecules not already in
``<out>.progress`` (see :mod:`molgen.docking.progress`) in ``--jobs`` processes, then
writes the output SDF atomically and prints the summary. ``export`` writes the same
preparation as PDBQT files for other docking programs.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from molgen.commands import fail, write_json
from molgen.docking.box import Box, box_from_options
from molgen.docking.dependencies import INSTALL_HINT, missing_docking_packages

__all__ = ["dock_command", "export_command"]


def _missing_packages(command: str) -> int | None:
    missing = missing_docking_packages()
    if missing:
        return fail(command, f"needs the docking extra ({', '.join(missing)} missing): {INSTALL_HINT}")
    return None


def _check_input(path: str, what: str) -> None:
    """FileNotFoundError (one line naming ``what``) when ``path`` is not a file."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} not found: {path}")


def _mode(opts: Any) -> str:
    return "score_only" if opts.score_only else "local_only" if opts.local_only else "dock"


def _docked_results(todo: list[tuple[int, str]], setup: Any, jobs: int, progress: bool) -> Iterator[Any]:
    """The results of the records ``todo`` as they finish: in this process for one job, else in a pool."""
    from tqdm.auto import tqdm

    from molgen.docking.pipeline import dock_record, start_worker

    with tqdm(total=len(todo), desc="docking", unit="mol", disable=not progress, smoothing=0.05) as bar:
        if jobs == 1 or len(todo) <= 1:
            start_worker(setup)
            for result in map(dock_record, todo):
                bar.update()
                yield result
            return
        # spawn: a forked child would inherit the parent's threads' locks (tqdm's monitor, BLAS)
        with multiprocessing.get_context("spawn").Pool(min(jobs, len(todo)), start_worker, (setup,)) as pool:
            for result in pool.imap_unordered(dock_record, todo):
                bar.update()
                yield result


def _run_header(opts: Any, box: Box, settings: Any, count: int) -> str:
    effort = f", exhaustiveness {settings.exhaustiveness}" if settings.mode == "dock" else ""
    return (
        f"{count} molecules from {opts.samples}, receptor {opts.receptor}, box {box.describe()}; "
        f"{settings.mode.replace('_', '-')} with {settings.scoring}{effort}, seed {settings.seed}, {opts.jobs} job(s)"
    )


def _dock(opts: Any, box: Box, settings: Any) -> int:
    from molgen.docking.ligands import read_sdf_blocks
    from molgen.docking.pipeline import WorkerSetup
    from molgen.docking.progress import ProgressFile, file_digest, run_fingerprint
    from molgen.docking.receptor import ReceptorError, prepare_receptor
    from molgen.docking.summary import format_summary, summarize
    from molgen.molecules.sdf import write_sdf

    try:
        receptor = prepare_receptor(opts.receptor, box, repair=not opts.no_repair)
    except ReceptorError as err:
        return fail("dock", str(err))
    for note in receptor.notes:
        print(f"molgen dock: receptor: {note}", file=sys.stderr)
    blocks = list(read_sdf_blocks(opts.samples))
    if not blocks:
        return fail("dock", f"no records in {opts.samples}")
    print(f"molgen dock: {_run_header(opts, box, settings, len(blocks))}", file=sys.stderr)
    fingerprint = run_fingerprint(
        samples=file_digest(opts.samples),
        receptor=file_digest(opts.receptor),
        box=asdict(box),
        settings=asdict(settings),
        largest_fragment=opts.largest_fragment,
        repair=not opts.no_repair,
    )
    progress = ProgressFile(f"{opts.out}.progress", fingerprint)
    done = progress.start()
    if done:
        print(f"molgen dock: resuming: {len(done)} of {len(blocks)} molecules already done", file=sys.stderr)
    todo = [(index, block) for index, block in enumerate(blocks) if index not in done]
    with tempfile.TemporaryDirectory(prefix="molgen-dock-") as folder:
        receptor_path = Path(folder) / "receptor.pdbqt"
        receptor_path.write_text(receptor.pdbqt)
        setup = WorkerSetup(str(receptor_path), box, settings, opts.largest_fragment)
        try:
            for result in _docked_results(todo, setup, opts.jobs, not opts.no_progress):
                progress.append(result)
                done[result.index] = result
        except KeyboardInterrupt:
            return fail(
                "dock",
                f"interrupted with {len(done)} of {len(blocks)} molecules done (kept in {progress.path}); "
                "run the same command again to continue",
                status=130,
            )
    results = [done[index] for index in range(len(blocks))]
    write_sdf(opts.out, (record for result in results for record in result.sdf_records()))
    report = summarize(results)
    report["run"] = {"header": _run_header(opts, box, settings, len(blocks)), "receptor_notes": list(receptor.notes)}
    print(format_summary(report))
    added = report["changes"]["hydrogens_added"]
    if added:
        print(
            f"molgen dock: warning: {added} molecule(s) lacked hydrogens the bonds imply; they were added with "
            "coordinates before docking (SD tag docking_notes)",
            file=sys.stderr,
        )
    if opts.json_out:
        write_json(opts.json_out, report)
    progress.remove()
    if report["docked"] == 0:
        return fail("dock", "no molecule could be docked (see the failure table)")
    return 0


def dock_command(opts: Any) -> int:
    """Run ``molgen dock`` with the options of :func:`molgen.cli._dock_parser`; the exit status."""
    from molgen.docking.vina_runner import VinaSettings
    from molgen.io import check_writable
    from molgen.locks import LockedError, exclusive_lock

    if (status := _missing_packages("dock")) is not None:
        return status
    try:
        _check_input(opts.samples, "samples file")
        _check_input(opts.receptor, "receptor file")
        box = box_from_options(opts.ref_ligand, opts.center, opts.size)
        settings = VinaSettings(opts.scoring, opts.exhaustiveness, opts.num_poses, _mode(opts), opts.seed)
        for out in (opts.out, opts.json_out):
            if out:
                check_writable(out)
    except (OSError, ValueError) as err:
        return fail("dock", str(err))
    try:
        with exclusive_lock(
            f"{opts.out}.lock", f"output {opts.out}", "wait for that command to finish, or choose another --out"
        ):
            return _dock(opts, box, settings)
    except LockedError as err:
        return fail("dock", str(err))


def _vina_box_config(box: Box) -> str:
    """The box as Vina's command-line config (``center_x = ...``, ``size_x = ...``)."""
    lines = [f"center_{axis} = {value:.3f}" for axis, value in zip("xyz", box.center)]
    lines += [f"size_{axis} = {value:.3f}" for axis, value in zip("xyz", box.size)]
    return "\n".join(lines) + "\n"


def export_command(opts: Any) -> int:
    """Run ``molgen export``: one PDBQT per molecule in ``opts.out`` (``ligand_NNNN.pdbqt``, N the
    0-based record index) and, with ``--receptor``, ``receptor.pdbqt`` and Vina's ``box.txt``."""
    from tqdm.auto import tqdm

    from molgen.docking.ligands import LigandError, prepare_ligand, read_sdf_blocks
    from molgen.docking.receptor import prepare_receptor
    from molgen.docking.summary import format_failures
    from molgen.io import atomic_write_text

    if (status := _missing_packages("export")) is not None:
        return status
    out = Path(opts.out)
    try:
        _check_input(opts.samples, "samples file")
        box = None
        if opts.receptor:
            _check_input(opts.receptor, "receptor file")
            box = box_from_options(opts.ref_ligand, opts.center, opts.size)
        elif opts.ref_ligand or opts.center or opts.size:
            raise ValueError("--ref-ligand, --center and --size give the box of a --receptor")
        out.mkdir(parents=True, exist_ok=True)
        if box is not None:
            receptor = prepare_receptor(opts.receptor, box, repair=not opts.no_repair)
            atomic_write_text(out / "receptor.pdbqt", receptor.pdbqt)
            atomic_write_text(out / "box.txt", _vina_box_config(box))
            for note in receptor.notes:
                print(f"molgen export: receptor: {note}", file=sys.stderr)
    except (OSError, ValueError) as err:  # ReceptorError is a ValueError
        return fail("export", str(err))
    blocks = list(read_sdf_blocks(opts.samples))
    failures = []
    for index, block in enumerate(tqdm(blocks, desc="export", unit="mol", disable=opts.no_progress)):
        try:
            ligand = prepare_ligand(block, largest_fragment=opts.largest_fragment)
        except LigandError as err:
            title = block.split("\n", 1)[0].strip()
            failures.append({"index": index, "title": title, "category": err.category, "reason": err.reason})
            continue
        atomic_write_text(out / f"ligand_{index:04d}.pdbqt", ligand.pdbqt)
    written = len(blocks) - len(failures)
    extra = " with receptor.pdbqt and box.txt" if box is not None else ""
    print(f"wrote {written} of {len(blocks)} molecules as PDBQT to {out}{extra}")
    if failures:
        print(format_failures(failures))
    return 0 if written else fail("export", f"no molecule of {opts.samples} could be prepared")

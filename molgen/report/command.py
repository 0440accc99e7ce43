"""`molgen report INPUT -o report.html`: one self-contained HTML report of molecules, backbones or a training run.

The kind of report follows from the input (:func:`input_kind`): an SDF file gives the
molecule report (:mod:`molgen.report.molecules`), a structure file or a folder of them
the backbone report (:mod:`molgen.report.backbones`), and a run directory of
`molgen train` (or its ``logs/metrics.csv``) the training report
(:mod:`molgen.report.runs`). An SDF of docked molecules (`molgen dock`'s output) adds the
docking sections (:mod:`molgen.report.docking`): ``--baseline`` and ``--receptor`` apply to
it only. Every error a user can cause is one
``molgen report: error: ...`` line with exit status 1, and nothing is written then:
the output is checked before the work and replaced atomically after it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["KINDS", "input_kind", "main", "report_parser", "write_report"]

KINDS = ("molecules", "backbones", "run")
#: Suffixes read as SDF.
SDF_SUFFIXES = (".sdf", ".sd", ".mol")
#: Where a run directory keeps its CSV log (molgen.training.train).
RUN_LOG = Path("logs") / "metrics.csv"


def input_kind(path: str | Path) -> str:
    """``"molecules"``, ``"backbones"`` or ``"run"`` for ``path``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is none of the three (the message says what is expected).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    name = path.name.lower()
    if path.is_file() and name.endswith(SDF_SUFFIXES):
        return "molecules"
    if path.is_file() and name.endswith(".csv") or path.is_dir() and (path / RUN_LOG).is_file():
        return "run"
    from molgen.proteins.pdb import STRUCTURE_SUFFIXES  # imports torch: only when the input is no SDF

    if path.is_dir() or name.removesuffix(".gz").endswith(STRUCTURE_SUFFIXES):
        return "backbones"
    raise ValueError(
        f"cannot tell what {path} holds: expected an SDF file (molecules), a PDB/mmCIF file or folder (backbones) "
        f"or a run directory with {RUN_LOG} (training)"
    )


def write_report(
    path: str | Path,
    out: str | Path,
    *,
    reference: str | None = None,
    max_grid: int | None = None,
    figures: str | Path | None = None,
    posebusters: int = 0,
    receptor: str | Path | None = None,
    baseline: str | Path | None = None,
    best_poses: int | None = None,
    progress: bool = False,
) -> str:
    """Build the report of ``path`` and write it to ``out`` (and its figures to ``figures``).

    Args:
        reference: molecules: ``qm9`` (default), ``moses``, ``none`` or an SDF file; backbones: a folder of
            natural structures (default none).
        max_grid: molecules: records in the grid (default 100); backbones: designs in the contact maps.
        receptor, baseline, best_poses: docked molecules only: the receptor PDB/mmCIF file, a docked SDF to
            compare with, the molecules shown in the pocket (default 5); see :mod:`molgen.report.docking`.

    Returns:
        The kind of report written.

    Raises:
        OSError, ValueError, ImportError: unreadable input, unwritable output (checked before any work).
    """
    from molgen.io import check_writable

    kind = input_kind(path)
    check_writable(out)
    if kind != "molecules" and (receptor, baseline, best_poses) != (None, None, None):
        raise ValueError(f"--receptor, --baseline and --best-poses apply to docked molecules (an SDF), not {path}")
    if kind == "molecules":
        from molgen.report.docking import DEFAULT_BEST_POSES
        from molgen.report.molecules import DEFAULT_MAX_GRID, molecule_report

        page = molecule_report(
            path,
            reference or "qm9",
            max_grid=max_grid or DEFAULT_MAX_GRID,
            posebusters=posebusters,
            receptor=receptor,
            baseline=baseline,
            best_poses=best_poses or DEFAULT_BEST_POSES,
            progress=progress,
        )
    elif kind == "backbones":
        from molgen.report.backbones import backbone_report

        page = backbone_report(path, reference, progress=progress)
    else:
        from molgen.report.runs import run_report

        page = run_report(path)
    page.write(out, figures)
    return kind


def report_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="molgen report",
        description="Write one self-contained HTML report (figures and the 3D viewer inline, no network needed) of "
        "molecules in an SDF file (docked ones: scores against a baseline, poses in the pocket), protein backbones "
        "in a PDB/mmCIF file or folder, or a training run directory.",
    )
    p.add_argument("input", help="SDF file, structure file or folder, or run directory (with logs/metrics.csv)")
    p.add_argument(
        "-o", "--out", default="report.html", help="output HTML file, written atomically (default report.html)"
    )
    p.add_argument(
        "--reference",
        default=None,
        help="molecules: qm9 (default), moses, none, or an SDF file; backbones: a folder of natural structures "
        "(default: none; e.g. ../shared/data/proteins/db55)",
    )
    p.add_argument(
        "--max-grid",
        type=int,
        default=None,
        metavar="N",
        help="molecules: records shown as pictures (default 100); the rest are summarised in the histograms",
    )
    p.add_argument("--figures", metavar="DIR", help="also write every figure as SVG and PNG into DIR (created)")
    p.add_argument(
        "--posebusters",
        type=int,
        default=0,
        metavar="N",
        help="molecules: PoseBusters' checks on N molecules in the metrics (default 0: skipped, they are slow)",
    )
    p.add_argument(
        "--receptor",
        metavar="PDB",
        help="docked molecules (molgen dock's SDF): the receptor they were docked into (PDB or mmCIF), inlined to "
        "show the best poses inside the pocket",
    )
    p.add_argument(
        "--baseline",
        metavar="SDF",
        help="docked molecules: a docked SDF to compare the scores with (e.g. MOSES molecules docked the same way)",
    )
    p.add_argument(
        "--best-poses",
        type=int,
        default=None,
        metavar="N",
        help="docked molecules: the N best-scoring molecules shown in 3D (default 5)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def main(args: list[str]) -> int:
    from molgen.commands import fail

    opts = report_parser().parse_args(args)
    if opts.max_grid is not None and opts.max_grid < 1:
        return fail("report", f"--max-grid must be a positive integer, got {opts.max_grid}")
    if opts.posebusters < 0:
        return fail("report", f"--posebusters must be >= 0, got {opts.posebusters}")
    if opts.best_poses is not None and opts.best_poses < 1:
        return fail("report", f"--best-poses must be a positive integer, got {opts.best_poses}")
    try:
        kind = write_report(
            opts.input,
            opts.out,
            reference=opts.reference,
            max_grid=opts.max_grid,
            figures=opts.figures,
            posebusters=opts.posebusters,
            receptor=opts.receptor,
            baseline=opts.baseline,
            best_poses=opts.best_poses,
            progress=not opts.no_progress,
        )
    except (OSError, ValueError, ImportError) as err:
        return fail("report", str(err).splitlines()[0] if str(err) else type(err).__name__)
    print(
        f"wrote the {kind} report of {opts.input} to {opts.out}"
        + (f" (figures in {opts.figures}/)" if opts.figures else "")
    )
    return 0

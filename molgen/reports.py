"""Plain-text rendering of the nested report dicts that `molgen evaluate` prints (HTML pages: :mod:`molgen.report`)."""

from __future__ import annotations

from collections.abc import Callable


def format_sections(report: dict, is_fraction: Callable[[str, str, float], bool]) -> str:
    """``{section: {key: value}, "notes": [...]}`` as an aligned table, one block per section.

    Floats for which ``is_fraction(section, key, value)`` holds are shown as
    percentages, other floats with 4 decimals; empty sections are left out and
    notes follow as ``note:`` lines.
    """
    lines = []
    for section, values in report.items():
        if section == "notes" or not isinstance(values, dict) or not values:
            continue
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, float):
                shown = f"{100 * value:6.2f} %" if is_fraction(section, key, value) else f"{value:.4f}"
            else:
                shown = str(value)
            lines.append(f"  {key:36s} {shown}")
    lines += [f"note: {note}" for note in report.get("notes", [])]
    return "\n".join(lines)

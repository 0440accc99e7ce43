"""Page assembly of `molgen report`: one self-contained HTML file, written atomically.

A report is a :class:`Page` of :class:`Section` s; a section holds HTML markup
(built with :func:`escape` for anything read from a file) and :class:`Figure` s
(matplotlib figures). Every figure is inlined as a ``data:image/svg+xml`` image,
so the page makes no request, and the SVG of one figure cannot clash with the
ids or styles of another. Scripts are inlined too (the bundled 3D viewer of
:mod:`molgen.report.viewer`), and a Content-Security-Policy forbids the browser
any network access, so a page that opens is one that works offline.

``--figures DIR`` writes each figure again as ``<name>.svg`` and ``<name>.png``
(200 dpi) for papers.
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Figure", "Page", "Section", "badge", "data_image", "escape", "metric_rows", "table"]

#: No network access of any kind: inline scripts and styles, data: images; WebGL needs nothing more.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:"
)

#: PNG resolution of ``--figures`` (dots per inch).
PNG_DPI = 200

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2329; background: #f6f7f9; }
header { background: #1d2d44; color: #fff; padding: 16px 28px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; }
header p { margin: 0; opacity: 0.8; font-size: 13px; }
nav { padding: 8px 28px; background: #e4e8ee; font-size: 13px; }
nav a { margin-right: 14px; color: #1d2d44; }
section { background: #fff; margin: 16px 28px; padding: 12px 20px 18px; border-radius: 6px;
          box-shadow: 0 1px 3px rgba(0,0,0,0.08); }
section h2 { font-size: 18px; margin: 6px 0 10px; }
p.note { font-size: 13px; color: #5a6570; margin: 4px 0; }
table.metrics { border-collapse: collapse; font-size: 13px; }
table.metrics th, table.metrics td { padding: 3px 10px; border-bottom: 1px solid #e4e8ee; text-align: left; }
table.metrics td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.metrics tr.section td { font-weight: 600; background: #f0f2f5; }
.figures { display: flex; flex-wrap: wrap; gap: 14px; }
.figures figure { margin: 0; }
.figures img { display: block; max-width: 100%; }
figcaption { font-size: 12px; color: #5a6570; max-width: 460px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 8px; }
.tile { border: 1px solid #dde2e8; border-radius: 5px; padding: 4px; background: #fff; cursor: pointer;
        font-size: 11px; }
.tile:hover { border-color: #4a7fc1; }
.tile img { width: 100%; height: auto; display: block; }
.tile .name { color: #5a6570; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
.tile.failed { background: #fff4f2; border-color: #e9b4aa; cursor: default; }
.tile.failed .reason { color: #9c2b17; padding: 8px 2px; min-height: 80px; }
.badge { display: inline-block; padding: 0 5px; margin: 1px 2px 1px 0; border-radius: 8px; font-size: 10px;
         line-height: 16px; }
.badge.yes { background: #d9f2de; color: #1e6b2e; }
.badge.no { background: #fbe0dc; color: #9c2b17; }
.badge.info { background: #e4e8ee; color: #1d2d44; }
.viewer-box { display: flex; gap: 14px; align-items: flex-start; flex-wrap: wrap; }
.viewer { width: 520px; height: 400px; position: relative; border: 1px solid #dde2e8; border-radius: 5px; }
.viewer-box select { font-size: 13px; min-width: 220px; }
"""


def escape(text: object) -> str:
    """``text`` as HTML text (``&``, ``<``, ``>`` and quotes escaped)."""
    return html.escape(str(text), quote=True)


def data_image(data: bytes, mime: str) -> str:
    """A ``data:`` URI of ``data`` (base64)."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def badge(label: str, kind: str = "info", title: str = "") -> str:
    """A small coloured label; ``kind`` is ``yes`` (green), ``no`` (red) or ``info`` (grey)."""
    tip = f' title="{escape(title)}"' if title else ""
    return f'<span class="badge {kind}"{tip}>{escape(label)}</span>'


def metric_rows(report: dict, cells) -> list[list[str]]:
    """Rows of a metric table of an evaluation ``report``: a heading row per section (``notes`` and empty
    sections skipped), then per key the escaped key followed by ``cells(section, key, value)`` (HTML strings)."""
    rows = []
    for section, values in report.items():
        if section == "notes" or not isinstance(values, dict) or not values:
            continue
        rows.append([escape(section)])
        rows += [[escape(key), *cells(section, key, value)] for key, value in values.items()]
    return rows


def table(rows: list[list[str]], header: list[str], numeric: set[int] = frozenset()) -> str:
    """An HTML table of already escaped cells; the columns in ``numeric`` are right-aligned. A row of
    one cell is a section heading spanning the table."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = []
    for row in rows:
        if len(row) == 1:
            body.append(f'<tr class="section"><td colspan="{len(header)}">{row[0]}</td></tr>')
            continue
        cells = "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


@dataclass
class Figure:
    """One matplotlib figure of the report.

    Attributes:
        name: file stem under ``--figures`` (letters, digits, ``_`` and ``-``), unique in the page.
        caption: what the figure shows, one or two sentences (plain text).
        figure: the :class:`matplotlib.figure.Figure`; rendered once, then closed by :meth:`render`.
    """

    name: str
    caption: str
    figure: object
    svg: bytes = b""
    png: bytes = b""

    def render(self, png: bool) -> None:
        """Render the SVG (and the PNG when ``png``), then close the matplotlib figure."""
        import matplotlib.pyplot as plt

        if self.figure is None:
            return
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="svg", bbox_inches="tight")
        self.svg = buffer.getvalue()
        if png:
            buffer = io.BytesIO()
            self.figure.savefig(buffer, format="png", dpi=PNG_DPI, bbox_inches="tight")
            self.png = buffer.getvalue()
        plt.close(self.figure)
        self.figure = None

    def html(self) -> str:
        return (
            f'<figure id="fig-{escape(self.name)}"><img alt="{escape(self.caption)}" '
            f'src="{data_image(self.svg, "image/svg+xml")}"><figcaption>{escape(self.caption)}</figcaption></figure>'
        )


@dataclass
class Section:
    """A titled part of the page: ``body`` (HTML, escaped by its builder) then its figures."""

    title: str
    body: str = ""
    figures: list[Figure] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.title.lower())


@dataclass
class Page:
    """The whole report.

    Attributes:
        title: the page title.
        subtitle: one line under it (what was read, when).
        sections: in display order.
        scripts: JavaScript sources inlined at the end of the body, in order.
    """

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)

    @property
    def figures(self) -> list[Figure]:
        return [figure for section in self.sections for figure in section.figures]

    def render(self) -> str:
        """The HTML document; renders (and closes) every figure first."""
        for figure in self.figures:
            figure.render(png=False)
        nav = "".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in self.sections)
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(self.title)}</title><style>{STYLE}</style></head><body>",
            f"<header><h1>{escape(self.title)}</h1><p>{escape(self.subtitle)}</p></header>",
            f"<nav>{nav}</nav>",
        ]
        for section in self.sections:
            figures = "".join(figure.html() for figure in section.figures)
            parts.append(
                f'<section id="{section.anchor}"><h2>{escape(section.title)}</h2>{section.body}'
                + (f'<div class="figures">{figures}</div>' if figures else "")
                + "</section>"
            )
        parts += [f"<script>{_script_safe(script)}</script>" for script in self.scripts]
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, out: str | os.PathLike, figures_dir: str | os.PathLike | None = None) -> Path:
        """Write the page to ``out`` atomically, and each figure as SVG and PNG into ``figures_dir``
        (created if needed) when given.

        Returns:
            ``out`` as an absolute path.

        Raises:
            OSError: ``out`` or ``figures_dir`` cannot be written (nothing is written to ``out`` then).
        """
        from molgen.io import atomic_output, atomic_write_text, check_writable

        check_writable(out)
        if figures_dir is not None:
            figures_dir = Path(figures_dir)
            figures_dir.mkdir(parents=True, exist_ok=True)
            check_writable(figures_dir / "figure.svg")
            for figure in self.figures:
                figure.render(png=True)
        text = self.render()
        if figures_dir is not None:
            for figure in self.figures:
                for suffix, data in ((".svg", figure.svg), (".png", figure.png)):
                    with atomic_output(figures_dir / f"{figure.name}{suffix}") as tmp:
                        tmp.write_bytes(data)
        return atomic_write_text(out, text)


def _script_safe(script: str) -> str:
    """``script`` as the content of a script element.

    Raises:
        ValueError: ``script`` contains ``</script`` (any case), which would end the element early.
    """
    if "</script" in script.lower():
        raise ValueError("an inline script must not contain '</script'")
    return script

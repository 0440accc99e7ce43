"""Interactive 3D views in the report: 3Dmol.js, bundled with molgen, inlined into the page.

3Dmol.js (Rego & Koes 2015; BSD-3-Clause, ``assets/3Dmol-LICENSE.txt``) is shipped as
its minified build ``assets/3Dmol-min.js`` (npm package ``3dmol`` 2.5.5), so a report
opens without a network. Its ~540 kB are paid once per page.

A page holds one viewer per report kind, not one per structure: browsers keep only
about 16 WebGL contexts alive, and a grid of 100 would lose most of them. The viewer
shows one of its items at a time, chosen from a list or by clicking a grid tile that
carries ``data-viewer`` (the viewer's id) and ``data-view`` (the item's index).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from importlib.resources import files

from molgen.report.html import escape

__all__ = ["ViewItem", "viewer_box", "viewer_scripts"]

#: How each kind of item is drawn (3Dmol.js style specs, by ``ViewItem.style``).
STYLES = {
    "molecule": {"stick": {"radius": 0.14, "colorscheme": "grayCarbon"}, "sphere": {"scale": 0.22}},
    "backbone": {"cartoon": {"color": "spectrum"}},
}

_INIT = """
(function () {
  var STYLES = %s;
  var SS = {H: "h", E: "s", "-": "c"};
  document.querySelectorAll(".viewer-box").forEach(function (box) {
    var items = JSON.parse(box.querySelector("script.viewer-data").textContent);
    var select = box.querySelector("select");
    var viewer = $3Dmol.createViewer(box.querySelector(".viewer"), {backgroundColor: "white", antialias: true});
    box.show = function (index) {
      var item = items[index];
      viewer.removeAllModels();
      var model = viewer.addModel(item.data, item.format);
      if (item.ss) {
        model.selectedAtoms({}).forEach(function (atom) { atom.ss = SS[item.ss[atom.resi - 1]] || "c"; });
      }
      viewer.setStyle({}, STYLES[item.style]);
      viewer.zoomTo();
      viewer.render();
      select.value = String(index);
    };
    select.addEventListener("change", function () { box.show(Number(select.value)); });
    box.show(0);
  });
  document.querySelectorAll(".tile[data-view]").forEach(function (tile) {
    tile.addEventListener("click", function () {
      var box = document.getElementById(tile.dataset.viewer);
      box.show(Number(tile.dataset.view));
      box.scrollIntoView({behavior: "smooth", block: "center"});
    });
  });
})();
"""


@dataclass
class ViewItem:
    """One structure the viewer can show.

    Attributes:
        label: its name in the list.
        data: the structure as text in ``format``.
        format: ``"sdf"`` (a molblock) or ``"pdb"``.
        style: a key of :data:`STYLES`.
        ss: backbones: three-state secondary structure per residue (``H``, ``E``, ``-``), drawn
            as helix, sheet or coil by the cartoon; empty to let 3Dmol.js decide.
    """

    label: str
    data: str
    format: str
    style: str
    ss: str = ""


@cache
def library() -> str:
    """The bundled 3Dmol.js source."""
    return (files("molgen.report") / "assets" / "3Dmol-min.js").read_text(encoding="utf-8")


def viewer_scripts() -> list[str]:
    """The scripts a page with viewers needs, in order: the library, then the code that starts the viewers."""
    return [library(), _INIT % json.dumps(STYLES)]


def viewer_box(box_id: str, items: list[ViewItem], note: str = "") -> str:
    """HTML of one viewer over ``items`` (at least one): the canvas, the list to choose from, a note.

    The items travel as JSON in a ``script`` element of type ``application/json``, with ``</``
    written ``<\\/`` so that no structure text can end that element.
    """
    if not items:
        raise ValueError("a viewer needs at least one item")
    options = "".join(f'<option value="{i}">{escape(item.label)}</option>' for i, item in enumerate(items))
    payload = json.dumps([asdict(item) for item in items]).replace("</", "<\\/")
    return (
        f'<div class="viewer-box" id="{escape(box_id)}"><div class="viewer"></div>'
        f'<div><select size="{min(len(items), 16)}">{options}</select>'
        f'<p class="note">{escape(note)}</p></div>'
        f'<script type="application/json" class="viewer-data">{payload}</script></div>'
    )

"""Interactive 3D views in the report: 3Dmol.js, bundled with molgen, inlined into the page.

3Dmol.js (Rego & Koes 2015; BSD-3-Clause, ``assets/3Dmol-LICENSE.txt``) is shipped as
its minified build ``assets/3Dmol-min.js`` (npm package ``3dmol`` 2.5.5), so a report
opens without a network. Its ~540 kB are paid once per page.

A page holds one viewer per report kind, not one per structure: browsers keep only
about 16 WebGL contexts alive, and a grid of 100 would lose most of them. The viewer
shows one of its items at a time, chosen from a list or by clicking a grid tile that
carries ``data-viewer`` (the viewer's id) and ``data-view`` (the item's index).

A viewer can hold a receptor (PDB text, sent once) that stays while its items change:
docked poses are then drawn inside their pocket, the receptor as a cartoon and its residues
within :data:`POCKET_DISTANCE` of the shown pose as sticks, and what lies more than
:data:`SLAB_MARGIN` in front of or behind the pose clipped, so that the protein does not hide it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from importlib.resources import files

from rdkit import Chem, rdBase

from molgen.report.html import escape

__all__ = ["POCKET_DISTANCE", "ViewItem", "molblock", "viewer_box", "viewer_scripts"]

#: How each kind of item is drawn (3Dmol.js style specs, by ``ViewItem.style``), and a viewer's receptor:
#: ``receptor`` all of it, ``pocket`` its residues near the shown item (added to ``receptor``).
STYLES = {
    "molecule": {"stick": {"radius": 0.14, "colorscheme": "grayCarbon"}, "sphere": {"scale": 0.22}},
    "backbone": {"cartoon": {"color": "spectrum"}},
    "pose": {"stick": {"radius": 0.2, "colorscheme": "greenCarbon"}},
    "receptor": {"cartoon": {"color": "#c3cad3", "opacity": 0.7}},
    "pocket": {"stick": {"radius": 0.12, "colorscheme": "whiteCarbon"}},
}
#: Receptor residues with an atom closer than this to the shown item are drawn as sticks (Å).
POCKET_DISTANCE = 5.0
#: With a receptor, what lies farther than this in front of or behind the item is clipped (Å).
SLAB_MARGIN = 3.0

_INIT = """
(function () {
  var STYLES = %s;
  var POCKET = %s;
  var SLAB = %s;
  var SS = {H: "h", E: "s", "-": "c"};
  // the residues of the receptor with an atom within POCKET of an atom of the model, as a selection
  function pocket(receptor, model) {
    var ligand = model.selectedAtoms({}), near = {}, cutoff = POCKET * POCKET;
    receptor.selectedAtoms({}).forEach(function (a) {
      var key = a.chain + ":" + a.resi;
      for (var i = 0; i < ligand.length && !near[key]; i++) {
        var dx = a.x - ligand[i].x, dy = a.y - ligand[i].y, dz = a.z - ligand[i].z;
        near[key] = dx * dx + dy * dy + dz * dz < cutoff;
      }
    });
    return {model: receptor, predicate: function (a) { return near[a.chain + ":" + a.resi] === true; }};
  }
  document.querySelectorAll(".viewer-box").forEach(function (box) {
    var data = JSON.parse(box.querySelector("script.viewer-data").textContent);
    var items = data.items;
    var select = box.querySelector("select");
    var viewer = $3Dmol.createViewer(box.querySelector(".viewer"), {backgroundColor: "white", antialias: true});
    var receptor = data.receptor ? viewer.addModel(data.receptor, "pdb") : null;
    var model = null;
    box.show = function (index) {
      var item = items[index];
      if (model) viewer.removeModel(model);
      model = viewer.addModel(item.data, item.format);
      if (item.ss) {
        model.selectedAtoms({}).forEach(function (atom) { atom.ss = SS[item.ss[atom.resi - 1]] || "c"; });
      }
      viewer.setStyle({model: model}, STYLES[item.style]);
      viewer.zoomTo({model: model});
      if (receptor) {
        viewer.setStyle({model: receptor}, STYLES.receptor);
        viewer.addStyle(pocket(receptor, model), STYLES.pocket);
        viewer.zoom(0.75);  // the pose and its pocket
        // clip the receptor in front of and behind the pocket: SLAB beyond the item's farthest atom
        var atoms = model.selectedAtoms({}), centre = $3Dmol.getExtent(atoms)[2], reach = 0;
        atoms.forEach(function (a) {
          reach = Math.max(reach, Math.hypot(a.x - centre[0], a.y - centre[1], a.z - centre[2]));
        });
        viewer.setSlab(-reach - SLAB, reach + SLAB);
      }
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
    return [library(), _INIT % (json.dumps(STYLES), json.dumps(POCKET_DISTANCE), json.dumps(SLAB_MARGIN))]


def molblock(mol: Chem.Mol) -> str | None:
    """``mol`` as the viewer's ``sdf`` text (a molblock, aromatic bonds kept), or None when RDKit cannot write it."""
    with rdBase.BlockLogs():
        try:
            return Chem.MolToMolBlock(mol, includeStereo=False, kekulize=False)
        except (ValueError, RuntimeError):
            return None


def viewer_box(box_id: str, items: list[ViewItem], note: str = "", receptor: str = "") -> str:
    """HTML of one viewer over ``items`` (at least one): the canvas, the list to choose from, a note.

    Args:
        receptor: PDB text drawn around every item (module docstring); empty for none.

    The items (and the receptor) travel as JSON in a ``script`` element of type ``application/json``,
    with ``</`` written ``<\\/`` so that no structure text can end that element.
    """
    if not items:
        raise ValueError("a viewer needs at least one item")
    options = "".join(f'<option value="{i}">{escape(item.label)}</option>' for i, item in enumerate(items))
    payload = json.dumps({"items": [asdict(item) for item in items], "receptor": receptor}).replace("</", "<\\/")
    return (
        f'<div class="viewer-box" id="{escape(box_id)}"><div class="viewer"></div>'
        f'<div><select size="{min(len(items), 16)}">{options}</select>'
        f'<p class="note">{escape(note)}</p></div>'
        f'<script type="application/json" class="viewer-data">{payload}</script></div>'
    )

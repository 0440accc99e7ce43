"""Docking generated molecules into real protein pockets with AutoDock Vina (``molgen dock``, ``molgen export``).

molgen's molecules are meant to be docked; this package takes any 3D SDF as generated
through a standard pipeline: receptor and ligand preparation with meeko
(:mod:`~molgen.docking.receptor`, :mod:`~molgen.docking.ligands`), the search box
(:mod:`~molgen.docking.box`), Vina's Python bindings (:mod:`~molgen.docking.vina_runner`),
one molecule's result and its SD tags (:mod:`~molgen.docking.results`,
:mod:`~molgen.docking.pipeline`), resumable runs (:mod:`~molgen.docking.progress`) and
the summary (:mod:`~molgen.docking.summary`). The command lives in
:mod:`~molgen.docking.command`. Vina and meeko are the optional extra ``molgen[dock]``
(:mod:`~molgen.docking.dependencies`); nothing here imports them at module load except
the modules that cannot work without them.
"""

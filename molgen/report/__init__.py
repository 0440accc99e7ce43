"""HTML reports with pictures: `molgen report`, and ``--report`` of `molgen sample` / `molgen evaluate`.

One self-contained HTML file per report, readable offline in any browser: figures
inline, the 3D viewer (3Dmol.js, bundled) inline, no request leaves the page.

Modules, one concept each:

    command     the `molgen report` command: which report an input gets, writing it
    html        page assembly: sections, figures as inline images, tables, badges, atomic writing
    plots       matplotlib set-up and the sample-against-reference plot shapes
    viewer      the bundled 3Dmol.js viewer
    statistics  molecule statistics beyond the evaluation's (bond angles, rings, properties) and references
    molecules   the molecule report (grid, 3D, histograms, metrics with published anchors)
    docking     its docking sections (best poses inside the receptor's pocket, scores against a baseline)
    backbones   the backbone report (Ramachandran, geometry, secondary structure, Rg, contacts, 3D)
    runs        the training-run report (loss terms, validation loss, learning rate, throughput)

Text tables of `molgen evaluate` are :mod:`molgen.reports`, not this package.
"""

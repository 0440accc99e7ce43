"""Reports in a real headless browser: the system's Chromium, driven by Playwright (no browser download).

Skipped where Playwright or a Chromium executable is missing (.ci/run installs Debian's chromium when it
can). WebGL runs on SwiftShader, Chromium's software renderer, so the 3D viewer draws without a GPU.
"""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

from molgen.cli import main

pytestmark = pytest.mark.browser

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
    if executable is None:
        pytest.skip("no Chromium executable installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=ARGS)
        yield chromium
        chromium.close()


def open_page(browser, path):
    """The page of ``path`` after load, with its console errors and the requests it made."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors, requests = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_timeout(1000)  # the viewer draws after load
    return page, errors, requests


def canvas_is_drawn(page, box: str = "") -> bool:
    """The canvas of the viewer ``box`` (an element id; default the first viewer) shows more than its background:
    a screenshot of it has many non-white pixels."""
    from PIL import Image

    canvas = page.locator(f"#{box} .viewer canvas" if box else ".viewer canvas").first
    canvas.scroll_into_view_if_needed()
    shot = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("L"))
    return int((shot < 200).sum()) > 200


def test_molecule_report_in_chromium(browser, molecules_sdf, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(molecules_sdf), "-o", str(out), "--reference", "none", "--no-progress"]) == 0
    page, errors, requests = open_page(browser, out)
    assert errors == []
    assert requests == [out.as_uri()]  # the page itself, nothing else
    assert page.locator(".grid .tile img").count() == 5
    assert all(page.locator(".grid .tile img").nth(i).evaluate("i => i.naturalWidth > 0") for i in range(5))
    assert page.locator(".tile.failed").count() == 1
    assert canvas_is_drawn(page)
    page.locator(".tile[data-view]").nth(1).click()  # a tile shows its molecule in the viewer
    assert page.locator(".viewer-box select").input_value() == "1"
    assert errors == []


def test_backbone_report_in_chromium(browser, designs, tmp_path):
    out = tmp_path / "designs.html"
    assert main(["report", str(designs), "-o", str(out), "--no-progress"]) == 0
    page, errors, requests = open_page(browser, out)
    assert errors == [] and requests == [out.as_uri()]
    assert canvas_is_drawn(page)
    assert page.locator("figure img").count() == 5


def test_run_report_in_chromium(browser, run_dir, tmp_path):
    out = tmp_path / "run.html"
    assert main(["report", str(run_dir), "-o", str(out)]) == 0
    page, errors, requests = open_page(browser, out)
    assert errors == [] and requests == [out.as_uri()]
    assert page.locator("figure img").count() == 4


def test_docking_report_in_chromium(browser, docked_sdf, receptor_pdb, baseline_sdf, tmp_path):
    out = tmp_path / "docked.html"
    args = ["report", str(docked_sdf), "--receptor", str(receptor_pdb), "--baseline", str(baseline_sdf)]
    assert main([*args, "--reference", "none", "--no-progress", "-o", str(out)]) == 0
    page, errors, requests = open_page(browser, out)
    assert errors == [] and requests == [out.as_uri()]
    assert page.locator("#fig-docking_scores img").evaluate("i => i.naturalWidth > 0")
    assert canvas_is_drawn(page, "pocket-viewer")  # the receptor and the best pose
    page.locator("#pocket-viewer select").select_option("2")  # another pose in the same pocket
    page.wait_for_timeout(300)
    assert canvas_is_drawn(page, "pocket-viewer")
    assert errors == []

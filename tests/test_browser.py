"""The dashboard in a real headless Chromium: search a species, switch a predictor group off, and
the map changes. Skips when Playwright or a Chromium executable is absent (``.ci/run`` installs
both: Debian's ``chromium`` package, driven through its executable path).

Screenshots are kept in ``$MASKSDM_TEST_ARTIFACTS`` (default ``test-artifacts/``) for a person to
look at.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium executable (apt-get install chromium)"),
]
ARTIFACTS = Path(os.environ.get("MASKSDM_TEST_ARTIFACTS", "test-artifacts"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(map_workspace):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "masksdm", "app", "--workspace", str(map_workspace.path), "--port", str(port),
         "--headless"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        output = process.stdout.read().decode()[-2000:]
        process.stdout.close()
        pytest.fail(f"the dashboard did not start: {output}")
    yield url
    process.terminate()
    process.wait(timeout=20)
    process.stdout.close()


def _map_png(page) -> bytes:
    canvas = page.locator("canvas").first
    canvas.wait_for(state="visible", timeout=60_000)
    page.wait_for_timeout(1500)  # deck.gl draws the image layer after the canvas appears
    return canvas.screenshot()


def _idle(page) -> None:
    """Wait until Streamlit has finished rerunning the script."""
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=60_000)


def test_search_a_species_switch_a_group_off_and_the_map_changes(server, map_workspace):
    from PIL import Image

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    species = map_workspace.species_names[-1]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--use-gl=angle", "--use-angle=swiftshader",
                                                                     "--enable-unsafe-swiftshader"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server, wait_until="load")  # base-map tiles may never load offline
        page.get_by_role("heading", level=1).first.wait_for(timeout=60_000)  # the page has drawn
        page.screenshot(path=ARTIFACTS / "dashboard_start.png", full_page=True)

        search = page.get_by_label("Search species")
        search.fill(species.split()[1])
        search.press("Enter")
        _idle(page)
        page.get_by_role("heading", name=species, exact=True).wait_for(timeout=60_000)
        before = _map_png(page)
        page.screenshot(path=ARTIFACTS / "dashboard_species.png", full_page=True)

        counted = page.get_by_text("predictors on").first.inner_text()
        page.get_by_text("WorldClim (", exact=False).first.click()
        page.get_by_text("predictors on").filter(has_not_text=counted).first.wait_for(timeout=60_000)
        _idle(page)
        after = _map_png(page)
        page.screenshot(path=ARTIFACTS / "dashboard_without_worldclim.png", full_page=True)

        # a click on the map explains that place
        longitude = page.get_by_label("Longitude")
        start = longitude.input_value()
        box = page.locator("canvas").first.bounding_box()
        changed = f"() => document.querySelector('input[aria-label=\"Longitude\"]').value != '{start}'"
        for fx, fy in [(0.45, 0.55), (0.6, 0.5), (0.35, 0.45)]:  # a point may fall between land cells
            page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
            _idle(page)
            try:
                page.wait_for_function(changed, timeout=20_000)
                break
            except playwright.TimeoutError:
                continue
        else:
            pytest.fail("no click on the map changed the place explained")
        page.screenshot(path=ARTIFACTS / "dashboard_clicked_place.png", full_page=True)
        browser.close()
    (ARTIFACTS / "map_before.png").write_bytes(before)
    (ARTIFACTS / "map_after.png").write_bytes(after)
    a = np.asarray(Image.open(ARTIFACTS / "map_before.png").convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(ARTIFACTS / "map_after.png").convert("RGB"), dtype=np.int16)
    assert a.shape == b.shape and a.std() > 5  # the map shows something
    changed = (np.abs(a - b).sum(axis=2) > 30).mean()
    assert changed > 0.01, f"only {changed:.2%} of the map's pixels changed"

"""Real browser: upload a tiny training ZIP on the Train page, watch it train, save the model, then explain a
scan with it on the Imaging page (Grad-CAM of the new user model)."""
from __future__ import annotations

import contextlib
import re
import subprocess

import pytest

from tests.e2e.test_browser import _shot, browser  # noqa: F401 - the shared browser fixture
from tests.support.server import ServerError, running_server
from tests.support.train_sets import image, png, set_files, zip_set

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def train_server(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    with contextlib.ExitStack() as stack:
        try:
            srv = stack.enter_context(running_server(env={"PYTHONUNBUFFERED": "1", "MEDAI_MODEL_DIRS": str(models)},
                                                     log=subprocess.PIPE))
        except ServerError as exc:
            pytest.fail(f"streamlit did not start: {exc}")
        yield srv.url, models


def test_train_a_tiny_set_then_explain_with_the_new_model(train_server, browser, tmp_path):  # noqa: F811
    import numpy as np

    url, models = train_server
    data = tmp_path / "tiny.zip"
    data.write_bytes(zip_set(set_files(24)))
    scan = tmp_path / "disc.png"
    scan.write_bytes(png(image("disc", np.random.default_rng(11))))  # like the training images: in distribution

    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(f"{url}/train")
    page.get_by_text("Choose a training set and settings").wait_for(timeout=60_000)
    sidebar = page.locator("section[data-testid='stSidebar']")
    sidebar.locator("input[type=file]").first.set_input_files(str(data))
    page.get_by_text("48 image files").wait_for(timeout=30_000)
    name = sidebar.get_by_label("Model name")
    name.fill("browser_model")
    name.press("Enter")
    page.wait_for_timeout(800)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"^Trained in \d")).wait_for(timeout=240_000)
    page.get_by_text("Confusion matrix (test split)").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    _shot(page, "train_done.png")
    page.get_by_role("button", name="Save to the model folder").click()
    page.get_by_text("Saved and registered").wait_for(timeout=60_000)
    assert (models / "browser_model" / "model.pt2").is_file()

    page.goto(f"{url}/imaging")
    page.get_by_text("Upload a scan in the sidebar").wait_for(timeout=60_000)
    page.locator("section[data-testid='stSidebar']").get_by_test_id("stSelectbox").first.click()
    page.get_by_role("option", name="browser_model").first.click()
    page.locator("input[type=file]").first.set_input_files(str(scan))
    page.get_by_text("Grad-CAM: '").first.wait_for(timeout=90_000)
    page.get_by_text("browser_model").first.wait_for(timeout=10_000)
    page.wait_for_timeout(1200)
    _shot(page, "imaging_user_model.png")
    page.close()

"""The upload and status pages in a real browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from factories import make_zip, recording_files, without

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts"))


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt")
        pytest.skip("chromium not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context()
    page = context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)  # set by the hook in conftest.py
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def test_operator_uploads_in_the_browser_and_sees_it_on_the_status_page(stack, page, tmp_path):
    rid = f"BROWSER_{stack.base_url[-5:]}"
    archive = make_zip(tmp_path / f"{rid}.zip", recording_files(rid, mp4_size=3 * 1024 * 1024))
    page.goto(stack.url("/"))
    page.set_input_files("#file-input", str(archive))
    assert rid in page.inner_text("#file-choice")
    page.click("#upload-button")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    assert f"Recording {rid} is valid" in page.inner_text("#result-message")
    assert page.eval_on_selector("#upload-bar", "bar => bar.value") == 100
    page.click("#status-link")
    page.wait_for_selector(f"#rec-{rid}")
    assert rid in page.inner_text("table.recordings")


def test_invalid_archive_shows_each_problem_in_the_page(stack, page, tmp_path):
    rid = "BROWSER_BROKEN"
    files = without(recording_files(rid), "camera_params.csv", "/acceleration/")
    archive = make_zip(tmp_path / "broken.zip", files)
    page.goto(stack.url("/"))
    page.set_input_files("#file-input", str(archive))
    page.click("#upload-button")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    assert "2 problems" in page.inner_text("#result-message")
    items = page.locator("#problem-list li").all_inner_texts()
    assert any("camera_params.csv" in item for item in items)
    assert any("acceleration" in item for item in items)


def test_wrong_file_type_is_refused_before_upload(stack, page, tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("not an archive")
    page.goto(stack.url("/"))
    page.set_input_files("#file-input", str(other))
    assert "Only .zip" in page.inner_text("#file-choice")
    assert page.is_disabled("#upload-button")

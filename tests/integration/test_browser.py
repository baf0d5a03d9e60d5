"""The upload and status pages in a real browser (Debian's chromium driven by Playwright).

Uploads go over tus from the vendored tus-js-client; large ones are slowed down with Chromium's
network emulation so that a pause, a reload, going offline or a cut connection happens mid-upload.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import threading
import time
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from factories import make_zip, recording_files, without

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts"))
MB = 1024 * 1024
BIG_MP4 = 60 * MB
# Fast enough to keep the tests short, slow enough that a 60 MB upload takes a few seconds.
THROTTLED = 40 * MB
# Samples both bars, and every state change of the last queue item (a change can be shorter than a sample).
RECORD_PROGRESS = """() => {
  window.seen = { upload: [], extract: [], states: [] };
  const push = (list, value) => { if (list[list.length - 1] !== value) list.push(value); };
  setInterval(() => {
    push(window.seen.upload, document.getElementById("upload-bar").value);
    push(window.seen.extract, document.getElementById("extract-bar").value);
  }, 20);
  const watch = { subtree: true, attributes: true, attributeFilter: ["data-state"] };
  new MutationObserver((records) => records.forEach((r) => push(window.seen.states, r.target.dataset.state)))
    .observe(document.getElementById("queue-list"), watch);
}"""


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
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)  # set by the hook in conftest.py
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def throttle_uploads(page, bytes_per_second: int):
    """Chromium's network emulation, on a CDP session that outlives reloads of the page."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    emulate_network(cdp, bytes_per_second)
    return cdp


def emulate_network(cdp, bytes_per_second: int, offline: bool = False) -> None:
    """-1 lifts the limit."""
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": bytes_per_second},
    )


def stored_uploads(page) -> list[dict]:
    """What tus-js-client keeps in localStorage for resuming (one entry per unfinished upload)."""
    entries = page.evaluate(
        "() => Object.keys(localStorage).filter((k) => k.startsWith('tus::')).map((k) => localStorage[k])"
    )
    return [json.loads(entry) for entry in entries]


def stored_upload_url(page) -> str | None:
    entries = stored_uploads(page)
    return entries[0]["uploadUrl"] if entries else None


def probe(url: str) -> requests.Response:
    return requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=5)


def server_offset(url: str) -> int:
    answer = probe(url)
    assert answer.status_code == 200, answer.headers
    return int(answer.headers["Upload-Offset"])


class DroppingRelay:
    """A TCP relay to the stack whose open connections can all be cut at once, as a network drop does."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.listener.close()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.connections += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(256 * 1024):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        for sock in self.connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.connections.clear()


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def recording_archive(tmp_path: Path, rid: str, mp4_size: int = BIG_MP4) -> tuple[Path, bytes]:
    """A ZIP of a valid recording, and its video's bytes to compare with what the server stored."""
    files = recording_files(rid, mp4_size=mp4_size)
    mp4 = next(data for rel, data in files.items() if rel.endswith(".mp4"))
    return make_zip(tmp_path / f"{rid}.zip", files), mp4


def stored_mp4(stack, rid: str) -> bytes:
    found = list((stack.data_dir / "recordings" / rid).rglob("*.mp4"))
    assert len(found) == 1, found
    return found[0].read_bytes()


def upload(page, stack, archive: Path) -> None:
    page.goto(stack.url("/"))
    page.set_input_files("#file-input", str(archive))
    page.click("#upload-button")


def wait_for_result(page, timeout: float = 60_000) -> str:
    page.wait_for_selector("#result:not([hidden])", timeout=timeout)
    return page.inner_text("#result-message")


def test_upload_shows_progress_then_the_recording_on_the_status_page(stack, page, tmp_path):
    rid = f"BROWSER_{stack.base_url[-5:]}"
    archive = make_zip(tmp_path / f"{rid}.zip", recording_files(rid, mp4_size=8 * MB))
    fetched = []
    page.on("request", lambda req: fetched.append(req.url))
    page.goto(stack.url("/"))
    throttle_uploads(page, 6 * MB)
    page.evaluate(RECORD_PROGRESS)
    page.set_input_files("#file-input", str(archive))
    assert rid in page.inner_text("#file-choice")
    page.click("#upload-button")
    page.wait_for_function("() => /left/.test(document.getElementById('upload-eta').textContent)")
    assert re.search(r"\d+(\.\d+)? %", page.inner_text("#upload-text"))
    assert re.search(r"\d+(\.\d+)? MB/s", page.inner_text("#upload-speed"))
    assert f"Recording {rid} is valid" in wait_for_result(page)
    seen = page.evaluate("() => window.seen")
    assert any(0 < value < 100 for value in seen["upload"]), seen["upload"]
    assert seen["upload"][-1] == 100 and seen["extract"][-1] == 100
    assert seen["states"] == ["waiting", "uploading", "extracting", "done"], seen["states"]
    assert [url for url in fetched if not url.startswith(stack.base_url + "/")] == []
    assert stack.url("/static/vendor/tus-js-client/tus.min.js") in fetched
    page.click("#queue-list li[data-state=done] a")
    page.wait_for_selector(f"#rec-{rid}")
    assert page.url.endswith(f"/status#rec-{rid}")
    assert rid in page.inner_text("table.recordings")


def test_several_files_are_uploaded_one_after_another(stack, page, tmp_path):
    rids = [f"QUEUE_A_{stack.base_url[-5:]}", f"QUEUE_B_{stack.base_url[-5:]}"]
    archives = [str(make_zip(tmp_path / f"{rid}.zip", recording_files(rid))) for rid in rids]
    page.goto(stack.url("/"))
    page.set_input_files("#file-input", archives)
    assert page.locator("#queue-list li[data-state=waiting]").count() == 2
    page.click("#upload-button")
    page.wait_for_selector("#queue-list li:nth-child(2)[data-state=done]", timeout=30_000)
    links = page.locator("#queue-list li[data-state=done] a")
    assert [links.nth(i).get_attribute("href") for i in range(2)] == [f"/status#rec-{rid}" for rid in rids]


def test_pause_and_resume_complete_the_upload_byte_for_byte(stack, page, tmp_path):
    rid = f"PAUSED_{stack.base_url[-5:]}"
    archive, mp4 = recording_archive(tmp_path, rid)
    page.goto(stack.url("/"))
    throttle_uploads(page, THROTTLED)
    page.set_input_files("#file-input", str(archive))
    page.click("#upload-button")
    page.wait_for_function("() => document.getElementById('upload-bar').value > 10")
    page.click("#pause-button")
    assert page.inner_text("#phase-title") == "Paused"
    assert page.is_visible("#resume-button") and not page.is_visible("#pause-button")
    url = stored_upload_url(page)
    time.sleep(0.3)
    paused_at, bar = server_offset(url), page.eval_on_selector("#upload-bar", "bar => bar.value")
    time.sleep(0.7)
    assert server_offset(url) == paused_at > 0
    assert page.eval_on_selector("#upload-bar", "bar => bar.value") == bar
    page.click("#resume-button")
    page.wait_for_selector("#resume-text:not([hidden])")
    assert "Resuming from" in page.inner_text("#resume-text")
    assert f"Recording {rid} is valid" in wait_for_result(page)
    assert stored_mp4(stack, rid) == mp4
    assert stored_uploads(page) == []


def test_choosing_the_same_file_after_a_reload_resumes_it(stack, page, tmp_path):
    rid = f"RELOAD_{stack.base_url[-5:]}"
    archive, mp4 = recording_archive(tmp_path, rid)
    page.goto(stack.url("/"))
    cdp = throttle_uploads(page, THROTTLED)
    page.set_input_files("#file-input", str(archive))
    page.click("#upload-button")
    url = wait_for(lambda: stored_upload_url(page), 10, "the upload URL in localStorage")
    wait_for(lambda: server_offset(url) > 10 * MB, 20, "10 MB on the server")
    page.reload()
    emulate_network(cdp, -1)
    page.set_input_files("#file-input", str(archive))
    page.click("#upload-button")
    page.wait_for_selector("#resume-text:not([hidden])")
    percent = int(re.search(r"Resuming from (\d+) %", page.inner_text("#resume-text")).group(1))
    assert percent > 0
    assert stored_upload_url(page) == url
    assert f"Recording {rid} is valid" in wait_for_result(page)
    assert stored_mp4(stack, rid) == mp4


def test_upload_resumes_by_itself_after_a_dropped_connection(stack, page, tmp_path):
    rid = f"DROPPED_{stack.base_url[-5:]}"
    archive, mp4 = recording_archive(tmp_path, rid, mp4_size=20 * MB)
    with DroppingRelay(int(stack.base_url.rsplit(":", 1)[1])) as relay:
        page.goto(f"http://127.0.0.1:{relay.port}/")
        throttle_uploads(page, THROTTLED)
        page.set_input_files("#file-input", str(archive))
        page.click("#upload-button")
        url = wait_for(lambda: stored_upload_url(page), 10, "the upload URL in localStorage")
        direct = stack.url(urlsplit(url).path)
        wait_for(lambda: server_offset(direct) > 0, 10, "the first bytes on the server")
        relay.cut()
        assert f"Recording {rid} is valid" in wait_for_result(page)
    assert "Resuming from" in page.inner_text("#resume-text")
    assert stored_mp4(stack, rid) == mp4


def test_upload_waits_while_the_browser_is_offline(stack, page, tmp_path):
    rid = f"OFFLINE_{stack.base_url[-5:]}"
    archive, mp4 = recording_archive(tmp_path, rid)
    page.goto(stack.url("/"))
    cdp = throttle_uploads(page, THROTTLED)
    page.set_input_files("#file-input", str(archive))
    page.click("#upload-button")
    url = wait_for(lambda: stored_upload_url(page), 10, "the upload URL in localStorage")
    wait_for(lambda: server_offset(url) > 0, 10, "the first bytes on the server")
    # Going offline lets the running PATCH finish, and the next one fails.
    emulate_network(cdp, THROTTLED, offline=True)
    page.wait_for_selector("#phase-title:text-is('Offline')")
    assert page.get_attribute("#queue-list li", "data-state") == "uploading"
    emulate_network(cdp, -1)
    assert f"Recording {rid} is valid" in wait_for_result(page)
    assert "Resuming from" in page.inner_text("#resume-text")
    assert stored_mp4(stack, rid) == mp4


def test_cancel_deletes_the_partial_upload_on_the_server(stack, page, tmp_path):
    rid = f"CANCEL_{stack.base_url[-5:]}"
    archive, _ = recording_archive(tmp_path, rid)
    page.goto(stack.url("/"))
    throttle_uploads(page, THROTTLED)
    page.set_input_files("#file-input", str(archive))
    page.click("#upload-button")
    url = wait_for(lambda: stored_upload_url(page), 10, "the upload URL in localStorage")
    wait_for(lambda: server_offset(url) > 0, 10, "the first bytes on the server")
    page.click("#cancel-button")
    page.wait_for_selector("#queue-list li[data-state=cancelled]", timeout=10_000)
    assert probe(url).status_code == 404
    assert stored_uploads(page) == []
    assert page.is_disabled("#upload-button")


def test_archive_with_the_wrong_content_is_refused_by_the_server(stack, page, tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"plain text, not a ZIP\n" * 100)
    upload(page, stack, fake)
    assert "not an archive" in wait_for_result(page, 30_000)
    assert page.inner_text("#phase-title") == "Refused"
    assert "not an archive" in page.inner_text("#queue-list li[data-state=refused]")


def test_invalid_archive_shows_each_problem_in_the_page(stack, page, tmp_path):
    rid = "BROWSER_BROKEN"
    files = without(recording_files(rid), "camera_params.csv", "/acceleration/")
    upload(page, stack, make_zip(tmp_path / "broken.zip", files))
    assert "2 problems" in wait_for_result(page, 30_000)
    items = page.locator("#problem-list li").all_inner_texts()
    assert any("camera_params.csv" in item for item in items)
    assert any("acceleration" in item for item in items)
    queued = page.locator("#queue-list li[data-state=refused] .queue-problems li").all_inner_texts()
    assert any("camera_params.csv" in item for item in queued)


def test_wrong_file_type_is_refused_before_upload(stack, page, tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("not an archive")
    sent = []
    page.on("request", lambda req: sent.append(req.url) if "/files/" in req.url else None)
    page.goto(stack.url("/"))
    page.set_input_files("#file-input", str(other))
    assert "Only .zip" in page.inner_text("#file-choice")
    assert page.is_disabled("#upload-button")
    assert page.locator("#queue-list li").count() == 0
    assert sent == []


def test_download_results_button_gives_the_results_zip(stack, page, tmp_path):
    rid = f"DOWNLOAD_{stack.base_url[-5:]}"
    upload(page, stack, make_zip(tmp_path / f"{rid}.zip", recording_files(rid)))
    assert f"Recording {rid} is valid" in wait_for_result(page, 30_000)
    page.goto(stack.url(f"/status#rec-{rid}"))
    button = page.locator(f"#rec-{rid} a.button", has_text="Download results")
    deadline = time.monotonic() + 30
    while not button.count():
        assert time.monotonic() < deadline, page.inner_text(f"#rec-{rid}")
        page.wait_for_timeout(300)
        page.reload()
    with page.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename == f"{rid}_results.zip"
    names = zipfile.ZipFile(io.BytesIO(Path(download.path()).read_bytes())).namelist()
    assert {"supports.csv", "signs.csv"} <= {Path(name).name for name in names}

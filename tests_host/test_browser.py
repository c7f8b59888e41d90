"""Headless Chromium loads every page of www/ through the emulator, three browsers at once,
while the firmware's TCP client and UDP services run beside the web server.

The emulator runs as ``tools/run`` runs it, at 921600 with RTS/CTS (``flow``): the site a
user opens first. The other firmware tests run without flow, where the pty's own buffer
is all that holds the module back."""

import json
import os
import pathlib
import threading

import pytest
from mpy import ROOT
from test_firmware import Firmware

playwright = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.timeout(300)
WWW = pathlib.Path(ROOT) / "www"
PAGES = sorted(p.name for p in WWW.glob("*.html"))
ARTIFACTS = pathlib.Path(ROOT) / "artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def firmware(tmp_path):
    fw = Firmware(tmp_path, baud=921600, root=WWW, flow=True)
    yield fw
    fw.stop()


def browse(fw, failures, loaded, screenshot=None):
    """One browser: every page in turn, every response checked against the file on disk.

    Playwright's sync API belongs to the thread that starts it, so each of the
    three concurrent browsers runs in its own thread with its own instance.
    """
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()
        responses = []
        page.on("response", lambda response: responses.append(response))
        for name in PAGES:
            page.goto(fw.url("/" + name), wait_until="networkidle", timeout=120000)
            for response in responses:  # bodies must be read before the next navigation
                path = response.url.split("127.0.0.1:%d/" % fw.http, 1)[1].split("?")[0] or "index.html"
                try:
                    body = response.body()
                except playwright.Error as e:
                    if path == "api/status" and "navigated away" in str(e):
                        continue  # the page just left polled, and its answer came after goto began
                    raise
                if path == "api/status":
                    ok = response.status == 200 and body.startswith(b"{")
                else:
                    ok = response.status == 200 and body == (WWW / path).read_bytes()
                if not ok:
                    failures.append((path, response.status))
                loaded.add(path)
            responses.clear()
        if screenshot:
            page.goto(fw.url("/status.html"), wait_until="networkidle")
            page.wait_for_timeout(2500)  # let one status poll fill the page
            page.screenshot(path=screenshot, full_page=True)
            counters(fw, page, failures)
        browser.close()


def counters(fw, page, failures):
    """The status page explains every counter the firmware reports, and flags none of a
    healthy start: one reset (the firmware's own restart of the module) is no trouble."""
    rows = page.eval_on_selector_all(
        "#counter-rows tr", "rows => rows.map(r => Array.from(r.cells, c => c.textContent.trim()))"
    )
    reported = set(json.loads(fw.get("/api/status")[2])["counters"])
    shown = {row[0]: row for row in rows}
    if set(shown) != reported:
        failures.append(("counters shown", sorted(set(shown) ^ reported)))
    unexplained = sorted(name for name, row in shown.items() if not row[1])
    if unexplained:
        failures.append(("counters the page does not explain", unexplained))
    if shown.get("resets", [""] * 3)[2] != "1":
        failures.append(("resets after a healthy start", shown.get("resets")))


def test_three_browsers_load_every_page_and_resource_byte_for_byte(firmware):
    failures = []
    loaded = set()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = str(ARTIFACTS / "status-page.png")
    def run(i):
        try:
            browse(firmware, failures, loaded, shot if i == 0 else None)
        except Exception as e:  # a thread's failure must fail the test
            failures.append(("browser %d" % i, repr(e)))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(280)
    assert failures == []
    assert set(PAGES) <= loaded
    assert "api/status" in loaded  # the status script polled through the module
    on_disk = {str(p.relative_to(WWW)) for p in WWW.rglob("*") if p.is_file() and p.suffix != ".gz"}
    assert on_disk - loaded <= {"favicon.ico"}  # every resource was fetched (pages link the SVG icon)
    assert os.path.getsize(shot) > 10000

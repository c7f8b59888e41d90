"""Hostile and careless HTTP clients against the whole firmware (emulator + main.py).

What a user relies on: no request reaches a file outside the site, an
oversized request gets a clean answer and a closed connection, idle or slow
connections cannot lock browsers out, and a download cut off half-way
leaves the others whole. The MicroPython run is what ships; CPython is
added where the interpreters differ (URL decoding errors).
"""

import concurrent.futures
import hashlib
import os
import socket
import struct
import time

import pytest
from test_firmware import Firmware

pytestmark = pytest.mark.timeout(120)

WAYS_OUT = (
    "/../config.json", "/../main.py", "/%2e%2e/config.json", "/%2e%2e%2fconfig.json", "/..%2fmain.py",
    "/.%2e/main.py", "/%252e%252e/config.json", "/%252e%252e%252fmain.py", "/..\\main.py",
    "/%5c..%5cmain.py", "/..%5cconfig.json", "//etc/passwd", "/etc/passwd", "/%2fetc/passwd",
    "/%2e%2e", "/index.html%00.txt", "/%zz/config.json", "/%c0%ae%c0%ae/main.py", "/%ff",
)  # fmt: skip


@pytest.fixture(scope="module", params=["micropython", "cpython"])
def firmware(tmp_path_factory, request):
    fw = Firmware(tmp_path_factory.mktemp(request.param), interpreter=request.param)
    # Beside the site, as on a board: its config.json (written by the harness) and a main.py.
    (fw.www.parent / "main.py").write_text("import secret\n")
    yield fw
    fw.stop()


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The firmware as it ships: MicroPython."""
    fw = Firmware(tmp_path_factory.mktemp("shipped"))
    yield fw
    fw.stop()


def exchange(fw, request, timeout=15):
    """Send raw bytes, read until the server closes; returns everything it said."""
    with socket.create_connection(("127.0.0.1", fw.http), timeout=timeout) as s:
        try:
            s.sendall(request)
        except ConnectionResetError:
            pass  # answered and closed before all of it was sent: read what came
        reply = b""
        try:
            while chunk := s.recv(4096):
                reply += chunk
        except ConnectionResetError:
            pass
        return reply


def status_of(reply):
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else None


@pytest.mark.parametrize("path", WAYS_OUT)
def test_no_way_out_of_the_site(firmware, path):
    reply = exchange(firmware, b"GET %s HTTP/1.0\r\n\r\n" % path.encode())
    assert status_of(reply) == 404, reply[:200]
    assert b"12345678" not in reply and b"import" not in reply


def test_site_files_still_served_beside_the_attempts(firmware):
    assert firmware.get("/index.html")[2] == b"<h1>hello</h1>"
    assert firmware.get("/./index.html")[2] == b"<h1>hello</h1>"


OVERSIZED = {
    "request line": (b"GET /" + b"a" * 3000 + b" HTTP/1.0\r\n\r\n", 414),
    "request line without end": (b"GET /" + b"a" * 100000, 414),
    "one header": (b"GET / HTTP/1.0\r\nX-Big: " + b"b" * 3000 + b"\r\n\r\n", 431),
    "many headers": (b"GET / HTTP/1.0\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(60)) + b"\r\n", 431),
    "header without end": (b"GET / HTTP/1.0\r\nCookie: " + b"c" * 100000, 431),
    "declared body": (b"POST / HTTP/1.0\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000, 413),
    "declared body, name in capitals": (b"POST / HTTP/1.0\r\nCONTENT-LENGTH: 100000\r\n\r\n" + b"x" * 100000, 413),
}  # fmt: skip


@pytest.mark.parametrize("case", OVERSIZED)
def test_oversized_head_gets_a_clean_4xx_and_a_close(firmware, case):
    request, want = OVERSIZED[case]
    reply = exchange(firmware, request)  # returns only once the server has closed
    assert status_of(reply) == want, reply[:200]
    assert firmware.get("/")[2] == b"<h1>hello</h1>"  # and the server goes on


def test_no_debug_routes_unless_configured(shipped):
    assert status_of(exchange(shipped, b"GET /debug/transcript HTTP/1.0\r\n\r\n")) == 404
    assert status_of(exchange(shipped, b"POST /debug/transcript/save HTTP/1.0\r\n\r\n")) in (404, 405)


def test_malformed_request_line_gets_400(shipped):
    for request in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.0\r\nno colon here\r\n\r\n"):
        assert status_of(exchange(shipped, request)) == 400, request


def test_request_split_into_many_small_writes_is_served(shipped):
    with socket.create_connection(("127.0.0.1", shipped.http), timeout=15) as s:
        for piece in (b"GET /ind", b"ex.html HT", b"TP/1.0\r\nHo", b"st: x\r\n", b"\r\n"):
            s.sendall(piece)
            time.sleep(0.05)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    assert status_of(reply) == 200 and reply.endswith(b"<h1>hello</h1>")


IDLE_S = 2.0  # the harness's http.idle_ms
SERVED_WITHIN_S = IDLE_S + 1  # what the issue asks; measured 1.8-2.2 s here


def hold_idle(fw, opening, count=8):
    """``count`` connections that send ``opening`` and then nothing: more than the module has ids."""
    held = [socket.create_connection(("127.0.0.1", fw.http), timeout=30) for _ in range(count)]
    for s in held:
        s.sendall(opening)
    time.sleep(0.2)
    return held


def closed_by_server(s):
    reply = b""
    while chunk := s.recv(4096):
        reply += chunk
    return reply


@pytest.mark.parametrize("opening", [b"", b"GET / HTTP/1.1\r\nHost: x\r\n"], ids=["silent", "half-head"])
def test_eight_idle_connections_do_not_lock_browsers_out(shipped, opening):
    held = hold_idle(shipped, opening)
    try:
        start = time.monotonic()
        assert shipped.get("/index.html", timeout=30)[2] == b"<h1>hello</h1>"
        assert time.monotonic() - start < SERVED_WITHIN_S
        for s in held:  # each was closed by the server, with a 408 if it had started a request
            reply = closed_by_server(s)
            assert reply == b"" if not opening else status_of(reply) == 408
    finally:
        for s in held:
            s.close()


def test_chromium_is_served_past_eight_idle_connections(shipped):
    playwright = pytest.importorskip("playwright.sync_api")
    from test_browser import CHROMIUM_ARGS

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()
        held = hold_idle(shipped, b"")
        try:
            start = time.monotonic()
            response = page.goto(shipped.url("/index.html"), timeout=30000)
            elapsed = time.monotonic() - start
            assert response.status == 200 and response.body() == b"<h1>hello</h1>"
            assert elapsed < SERVED_WITHIN_S, elapsed
        finally:
            for s in held:
                s.close()
            browser.close()


@pytest.mark.parametrize("reset", [True, False], ids=["rst", "close"])
def test_download_aborted_half_way_leaves_the_others_whole(shipped, reset):
    fw = shipped
    want = hashlib.sha256(fw.big).hexdigest()

    def download():
        return hashlib.sha256(fw.get("/big.bin", timeout=60)[2]).hexdigest()

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        others = [pool.submit(download) for _ in range(2)]
        s = socket.create_connection(("127.0.0.1", fw.http), timeout=30)
        s.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
        got = 0
        while got < 20000:
            got += len(s.recv(4096))
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        assert [f.result() for f in others] == [want, want]
    assert download() == want


def test_head_requests_answer_with_the_length_and_leave_no_file_open(shipped):
    """A HEAD gets the headers a GET would, and no open file behind it: a board
    has few file handles, and Microdot never reads (or closes) a HEAD's body."""
    size = len(shipped.big)
    fds = "/proc/%d/fd" % shipped.proc.pid
    before = len(os.listdir(fds))
    most = 0  # counted after each request: the collector's finaliser closes leaked files at random times
    for _ in range(10):
        reply = exchange(shipped, b"HEAD /big.bin HTTP/1.0\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200") and b"\r\nContent-Length: %d" % size in head and body == b""
        most = max(most, len(os.listdir(fds)))
    assert most <= before

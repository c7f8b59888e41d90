"""Latency of a GET of a small page at 921600 baud, with the module's [OK] after an
SSEND delayed by 0 ms and by 50 ms (the emulator's ``ok_delay``).

The page lives in a temporary site root; each figure is the median of
``REQUESTS`` sequential GETs over fresh connections, as a browser's first
request would be. A 1 KB page and its headers leave in one SSEND, so the
[OK] delay only holds the close, which the client does not wait for; a
4 KB page takes three SSENDs and waits for two [OK]s.

Beside each figure, the time the bytes of one such exchange take on the UART at
that rate (both directions, counted by the emulator when the client has its
answer): the part of the latency no driver can remove.
"""

import os
import statistics
import tempfile
import time

from stack import Stack, app_config

REQUESTS = 20
HEAD, TAIL = b"<!doctype html><title>small</title><p>", b"</p>\n"


def page(size):
    return HEAD + b"x" * (size - len(HEAD) - len(TAIL)) + TAIL


def measure(ok_delay_ms, size=1024, baud=921600):
    """Median milliseconds for a GET of a ``size``-byte page, and the median milliseconds
    its bytes take on the UART."""
    want = page(size)
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "small.html"), "wb") as f:
            f.write(want)
        config = app_config(root=root)
        with Stack(baud, config=config, ok_delay=ok_delay_ms / 1000) as stack:
            stack.settle()
            times = []
            wire = []
            for _ in range(REQUESTS):
                before = sum(stack.wire())
                start = time.monotonic()
                if stack.get("/small.html") != want:
                    raise RuntimeError("the page came back wrong")
                times.append((time.monotonic() - start) * 1000)
                wire.append((sum(stack.wire()) - before) * 10000 / baud)  # bytes at baud/10, in ms
                time.sleep(0.05)
            return statistics.median(times), statistics.median(wire)

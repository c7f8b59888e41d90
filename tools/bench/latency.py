"""Latency of a GET of a 1 KB page at 921600 baud, with the module's [OK] after an
SSEND delayed by 0 ms and by 50 ms (the emulator's ``ok_delay``).

The page lives in a temporary site root; each figure is the median of
``REQUESTS`` sequential GETs over fresh connections, as a browser's first
request would be.
"""

import os
import statistics
import tempfile
import time

from stack import Stack, app_config

REQUESTS = 20
HEAD, TAIL = b"<!doctype html><title>1 KB</title><p>", b"</p>\n"
PAGE = HEAD + b"x" * (1024 - len(HEAD) - len(TAIL)) + TAIL


def measure(ok_delay_ms, baud=921600):
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "small.html"), "wb") as f:
            f.write(PAGE)
        config = app_config(root=root)
        with Stack(baud, config=config, ok_delay=ok_delay_ms / 1000) as stack:
            stack.settle()
            times = []
            for _ in range(REQUESTS):
                start = time.monotonic()
                if stack.get("/small.html") != PAGE:
                    raise RuntimeError("the 1 KB page came back wrong")
                times.append((time.monotonic() - start) * 1000)
                time.sleep(0.05)
            return statistics.median(times)

"""The whole firmware's heap while it serves 6 parallel downloads, at ``-X heapsize=128K``.

Runs the firmware as tools/deploy puts it on a board (driver, Microdot and main.py
as app, all .mpy) through heap_fw.py, which
prints the live heap after a collection every 20 ms. ``peak`` is the most
that was live while the downloads ran, ``steady`` what is live once they are
over, ``idle`` before they started. Every download is checked byte for byte.

If the firmware fails at 128K, ``smallest`` tries larger heaps in 8 KB steps, then 16,
and reports the first that serves all six: the figure then says so.
"""

import concurrent.futures
import os
import time

from stack import ROOT, Stack

HEAP = "128K"
FILE = "/img/board-photo.png"  # the site's largest file
CONNECTIONS = 6


def _live(stack, since, until):
    return [int(line.split()[1]) for t, line in list(stack.lines) if since <= t <= until and line.startswith(b"heap ")]


def smallest(baud=921600, sizes=(128, 136, 144, 152, 160, 168, 176, 192, 256)):
    """The figures at the smallest heap (KB) that serves all six downloads, and that size."""
    for kb in sizes:
        try:
            return dict(measure(baud, "%dK" % kb), heap_kb=kb)
        except Exception as e:  # the firmware ran out of memory: a reset, a short read, a timeout
            print("heap %dK: %s" % (kb, e), flush=True)
    raise RuntimeError("no heap up to %dK served six downloads" % sizes[-1])


def measure(baud=921600, heap=HEAP, romfs=None):
    """Live heap in bytes while six downloads run. With ``romfs`` (an image) the code runs
    in place from it as on a board with a ROMFS partition: the figures leave the image
    out, since on a board it is flash, and ``heap`` is the heap besides it."""
    with open(os.path.join(ROOT, "www") + FILE, "rb") as f:
        want = f.read()
    rom = os.path.getsize(romfs) if romfs else 0
    with Stack(baud, "tools/bench/heap_fw.py", heap=heap, romfs=romfs) as stack:
        stack.settle(2)
        start = time.monotonic()
        idle = _live(stack, start - 1, start)
        with concurrent.futures.ThreadPoolExecutor(CONNECTIONS) as pool:
            bodies = list(pool.map(lambda _: stack.get(FILE, timeout=120), range(CONNECTIONS)))
        end = time.monotonic()
        if bodies != [want] * CONNECTIONS:
            raise RuntimeError("a download came back wrong")
        stack.settle(1.5)
        steady = _live(stack, end + 0.5, time.monotonic())
        if stack.proc.poll() is not None:
            raise RuntimeError("the firmware died at heapsize=%s" % heap)
        return {"peak": max(_live(stack, start, end)) - rom, "steady": max(steady) - rom, "idle": max(idle) - rom}

"""The shipping firmware (MicroPython, .mpy driver) under load it will meet in the
field: every chaos knob of the emulator with module resets in the middle, and a
long soak in a board-sized heap. Each request is checked byte for byte against
the file it asked for."""

import http.client
import json
import os
import random
import shutil
import socket
import threading
import time
import urllib.error

import pytest
from mpy import ROOT
from test_firmware import Firmware

CLIENTS = 6
CHAOS_REQUESTS = 1000
RESETS = 3
REQUEST_TIMEOUT_S = 30  # far beyond any transfer here: reaching it is a hang
RECOVERY_S = 10  # after a reset, a request must succeed again within this
RETRY_S = 0.5  # a client waits this long after a failure, as a user or a script would
LIVENESS_GAP_S = 5  # outside reset windows the firmware never goes silent longer
WARM_UP = 300  # soak requests before the heap baseline is taken (see HEAP_DRIFT)
# A board's heap, as the issue asks. By default the soak runs as a board with a ROMFS
# partition does: the driver, Microdot and the application in place from the image,
# the heap besides it (tools/romfs_boot.py). WIZFI_SOAK_FILES=1 runs them from .mpy
# files instead, whose code then sits in the heap (~90 KB after gc on the 64-bit
# port): give it WIZFI_SOAK_HEAP=192K (168K lost one request of 1,000).
SOAK_HEAP = os.environ.get("WIZFI_SOAK_HEAP", "128K")
SOAK_ROMFS = os.environ.get("WIZFI_SOAK_FILES", "") != "1"
# The soak's heap after gc may end at most this far below its baseline, as the
# issue asks. Read while a closed connection's handler was still finishing, it
# scattered by 10 KB (see heap_after_gc); read once only the asking handler runs,
# it ended 0 to 0.5 KB below over 10,000 requests at 128K (three runs). With a
# baseline after 100 requests, about one run in seven failed at -2.1 to -2.2 KB: its
# baseline read up to 2.7 KB higher than the others', before something made once
# (on a path the first 100 requests had not taken) existed. After 300: twenty runs,
# the worst -1.7 KB.
HEAP_DRIFT = 2 * 1024


class Site:
    """A copy of the real site plus a 100 KB binary, and the bytes each request must get back."""

    def __init__(self, tmp):
        self.root = tmp / "www"
        shutil.copytree(os.path.join(ROOT, "www"), self.root)
        (self.root / "big.bin").write_bytes(os.urandom(100 * 1024))
        self.expected = {}  # (path, gzip) -> bytes
        for path in self.root.rglob("*"):
            rel = "/" + path.relative_to(self.root).as_posix()
            if path.is_file() and not rel.endswith(".gz"):
                self.expected[(rel, False)] = path.read_bytes()
                gz = path.with_name(path.name + ".gz")
                if gz.exists():
                    self.expected[(rel, True)] = gz.read_bytes()
        self.expected[("/", False)] = self.expected[("/index.html", False)]

    def mix(self, rng, n, big_share):
        """``n`` requests over every file, ``big_share`` of them the 100 KB binary."""
        small = [key for key in self.expected if key[0] != "/big.bin"]
        return [("/big.bin", False) if rng.random() < big_share else rng.choice(small) for _ in range(n)]


def fetch(fw, path, gzip):
    """One GET. Returns ("ok", seconds) or (kind of failure, detail); a wrong byte,
    a wrong status or a hang is never a clean failure."""
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    try:
        status, _, body = fw.get(path, headers, timeout=REQUEST_TIMEOUT_S)
    except urllib.error.HTTPError as e:
        return "bad status", e.code
    except (TimeoutError, socket.timeout) as e:
        return "hang", repr(e)
    except urllib.error.URLError as e:
        if isinstance(e.reason, (TimeoutError, socket.timeout)):
            return "hang", repr(e)
        return "clean", repr(e)
    except (OSError, http.client.HTTPException) as e:  # refused, reset, closed, short read
        return "clean", repr(e)
    return ("ok", body) if status == 200 else ("bad status", status)


class Liveness:
    """UDP echoes every 0.5 s from a thread: the times the firmware answered."""

    def __init__(self, fw):
        self.fw = fw
        self.answers = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.settimeout(0.5)
        n = 0
        while not self.stopping.is_set():
            n += 1
            ping = b"ping %d" % n
            sent = time.monotonic()
            udp.sendto(ping, ("127.0.0.1", self.fw.udp))
            try:
                while time.monotonic() - sent < 0.5:
                    if udp.recvfrom(100)[0] == ping:
                        self.answers.append(time.monotonic())
                        break
            except OSError:
                pass
            time.sleep(max(0.0, 0.5 - (time.monotonic() - sent)))
        udp.close()

    def stop(self):
        self.stopping.set()
        self.thread.join(5)

    def gaps(self, start, end):
        """Silences between answers (and before the first/after the last) in [start, end]."""
        times = [start] + [t for t in self.answers if start <= t <= end] + [end]
        return [(a, b) for a, b in zip(times, times[1:])]


class Load:
    """Client threads working through a plan of requests, each checked against its
    file. ``results`` holds (start, end, path, gzip, outcome, detail) as they finish."""

    def __init__(self, fw, site, plan, clients):
        self.fw = fw
        self.site = site
        self.plan = list(reversed(plan))
        self.results = []
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _client(self):
        while True:
            with self.lock:
                if not self.plan:
                    return
                path, gzip = self.plan.pop()
            start = time.monotonic()
            outcome, detail = fetch(self.fw, path, gzip)
            if outcome == "ok" and detail != self.site.expected[(path, gzip)]:
                outcome, detail = "wrong bytes", len(detail)
            with self.lock:
                self.results.append((start, time.monotonic(), path, gzip, outcome, detail))
            if outcome != "ok":
                time.sleep(RETRY_S)

    def first_success_since(self, t):
        """When the first request started after ``t`` succeeded, or None yet."""
        with self.lock:
            return min((r[1] for r in self.results if r[0] > t and r[4] == "ok"), default=None)

    def join(self):
        for t in self.threads:
            t.join()
        return self.results


def overlaps(a, b, windows):
    return any(a <= w_end and b >= w_start for w_start, w_end in windows)


def test_chaos_1000_requests_six_clients_three_resets(tmp_path):
    site = Site(tmp_path)
    fw = Firmware(tmp_path, root=site.root)
    try:
        chaos = {"inject": True, "ok_delay": 0.002, "send_error": 0.001, "split": True, "seed": 8}
        assert fw.control(op="chaos", **chaos)["ok"]
        before = fw.control(op="stats")["stats"]
        plan = site.mix(random.Random(8), CHAOS_REQUESTS, big_share=0.05)
        live = Liveness(fw)
        load = Load(fw, site, plan, CLIENTS)
        started = load.started
        windows = []  # (reset, first success of a request started after it)
        for k in range(1, RESETS + 1):
            while len(load.results) < k * CHAOS_REQUESTS // (RESETS + 1):
                time.sleep(0.05)
            reset_at = time.monotonic()
            # Not cut mid-stream: a reset whose banner a cut frame swallows is noticed only
            # at a command timeout (test_firmware covers it), beyond RECOVERY_S.
            assert fw.control(op="reset", cut=False)["ok"]
            back = None
            while back is None and time.monotonic() - reset_at < 3 * RECOVERY_S:
                time.sleep(0.05)
                back = load.first_success_since(reset_at)
            windows.append((reset_at, back if back is not None else float("inf")))
        results = load.join()
        ended = time.monotonic()
        live.stop()
        after = fw.control(op="stats")["stats"]
        status = json.loads(fw.get("/api/status")[2])
    finally:
        alive = fw.proc.poll() is None
        fw.stop()

    did = {key: after[key] - before[key] for key in ("injected", "ok_delayed", "send_errors", "split_writes", "resets")}
    ok = sum(1 for r in results if r[4] == "ok")
    failed = [r for r in results if r[4] != "ok"]
    outside = [r for r in failed if not overlaps(r[0], r[1], windows)]
    recovery = [round(back - reset, 2) for reset, back in windows]
    silences = live.gaps(started, ended)
    quiet = max((b - a for a, b in silences if not overlaps(a, b, windows)), default=0)
    print("\nchaos: %d requests in %.1f s: %d ok, %d failed (%d outside reset windows); recovery %s s;"
          " longest silence outside resets %.1f s; module chaos %s; firmware counters %s"
          % (len(results), ended - started, ok, len(failed), len(outside), recovery, quiet, did, status["counters"]))  # fmt: skip

    assert alive, "the firmware process died"
    assert len(results) == CHAOS_REQUESTS
    assert [r for r in failed if r[4] != "clean"] == [], "a wrong byte, a wrong status or a hang"
    # Every chaos knob really acted on this run, and the three resets happened.
    assert did["injected"] > 0 and did["ok_delayed"] > 0 and did["send_errors"] > 0 and did["split_writes"] > 0
    assert did["resets"] == RESETS
    assert max(recovery) <= RECOVERY_S, recovery
    # A [TCP Send Error] ends the one response it hit (nothing can tell how much
    # of it arrived, so it cannot be resent): the only failures allowed outside
    # a reset window, and at most one per send error.
    assert len(outside) <= did["send_errors"], outside
    assert quiet <= LIVENESS_GAP_S, silences
    assert status["wifi"]["supervisor"] == "up"
    assert status["counters"]["recoveries"] >= 1 + RESETS  # start-up, then each reset
    assert ok >= CHAOS_REQUESTS * 0.9


def status_after_gc(fw):
    """/api/status?gc=1, asked again while the firmware says 503 (its heap is busy for a
    moment), as a monitor would; the soak's own requests get no second chance."""
    for _ in range(50):
        try:
            return json.loads(fw.get("/api/status?gc=1")[2])
        except urllib.error.HTTPError as e:
            if e.code != 503:
                raise
            time.sleep(0.1)
    raise AssertionError("the status page answered 503 for 5 s")


def heap_after_gc(fw, site, deadline_s=10):
    """Free heap after a collection, once every other handler has ended (the asking
    request's own is the one left). A connection the module has closed may still
    have its handler finishing, with its ring, queue and stream: counting sockets
    instead read 10 KB low about half the time. MicroPython's collector is
    conservative: bytes in a recycled buffer that look like a heap address keep
    a dead block alive, so a few small requests go first to overwrite what the
    last transfers left. Whatever is still in flight (a favicon connection not yet
    handed to a handler, a stale word) can only lower a reading, and a leak lowers
    them all: the highest of ten counts. (The median of five read 2.7 KB low in about
    one run in eight on a loaded machine, when three caught a connection; the highest of
    five, once nothing answered 503 any more, read 26.2 to 29.1 KB at one state of the
    heap, and failed one 10,000-request soak in three at -2.9 KB.)"""
    readings = []
    deadline = time.monotonic() + deadline_s
    while len(readings) < 10:
        Load(fw, site, [("/favicon.ico", False)] * 10, 1).join()
        # The favicons' handlers close their sockets after the client has its bytes: wait
        # for them, not for more favicons (whose handlers would be finishing in turn).
        status = status_after_gc(fw)
        while status["handlers"] > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
            status = status_after_gc(fw)
        readings.append(status["heap_free"])
    return max(readings)


@pytest.mark.timeout(3600)
def test_soak_in_a_board_sized_heap(tmp_path, pytestconfig):
    requests = pytestconfig.getoption("soak")
    site = Site(tmp_path)
    fw = Firmware(tmp_path, root=site.root, heap=SOAK_HEAP, romfs=SOAK_ROMFS)
    try:
        plan = site.mix(random.Random(10), requests, big_share=0.02)
        # Warm with more clients than the module has ids, so that every id is in use
        # at some point: the driver keeps the receive rings and output queues of
        # ended connections for the next ones, up to one per id. Those pools are
        # meant to grow to that bound; the baseline is taken once they have.
        warm = Load(fw, site, plan[:WARM_UP], 8).join()
        baseline = heap_after_gc(fw, site)
        # One handler of the six is the sampler's.
        load = Load(fw, site, plan[WARM_UP:], CLIENTS - 1)
        lowest = baseline  # the heap the live objects leave free under load, sampled every 2 s
        while any(t.is_alive() for t in load.threads):
            lowest = min(lowest, status_after_gc(fw)["heap_free"])
            time.sleep(2)
        results = warm + load.join()
        final = heap_after_gc(fw, site)
        counters = status_after_gc(fw)["counters"]
    finally:
        alive = fw.proc.poll() is None
        fw.stop()
    failed = [r for r in results if r[4] != "ok"]
    print("\nsoak: %d requests in %.1f s under heapsize=%s%s: %d failed; heap free after gc: baseline %d,"
          " final %d (%+d); lowest after gc under load %d; requests that waited for heap %d, answered 503 %d"
          % (len(results), results[-1][1] - results[0][0], SOAK_HEAP, " besides the ROMFS image" if SOAK_ROMFS else "",
             len(failed), baseline, final, final - baseline, lowest, counters["request_retries"], counters["busy"]))  # fmt: skip
    # Where a lost request may have gone: a connection whose Socket or ring found no heap,
    # or that no handler took (parked: one that waited for a running handler's heap), or
    # that came back as a frame for an id the driver forgot.
    print("soak: " + ", ".join("%s %d" % (k, counters[k]) for k in ("no_memory", "overflow", "refused", "parked", "adopted", "stray")))
    assert alive, "the firmware process died"
    assert len(results) == requests and failed == [], failed[:5]
    assert baseline - final <= HEAP_DRIFT, "the heap did not come back: %d -> %d" % (baseline, final)

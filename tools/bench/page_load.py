"""The sample site's index page (with its CSS, JS and images) in headless Chromium,
through the emulator and the firmware under the MicroPython unix port, at each baud rate.

Prints the load time, the bytes that crossed the UART both ways, and the ratio of
the load time to the time those bytes take on the wire (1.0 would be a UART never idle).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests_host", "emulator"))

from playwright.sync_api import sync_playwright  # noqa: E402
from emu_support import Running, free_port  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def measure(baud, browser, tmp):
    http = free_port()
    module = Running(baud=baud, ports={80: http, 7: free_port()})
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build.py"), os.path.join(tmp, "mpy")], check=True)
    config = json.load(open(os.path.join(ROOT, "config.json")))
    config["tcp_client"]["enabled"] = False
    path = os.path.join(tmp, "config.json")
    json.dump(config, open(path, "w"))
    env = dict(os.environ, MICROPYPATH=".frozen:" + os.path.join(tmp, "mpy"), WIZFI_CONFIG=path)
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "micropython"), "-X", "heapsize=256K",
                             "main.py", "--uart", module.emu.serial_path], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        url = "http://127.0.0.1:%d/" % http
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "api/status", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)  # let the first status datagram and polls settle
        page = browser.new_context().new_page()
        before = dict(module.emu.stats)
        start = time.monotonic()
        page.goto(url, wait_until="load", timeout=120000)
        seconds = time.monotonic() - start
        wire = sum(module.emu.stats[k] - before[k] for k in ("host_to_module", "module_to_host"))
        page.context.close()
        return seconds, wire
    finally:
        proc.kill()
        proc.wait()
        module.close()


def main():
    bauds = [int(b) for b in sys.argv[1:]] or [115200, 921600]
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        print("%-8s %-10s %-12s %-10s" % ("baud", "load (s)", "UART bytes", "load/wire"))
        for baud in bauds:
            seconds, wire = measure(baud, browser, tmp)
            print("%-8d %-10.2f %-12d %-10.2f" % (baud, seconds, wire, seconds / (wire * 10 / baud)))
        browser.close()


main()

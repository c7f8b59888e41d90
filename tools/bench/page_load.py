"""The sample site's index page (with its CSS, JS and images) in headless Chromium,
through the emulator and the firmware under the MicroPython unix port.

``measure`` returns the load time and the bytes that crossed the UART both ways;
their ratio to the wire time (bytes * 10 / baud) is 1.0 for a UART never idle.
Run alone it prints that for each baud rate given (default 115200 and 921600).
"""

import argparse
import time

from stack import Stack, build

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def launch(playwright):
    return playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)


def measure(baud, browser):
    """(seconds, UART bytes) for one load of the index page in a fresh browser context."""
    with Stack(baud) as stack:
        stack.get("/api/status")
        stack.settle()  # let the first status datagram and polls pass
        context = browser.new_context()
        page = context.new_page()
        before = sum(stack.wire())
        start = time.monotonic()
        page.goto(stack.url(), wait_until="load", timeout=120000)
        seconds = time.monotonic() - start
        wire = sum(stack.wire()) - before
        context.close()
        return seconds, wire


def wire_ratio(baud, seconds, wire):
    return seconds / (wire * 10 / baud)


def main():
    from playwright.sync_api import sync_playwright

    build()
    parser = argparse.ArgumentParser(prog="tools/bench/page_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("baud", type=int, nargs="*", default=[115200, 921600], help="line rates (default: 115200 921600)")
    bauds = parser.parse_args().baud
    with sync_playwright() as p:
        browser = launch(p)
        print("%-8s %-10s %-12s %-10s" % ("baud", "load (s)", "UART bytes", "load/wire"))
        for baud in bauds:
            seconds, wire = measure(baud, browser)
            print("%-8d %-10.2f %-12d %-10.2f" % (baud, seconds, wire, wire_ratio(baud, seconds, wire)))
        browser.close()


if __name__ == "__main__":
    main()

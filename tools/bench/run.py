"""Every benchmark in one run: a table on stdout, the figures as JSON, a chart.

    tools/bench/run [--json FILE] [--chart FILE] [--quick]

Figures (issue 7): tx_ratio and rx_ratio per baud (payload bytes per second over
baud/10), parser_vs_byte_loop, heap_peak_6conn (with the steady heap; and with
the code in place from a ROMFS image, heap_peak_6conn_romfs),
alloc_bytes_per_rx_frame (and per SSEND of a file, alloc_bytes_per_tx_ssend),
page_load_wire_ratio per baud, small_get_ms at [OK] delays of 0 and 50 ms (and
get_4kb_ms, where those delays show), each with the time its bytes take on the
UART (small_get_wire_ms, get_4kb_wire_ms). Every ratio is of two things measured
in this run.
``--quick`` measures throughput at 921600 only, for a fast look.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import heap
import latency
import page_load
import throughput
from stack import MICROPYTHON, ROOT, build, build_romfs

BAUDS = (115200, 460800, 921600)
TARGETS = {
    "tx_ratio": ">= 0.90",
    "rx_ratio": ">= 0.90",
    "parser_vs_byte_loop": ">= 20",
    "heap_peak_6conn": "runs at 128K",
    "heap_size_kb": "128",
    "heap_peak_6conn_romfs": "runs at 128K",
    "alloc_bytes_per_rx_frame": "<= 64",
    "alloc_bytes_per_tx_ssend": "",
    "page_load_s": "",
    "page_load_wire_ratio": "<= 1.3",
    "small_get_ms": "",
    "small_get_wire_ms": "",
    "get_4kb_ms": "",
    "get_4kb_wire_ms": "",
}


def micropython_figures(script, *names):
    """Run a MicroPython bench script and read the ``name value`` lines it prints."""
    env = dict(os.environ, MICROPYPATH=".frozen:lib")
    out = subprocess.run([MICROPYTHON, script], cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return [float(re.search(r"^%s\s+([\d.]+)" % name, out, re.M).group(1)) for name in names]


def page_loads(bauds):
    """{baud: (seconds, UART bytes)} for one load of the index page at each baud rate."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = page_load.launch(p)
        try:
            return {str(b): page_load.measure(b, browser) for b in bauds}
        finally:
            browser.close()


def chart(figures, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bauds = sorted(int(b) for b in figures["tx_ratio"])
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for key, label in (("tx_ratio", "TCP send"), ("rx_ratio", "TCP receive")):
        ax.plot(bauds, [figures[key][str(b)] for b in bauds], marker="o", label=label)
    # What framing leaves on each line: the command before each 1400-byte payload going
    # out, the {sid,ip,port,len} header and CRLF around each frame coming in.
    ax.axhline(1400 / 1418, color="C0", linestyle=":", label="send ceiling (AT+SSEND framing)")
    ax.axhline(1400 / 1426, color="C1", linestyle=":", label="receive ceiling (frame header)")
    ax.axhline(0.90, color="red", linestyle="--", linewidth=0.8, label="target")
    ax.set_xscale("log")
    ax.set_xticks(bauds, [str(b) for b in bauds])
    ax.minorticks_off()
    ax.set_ylim(0.5, 1.02)
    ax.set_xlabel("UART baud rate")
    ax.set_ylabel("payload / line rate")
    ax.set_title("Throughput through driver, module emulator and MicroPython")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)


def show(key, value):
    if isinstance(value, dict):
        text = "  ".join("%s: %s" % (k, _fmt(v)) for k, v in value.items())
    else:
        text = _fmt(value)
    print("%-26s %-44s %s" % (key, text, TARGETS.get(key, "")), flush=True)


def _fmt(value):
    return "%d" % value if isinstance(value, int) or value >= 1000 else "%.3g" % value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--chart", default=os.path.join(ROOT, "build", "bench", "throughput.png"))
    parser.add_argument("--quick", action="store_true", help="throughput at 921600 only")
    args = parser.parse_args()
    build()
    started = time.monotonic()
    bauds = (921600,) if args.quick else BAUDS
    figures = {"tx_ratio": {}, "rx_ratio": {}}
    print("%-26s %-44s %s" % ("figure", "value", "target"))
    for baud in bauds:
        ratios = throughput.measure(baud)
        figures["tx_ratio"][str(baud)] = ratios["tx"]
        figures["rx_ratio"][str(baud)] = ratios["rx"]
    show("tx_ratio", figures["tx_ratio"])
    show("rx_ratio", figures["rx_ratio"])
    for script, keys in (("tools/bench/parser_mp.py", ("parser_vs_byte_loop",)),
                         ("tools/bench/alloc_mp.py", ("alloc_bytes_per_rx_frame", "alloc_bytes_per_tx_ssend"))):  # fmt: skip
        for key, value in zip(keys, micropython_figures(script, *keys)):
            figures[key] = value
            show(key, value)
    live = heap.smallest()
    figures["heap_peak_6conn"] = live["peak"]
    figures["heap_steady_6conn"] = live["steady"]
    figures["heap_idle"] = live["idle"]
    figures["heap_size_kb"] = live["heap_kb"]
    show("heap_peak_6conn", live["peak"])
    show("heap_steady_6conn", live["steady"])
    show("heap_size_kb", live["heap_kb"])
    # The same with the code run in place from a ROMFS image, as a board with a ROMFS
    # partition runs it: at 128K of heap besides the image (which on a board is flash).
    rom = heap.measure(heap=heap.HEAP, romfs=build_romfs())
    figures["heap_peak_6conn_romfs"] = rom["peak"]
    figures["heap_steady_6conn_romfs"] = rom["steady"]
    figures["heap_idle_romfs"] = rom["idle"]
    show("heap_peak_6conn_romfs", rom["peak"])
    show("heap_steady_6conn_romfs", rom["steady"])
    loads = page_loads((115200, 921600))
    figures["page_load_s"] = {b: seconds for b, (seconds, _) in loads.items()}
    figures["page_load_uart_bytes"] = {b: wire for b, (_, wire) in loads.items()}
    figures["page_load_wire_ratio"] = {b: page_load.wire_ratio(int(b), *load) for b, load in loads.items()}
    show("page_load_s", figures["page_load_s"])
    show("page_load_wire_ratio", figures["page_load_wire_ratio"])
    for key, size in (("small_get", 1024), ("get_4kb", 4096)):
        (fast, wire), (slow, _) = latency.measure(0, size), latency.measure(50, size)
        figures[key + "_ms"] = {"ok_0ms": fast, "ok_50ms": slow}
        figures[key + "_wire_ms"] = wire  # its bytes' time on the UART, in the same run
        show(key + "_ms", figures[key + "_ms"])
        show(key + "_wire_ms", wire)
    chart(figures, args.chart)
    print("chart: %s; %.0f s in all" % (os.path.relpath(args.chart, ROOT), time.monotonic() - started))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    sys.exit(main())

"""TCP send and receive throughput through the full stack, as a share of the line rate.

The firmware is tools/bench/throughput_fw.py under the MicroPython unix port;
the module is the emulator paced at the baud rate. Each transfer is sized to
take about ``SECONDS`` on the wire, and timed from the request to the last
byte (send) or to the firmware's ``done`` (receive), so every latency on the
way counts against the figure.
"""

import socket
import threading
import time

from stack import Stack

SECONDS = 2.5


def line_rate(baud):
    return baud / 10  # 8N1: ten bits on the wire per byte


def _transfer(stack, op, n):
    with socket.create_connection(("127.0.0.1", stack.http), timeout=60) as s:
        start = time.monotonic()
        if op == "tx":
            s.sendall(b"tx %d\n" % n)
            got = 0
            while got < n:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("tx: connection ended after %d of %d bytes" % (got, n))
                got += len(chunk)
        else:
            sender = threading.Thread(target=s.sendall, args=(b"rx %d\n" % n + bytes(n),))
            sender.start()
            reply = s.recv(16)
            sender.join()
            if reply != b"done\n":
                raise RuntimeError("rx: firmware answered %r" % reply)
        return n / (time.monotonic() - start)


def measure(baud):
    """{"tx": ratio, "rx": ratio} at ``baud``."""
    n = int(line_rate(baud) * SECONDS)
    with Stack(baud, "tools/bench/throughput_fw.py", ready=b"serving throughput") as stack:
        stack.settle()
        return {op: _transfer(stack, op, n) / line_rate(baud) for op in ("tx", "rx")}

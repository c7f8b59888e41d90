"""Parser throughput against a bare per-byte loop, in one MicroPython process.

Run by tools/bench/parser under the unix port. The stream is back-to-back
1400-byte frames for two sockets with an event line every 8 frames, fed in
the 2 KB pieces a UART reader would hand over. The payload goes into each
socket's Ring, as in the driver. The baseline touches every byte once and
does nothing else, which is the least any per-byte parser has to do.
"""

import gc
import sys
import time

sys.path.append("lib")
from wizfi250.parser import Parser
from wizfi250.ring import Ring

FRAMES = 64
PAYLOAD = 1400
CHUNK = 2048
ROUNDS = 20


class Sink:
    def __init__(self):
        self.rings = [Ring(2 * PAYLOAD) for _ in range(8)]
        self.lines = 0

    def line(self, kind, arg, text):
        self.lines += 1

    def frame(self, sid, length):
        ring = self.rings[sid]
        ring.clear()  # the application reads it all between frames
        return ring

    def error(self, code, text):
        raise AssertionError(text)


def stream():
    out = bytearray()
    body = bytes(range(256)) * 6
    for i in range(FRAMES):
        sid = i & 1
        out += b"{%d,192.168.10.23,%d,%d}" % (sid, 50000 + sid, PAYLOAD)
        out += body[i : i + PAYLOAD] + b"\r\n"
        if i % 8 == 7:
            out += b"\r\n[CONNECT 5]\r\n"
    return bytes(out)


def run_parser(data, parser):
    mv = memoryview(data)
    n = len(data)
    for _ in range(ROUNDS):
        i = 0
        while i < n:
            space = parser.rx.space()
            k = min(len(space), n - i, CHUNK)
            space[:k] = mv[i : i + k]
            parser.rx.commit(k)
            parser.parse()
            i += k


def run_loop(data):
    count = 0
    for _ in range(ROUNDS):
        for c in data:
            count += 1
    return count


def timed(fn, *args):
    gc.collect()
    t0 = time.ticks_us()
    fn(*args)
    return time.ticks_diff(time.ticks_us(), t0)


def main():
    data = stream()
    sink = Sink()
    parser = Parser(sink)
    total = len(data) * ROUNDS
    t_parser = timed(run_parser, data, parser)
    assert sink.lines == ROUNDS * FRAMES // 8
    t_loop = timed(run_loop, data)
    gc.collect()
    before = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    print("bytes parsed      %d (%d frames of %d bytes)" % (total, FRAMES * ROUNDS, PAYLOAD))
    print("parser            %.1f MB/s" % (total / t_parser))
    print("per-byte loop     %.1f MB/s" % (total / t_loop))
    print("parser_vs_byte_loop %.1f" % (t_loop / t_parser))
    return before


main()

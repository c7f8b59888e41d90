"""Parser throughput against a bare per-byte loop, in one MicroPython process.

Run by tools/bench/parser under the unix port (MICROPYPATH=.frozen:lib). The stream is back-to-back
1400-byte frames for two sockets with an event line every 8 frames, fed in
the 2 KB pieces a UART reader would hand over. The payload goes into each
socket's Ring, as in the driver. The baseline touches every byte once and
does nothing else, which is the least any per-byte parser has to do.
"""

import gc
import time

from wizfi250.parser import Parser
from wizfi250.ring import Ring

FRAMES = 64
PAYLOAD = 1400
CHUNK = 2048
ROUNDS = 20
TRIES = 5


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
    # Alternate the two and keep each one's best run: a shared machine's noise
    # then slows both alike instead of skewing the ratio.
    t_parser = t_loop = None
    for _ in range(TRIES):
        t = timed(run_parser, data, parser)
        t_parser = t if t_parser is None else min(t_parser, t)
        t = timed(run_loop, data)
        t_loop = t if t_loop is None else min(t_loop, t)
    assert sink.lines == TRIES * ROUNDS * FRAMES // 8
    print("bytes per run       %d (%d frames of %d bytes, fed in %d-byte reads)" % (total, FRAMES * ROUNDS, PAYLOAD, CHUNK))
    print("parser              %.1f MB/s" % (total / t_parser))
    print("per-byte loop       %.1f MB/s" % (total / t_loop))
    print("parser_vs_byte_loop %.1f" % (t_loop / t_parser))


main()

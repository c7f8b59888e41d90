"""Random, valid module output and what a correct parser must make of it.

Shared by the hypothesis tests (CPython) and the seeded random tests that
run under MicroPython. Randomness comes from a chooser with ``int(lo, hi)``
(inclusive) and ``bytes(n)``, so hypothesis can shrink a failure to a small example.

``Script`` collects module output together with the expectations: the
lines the parser must report (kind, arg, text) and every socket's payload
bytes in order. Its subclass in cases_parser.py adds every line kind and
splits them with frames at any byte, as the module does (reference 4.7).
"""

import random
import sys

# Frames up to the module's 1460 bytes under CPython. Under MicroPython the
# tests run in a 64 KB heap beside the driver (42 KB of it code on the 64-bit
# port), so frames stay smaller there; a few arriving before the app reads
# still fill the 128-byte rings of the interleave case (back-pressure).
SMALL = sys.implementation.name == "micropython"
MAX_FRAME = 96 if SMALL else 1460
MAX_ITEMS = 12 if SMALL else 30  # messages per random script

# Payload pieces chosen to look like everything the parser must not be fooled by.
TRICKY = (b"[OK]\r\n", b"{1,10.0.0.1,80,5}", b"\r\n", b"\x00\xff", b"{", b"}", b"[CONNECT 3]", b"\r", b"\n")


class RandomChooser:
    """``int(lo, hi)`` from the ``random`` module (MicroPython runs)."""

    def __init__(self, seed):
        random.seed(seed)

    def int(self, lo, hi):
        return random.randint(lo, hi)

    def bytes(self, n):
        return bytes([random.getrandbits(8) for _ in range(n)])


class Script:
    def __init__(self, pick):
        self.pick = pick
        self.out = []  # byte strings; joined by data()
        self.lines = []  # expected (kind, arg, text)
        self.payload = {}  # sid -> bytearray, expected payload
        self.frames = []  # expected (sid, length), in order

    def data(self):
        return b"".join(self.out)

    def payload_bytes(self, n):
        pick = self.pick
        parts = []
        size = 0
        while size < n:
            if pick.int(0, 3) == 0:
                piece = TRICKY[pick.int(0, len(TRICKY) - 1)]
            else:
                piece = pick.bytes(pick.int(1, 40))
            parts.append(piece)
            size += len(piece)
        return b"".join(parts)[:n]

    def peer(self):
        pick = self.pick
        return "%d.%d.%d.%d" % (pick.int(1, 255), pick.int(0, 255), pick.int(0, 255), pick.int(0, 255)), pick.int(1, 65535)

    def frame_bytes(self, sid=None, peer=None):
        """A frame; ``peer`` (ip, port) is its socket's, as a TCP socket's frames all share
        one (a random one if not given: enough for the parser, never for a TCP socket)."""
        pick = self.pick
        if sid is None:
            sid = pick.int(0, 7)
        n = pick.int(0, 3) and pick.int(0, min(200, MAX_FRAME)) or pick.int(0, MAX_FRAME)
        body = self.payload_bytes(n)
        ip, port = peer or self.peer()
        self.frames.append((sid, n))
        buf = self.payload.get(sid)
        if buf is None:
            buf = self.payload[sid] = bytearray()
        buf += body
        return b"{%d,%s,%d,%d}" % (sid, ip.encode(), port, n) + body + b"\r\n"

    def frame(self, sid=None):
        self.out.append(self.frame_bytes(sid))


def cutter(pick):
    """A ``cut`` function for FakeUART / chunked feeding: 1 byte up to everything."""
    mode = pick.int(0, 2)
    if mode == 0:
        return lambda n: 1
    if mode == 1:
        size = pick.int(1, 64)
        return lambda n: size
    # Sizes from a little LCG seeded once: one draw per script, not one per chunk.
    state = [pick.int(0, 0x7FFFFFFF)]

    def cut(n):
        state[0] = (state[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return 1 + (state[0] >> 8) % n

    return cut


def chunks(data, cut):
    i = 0
    while i < len(data):
        n = max(1, min(len(data) - i, cut(len(data) - i)))
        yield data[i : i + n]
        i += n

"""The last few KB of UART traffic, both directions, for a field problem report.

A module misbehaving in the field can rarely be reproduced at the desk, and
a board has no room for an unbounded log. ``Transcript`` keeps the newest
``size`` bytes in one preallocated ring: each chunk the transport moves is
stored as a 7-byte header (direction, milliseconds since start, length) and
its bytes; the oldest chunks are dropped whole to make room. Recording copies
slices into the ring and allocates nothing per byte; with no transcript the
transport is not wrapped at all, so it costs nothing when off.

``lines()`` writes it out in the emulator's transcript format (one chunk a
line: seconds, ``>`` host to module or ``<`` module to host, the bytes as a
Python literal), which ``tools/replay`` reads.
"""

from .compat import ticks_diff, ticks_ms

TO_MODULE = 62  # ord(">")
FROM_MODULE = 60  # ord("<")
_HEADER = 7
_LINE_BYTES = 256  # bytes per output line: keeps each repr() small on a small heap


class Transcript:
    def __init__(self, size):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.start = ticks_ms()
        self.oldest = 0  # offset of the oldest chunk's header
        self.used = 0  # bytes held, headers included

    def record(self, direction, data, n):
        """Keep ``data[:n]`` as one chunk moving in ``direction``."""
        if not n:
            return
        size = len(self.buf)
        most = min(size - _HEADER, 0xFFFF)
        if n > most:  # only the end of a chunk bigger than the whole ring
            data = memoryview(data)[n - most : n]
            n = most
        buf = self.buf
        while size - self.used < n + _HEADER:
            drop = _HEADER + (buf[(self.oldest + 5) % size] << 8 | buf[(self.oldest + 6) % size])
            self.oldest = (self.oldest + drop) % size
            self.used -= drop
        at = (self.oldest + self.used) % size
        ms = ticks_diff(ticks_ms(), self.start) & 0xFFFFFFFF
        for i, b in enumerate((direction, ms >> 24, ms >> 16 & 255, ms >> 8 & 255, ms & 255, n >> 8, n & 255)):
            buf[(at + i) % size] = b
        at = (at + _HEADER) % size
        first = min(n, size - at)
        self.mv[at : at + first] = memoryview(data)[:first]
        if first < n:
            self.mv[: n - first] = memoryview(data)[first:n]
        self.used += n + _HEADER

    def chunks(self):
        """``(direction, ms, bytes)`` for every chunk held, oldest first.

        Works on a copy taken at the start, so recording goes on meanwhile
        (serving the transcript is UART traffic too) without tearing it.
        """
        buf = bytes(self.buf)
        size = len(buf)
        at = self.oldest
        left = self.used
        while left:
            ms = buf[(at + 1) % size] << 24 | buf[(at + 2) % size] << 16 | buf[(at + 3) % size] << 8 | buf[(at + 4) % size]
            n = buf[(at + 5) % size] << 8 | buf[(at + 6) % size]
            start = (at + _HEADER) % size
            if start + n <= size:
                data = buf[start : start + n]
            else:
                data = buf[start:] + buf[: n - size + start]
            yield buf[at], ms, data
            at = (start + n) % size
            left -= _HEADER + n

    def lines(self):
        """The transcript as text lines, each ending in a newline."""
        for direction, ms, data in self.chunks():
            for i in range(0, len(data), _LINE_BYTES):
                yield "%d.%03d %s %r\n" % (ms // 1000, ms % 1000, chr(direction), data[i : i + _LINE_BYTES])

    def save(self, path):
        """Write it to a file (on a board: flash)."""
        with open(path, "w") as f:
            for line in self.lines():
                f.write(line)


class Recording:
    """A transport that copies everything it moves into a ``Transcript``."""

    def __init__(self, transport, transcript):
        self.transport = transport
        self.transcript = transcript

    async def readinto(self, buf):
        n = await self.transport.readinto(buf)
        self.transcript.record(FROM_MODULE, buf, n)
        return n

    async def write(self, data):
        self.transcript.record(TO_MODULE, data, len(data))
        await self.transport.write(data)

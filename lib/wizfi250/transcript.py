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
Python literal), which ``tools/replay`` reads. The application's hooks (the
debug routes, the save on a module reset) live here too, so that none of it
is imported, and none of its code takes heap, while the transcript is off.
"""

from . import parser as P
from .compat import ticks_diff, ticks_ms

TO_MODULE = 62  # ord(">")
FROM_MODULE = 60  # ord("<")
_HEADER = 7
_LINE_BYTES = 256  # bytes per output line: keeps each repr() small on a small heap
_WRAP = 0x3FFFFFFF  # a small int on every port


class Transcript:
    def __init__(self, size):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.start = ticks_ms()
        self.oldest = 0  # offset of the oldest chunk's header
        self.used = 0  # bytes held, headers included
        self.count = 0  # chunks held
        self.drops = 0  # chunks dropped so far, modulo _WRAP: readers check it to skip overwritten ones

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
            self.count -= 1
            self.drops = (self.drops + 1) & _WRAP
        at = (self.oldest + self.used) % size
        # Its low 32 bits, byte by byte: a 0xFFFFFFFF mask is a long int on a 32-bit port
        # (long-int arithmetic on every record, and no loading at all without long ints).
        ms = ticks_diff(ticks_ms(), self.start)
        # Seven stores, no tuple or loop: this runs for every UART read and write.
        buf[at] = direction
        buf[(at + 1) % size] = ms >> 24 & 255
        buf[(at + 2) % size] = ms >> 16 & 255
        buf[(at + 3) % size] = ms >> 8 & 255
        buf[(at + 4) % size] = ms & 255
        buf[(at + 5) % size] = n >> 8
        buf[(at + 6) % size] = n & 255
        at = (at + _HEADER) % size
        src = data if type(data) is memoryview else memoryview(data)
        first = size - at
        if first >= n:
            self.mv[at : at + n] = src[:n]
        else:
            self.mv[at:] = src[:first]
            self.mv[: n - first] = src[first:n]
        self.used += n + _HEADER
        self.count += 1

    def pieces(self, most):
        """``(direction, ms, bytes)`` of at most ``most`` bytes each, oldest chunk first.

        Reads the ring in place while recording goes on (serving the
        transcript is UART traffic too): it stops at the chunks held when it
        started, and skips what was overwritten between two pieces. No copy
        of the whole ring, which a fragmented heap may not have room for.
        """
        buf = self.buf
        size = len(buf)
        start = self.drops
        total = self.count
        index = 0  # chunks read since the start
        at = self.oldest
        while index < total:
            dropped = (self.drops - start) & _WRAP
            if dropped > index:  # overwritten meanwhile: go on from the oldest left
                at = self.oldest
                index = dropped
                continue
            direction = buf[at]
            ms = buf[(at + 1) % size] << 24 | buf[(at + 2) % size] << 16 | buf[(at + 3) % size] << 8 | buf[(at + 4) % size]
            n = buf[(at + 5) % size] << 8 | buf[(at + 6) % size]
            done = 0
            while done < n and (self.drops - start) & _WRAP <= index:
                k = min(most, n - done)
                i = (at + _HEADER + done) % size
                if i + k <= size:
                    piece = bytes(self.mv[i : i + k])
                else:
                    piece = bytes(self.mv[i:]) + bytes(self.mv[: i + k - size])
                done += k
                yield direction, ms, piece
            at = (at + _HEADER + n) % size
            index += 1

    def chunks(self):
        """``(direction, ms, bytes)`` per chunk held, oldest first."""
        return self.pieces(0xFFFF)

    def lines(self):
        """The transcript as text lines in the emulator's format, each ending in a newline."""
        for direction, ms, data in self.pieces(_LINE_BYTES):
            yield "%d.%03d %s %r\n" % (ms // 1000, ms % 1000, chr(direction), data)

    def save(self, path):
        """Write it to a file (on a board: flash)."""
        with open(path, "w") as f:
            for line in self.lines():
                f.write(line)


    def add_routes(self, app, save_to):
        """On a Microdot ``app``: ``GET /debug/transcript``, the transcript as text;
        ``POST /debug/transcript/save``, the same written to ``save_to`` (flash)."""

        @app.route("/debug/transcript")
        async def show(request):
            return self.lines(), 200, {"Content-Type": "text/plain; charset=utf-8"}

        @app.route("/debug/transcript/save", methods=["POST"])
        async def save(request):
            self.save(save_to)
            return "saved to %s\n" % save_to

    def save_on_reset(self, net, save_to):
        """Write it to ``save_to`` when the module restarts: what led up to it is the report."""

        def on_event(kind, arg):
            if kind == P.RESET or kind == P.BANNER:
                self.save(save_to)

        net.listeners.append(on_event)


class Recording:
    """A transport that copies everything it moves into a ``Transcript``.

    The Wi-Fi key is not recorded: a transcript goes to whoever asks for
    it, and ``AT+WSEC=mode,security,key`` is kept as ``...,security,***``.
    """

    def __init__(self, transport, transcript):
        self.transport = transport
        self.transcript = transcript

    async def readinto(self, buf):
        n = await self.transport.readinto(buf)
        self.transcript.record(FROM_MODULE, buf, n)
        return n

    async def write(self, data):
        if type(data) is bytes and data.startswith(b"AT+WSEC="):
            kept = data[: data.find(b",", data.find(b",") + 1) + 1] or b"AT+WSEC="
            self.transcript.record(TO_MODULE, kept + b"***\r", len(kept) + 4)
        else:
            self.transcript.record(TO_MODULE, data, len(data))
        await self.transport.write(data)

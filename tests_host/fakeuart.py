"""A scripted module on the far side of a fake UART, for the engine tests.

Runs under CPython and MicroPython alike. The test queues module output
with ``emit``; ``cut`` decides how many bytes each ``readinto`` returns, so
a test can split the output at any byte boundary (down to one byte). Writes
from the driver are recorded in ``written`` and passed to ``on_write`` so a
test can answer commands and inject events at chosen points.
"""

import asyncio

from check import eq  # noqa: F401  (re-exported for the engine tests)
from wizfi250.engine import Engine


class FakeUART:
    def __init__(self, cut=None):
        self.out = []  # module output not yet read by the driver, as emitted
        self.pos = 0  # bytes of out[0] already read
        self.cut = cut  # callable(available) -> bytes to hand over, or None for all
        self.written = bytearray()
        self.on_write = None
        self.reads = 0
        self._ready = asyncio.Event()

    def emit(self, data):
        if data:
            self.out.append(data)  # queued, never joined: a 64 KB heap has no room for copies
            self._ready.set()

    def pending(self):
        return sum(len(chunk) for chunk in self.out) - self.pos

    async def readinto(self, buf):
        while not self.out:
            self._ready.clear()
            await self._ready.wait()
        n = self.pending()
        if self.cut is not None:
            n = max(1, min(n, self.cut(n)))
        n = min(n, len(buf))
        got = 0
        while got < n:  # across emitted chunks, as one UART read would be
            chunk = self.out[0]
            k = min(n - got, len(chunk) - self.pos)
            buf[got : got + k] = chunk[self.pos : self.pos + k]
            got += k
            self.pos += k
            if self.pos == len(chunk):
                self.out.pop(0)
                self.pos = 0
        self.reads += 1
        await asyncio.sleep(0)  # let waiters run between reads, as a real UART would
        return n

    async def write(self, data):
        data = bytes(data)
        self.written += data
        if self.on_write is not None:
            self.on_write(data)


class Module:
    """Answers the driver's commands on a FakeUART: the longest matching prefix in ``replies``."""

    def __init__(self, cut=None):
        self.uart = FakeUART(cut)
        self.uart.on_write = self.on_write
        self.replies = {}
        self.commands = []
        self.payloads = []
        self.expect = 0  # payload bytes the module is waiting for
        self.after_payload = b"[OK]\r\n"

    def on_write(self, data):
        if self.expect:
            self.payloads.append(data)
            self.expect -= len(data)
            self.uart.emit(self.after_payload)
            return
        cmd = data.rstrip(b"\r")
        self.commands.append(cmd)
        best = b""  # the longest matching prefix answers
        for prefix in self.replies:
            if cmd.startswith(prefix) and len(prefix) >= len(best):
                best = prefix
        if best or b"" in self.replies:
            reply = self.replies[best]
            if callable(reply):
                reply = reply(cmd)
            self.uart.emit(reply)
            if cmd.startswith(b"AT+SSEND") and not reply.startswith(b"[ERROR"):
                self.expect = int(cmd.split(b",")[3])


def engine_with(module, socket_rx=512, **kw):
    engine = Engine(module.uart, rx_size=256, max_line=200, socket_rx=socket_rx, **kw)
    events = []
    engine.on_event = lambda kind, arg: events.append((kind, arg))
    engine.start()
    return engine, events


def run(coro):
    """asyncio.run, then two more turns so stopped reader tasks end and free their engine,
    and the tickers they cancel end too."""

    async def main():
        try:
            return await coro
        finally:
            await asyncio.sleep(0)
            await asyncio.sleep(0)

    return asyncio.run(main())


async def settle():
    for _ in range(20):
        await asyncio.sleep(0)


async def fails(coro, errno):
    """Await ``coro`` and check that it raises ``OSError(errno)``, or ``errno`` itself when
    that is an exception class (``ValueError`` for a value refused before it is sent)."""
    error = errno if isinstance(errno, type) else OSError
    try:
        await coro
    except error as e:
        if error is OSError:
            eq(e.args[0], errno)
        return
    raise AssertionError("no %r" % (errno,))

"""Heap bytes the driver allocates per received 1400-byte frame, and per 1400-byte
SSEND of a file, under MicroPython.

Run by tools/bench/run under the unix port (MICROPYPATH=.frozen:lib). A scripted
UART hands the engine back-to-back frames for one TCP socket in 512-byte reads
(through ``readinto_now``, as a UART with bytes waiting does);
the application reads them with ``Stream.readinto`` into one buffer, as an
application that cares about its heap would. Sending, a scripted module answers
each SSEND's line with its prompt and its payload with ``[OK]``, while a file goes
out through ``Stream.send_from``, as the web server sends one. The collector is off
while it runs, so ``gc.mem_alloc()`` grows by exactly what was allocated.
The scripted UARTs allocate nothing themselves (their bytes are made beforehand).
"""

import asyncio
import gc

from wizfi250.engine import Engine
from wizfi250.sockets import TCP
from wizfi250.stream import Stream

PAYLOAD = 1400
WARM = 20  # frames before measuring: pools, first-use attributes
FRAMES = 200
READ = 512
SENDS = 100


class ScriptedUART:
    def __init__(self, pieces):
        self.pieces = pieces
        self.i = 0
        self.idle = asyncio.Event()

    def readinto_now(self, buf):
        """What a UART with bytes in its buffer does (see transport.py)."""
        if self.i == len(self.pieces):
            return 0
        piece = self.pieces[self.i]
        self.i += 1
        buf[: len(piece)] = piece
        return len(piece)

    async def readinto(self, buf):
        await self.idle.wait()  # only called when readinto_now had nothing: the module is quiet

    async def write(self, data):
        pass


class AnsweringUART:
    """A module that takes every SSEND: a prompt for its line, ``[OK]`` for its payload."""

    def __init__(self):
        self.idle = asyncio.Event()
        self.answer = None
        self.prompts = {b"AT+SSEND=0,,,%d\r" % n: b"[0,,,%d]\r\n" % n for n in range(1, PAYLOAD + 1)}

    def readinto_now(self, buf):
        answer = self.answer
        if answer is None:
            return 0
        self.answer = None
        buf[: len(answer)] = answer
        return len(answer)

    async def readinto(self, buf):
        while self.answer is None:
            self.idle.clear()
            await self.idle.wait()
        return self.readinto_now(buf)

    async def write(self, data):
        self.answer = self.prompts.get(data, b"[OK]\r\n") if isinstance(data, bytes) else b"[OK]\r\n"
        self.idle.set()


class File:
    """``n`` bytes to send, handed out as a file's ``readinto`` does."""

    def __init__(self, n):
        self.left = n

    def readinto(self, buf):
        n = min(len(buf), self.left)
        self.left -= n
        return n


def pieces(frames):
    data = bytearray()
    body = bytes(range(256)) * 7
    for i in range(frames):
        data += b"{0,192.168.10.23,50000,%d}" % PAYLOAD + body[i % 256 : i % 256 + PAYLOAD] + b"\r\n"
    view = memoryview(bytes(data))
    return [view[i : i + READ] for i in range(0, len(view), READ)]


async def per_send():
    uart = AnsweringUART()
    engine = Engine(uart, rings=1)
    stream = Stream(engine, engine._new_socket(0, TCP))
    engine.start()
    stream.write(b"HTTP/1.0 200 OK\r\n\r\n")  # headers, then the file, as a response goes
    await stream.send_from(File(PAYLOAD * WARM))
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    await stream.send_from(File(PAYLOAD * SENDS))
    allocated = gc.mem_alloc() - before
    gc.enable()
    engine.stop()
    print("sends               %d of %d bytes from a file, with send_from" % (SENDS, PAYLOAD))
    print("alloc_bytes_per_tx_ssend %.1f" % (allocated / SENDS))


async def per_frame():
    uart = ScriptedUART(pieces(WARM + FRAMES))
    engine = Engine(uart)
    sock = engine._new_socket(0, TCP)
    engine.start()
    stream = Stream(engine, sock)
    buf = bytearray(PAYLOAD)
    want = PAYLOAD * WARM
    got = 0
    while got < want:
        got += await stream.readinto(buf)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    want += PAYLOAD * FRAMES
    while got < want:
        got += await stream.readinto(buf)
    allocated = gc.mem_alloc() - before
    gc.enable()
    engine.stop()
    print("frames              %d of %d bytes, read with readinto" % (FRAMES, PAYLOAD))
    print("alloc_bytes_per_rx_frame %.1f" % (allocated / FRAMES))


asyncio.run(per_frame())
asyncio.run(per_send())

"""Heap bytes the driver allocates per received 1400-byte frame, under MicroPython.

Run by tools/bench/run under the unix port (MICROPYPATH=.frozen:lib). A scripted
UART hands the engine back-to-back frames for one TCP socket in 512-byte reads
(through ``readinto_now``, as a UART with bytes waiting does);
the application reads them with ``Stream.readinto`` into one buffer, as an
application that cares about its heap would. The collector is off while the
frames flow, so ``gc.mem_alloc()`` grows by exactly what was allocated.
The scripted UART allocates nothing itself (its pieces are made beforehand).
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


def pieces(frames):
    data = bytearray()
    body = bytes(range(256)) * 7
    for i in range(frames):
        data += b"{0,192.168.10.23,50000,%d}" % PAYLOAD + body[i % 256 : i % 256 + PAYLOAD] + b"\r\n"
    view = memoryview(bytes(data))
    return [view[i : i + READ] for i in range(0, len(view), READ)]


async def main():
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


asyncio.run(main())

"""The driver's transport for CPython: a pty (the emulator's UART) under asyncio.

The firmware uses ``wizfi250.transport`` on MicroPython; this lets the same
driver and application run in-process under CPython against the emulator.
"""

import asyncio
import os
import termios
import tty


class PtyTransport:
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd, termios.TCSANOW)
        self._readable = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.fd, self._readable.set)

    async def readinto(self, buf):
        while True:
            try:
                data = os.read(self.fd, len(buf))
            except BlockingIOError:
                data = b""
            if data:
                buf[: len(data)] = data
                return len(data)
            self._readable.clear()
            await self._readable.wait()

    async def write(self, data):
        view = memoryview(bytes(data))
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                await asyncio.sleep(0.001)

    def close(self):
        asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)

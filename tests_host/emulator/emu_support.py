"""Helpers for the emulator tests: a recording network for the sans-IO core,
and a running Emulator on its own loop thread with the host's end of its pty."""

import asyncio
import os
import select
import socket
import termios
import threading
import time
import tty

from emulator import Config, Emulator
from emulator.core import BANNER, Module


class Net:
    """Records what the module asks of the network."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name,) + args)

    def sent(self):
        return [c[1:] for c in self.calls if c[0] == "send"]


class Core:
    """The sans-IO module with a clock the test moves by hand."""

    def __init__(self, ap=("WizFiAP", "12345678"), **kw):
        self.m = Module(Net(), ap, seed=1, **kw)
        self.t = 0.0
        assert self.take() == BANNER + b"\r\n"  # the first output after any reset

    @property
    def net(self):
        return self.m.net

    def take(self):
        out = bytes(self.m.out)
        self.m.out.clear()
        return out

    def say(self, data, wait=0.0):
        """Feed bytes, let ``wait`` seconds pass, return everything the module printed."""
        self.m.feed(data)
        return self.wait(wait)

    def wait(self, seconds):
        self.t += seconds
        self.m.tick(self.t)
        return self.take()


def joined(echo=False, **kw):
    c = Core(**kw)
    if not echo:
        assert c.say(b"AT+MECHO=0\r") == b"AT+MECHO=0\r\n[OK]\r\n"
    assert c.say(b"AT+WJOIN\r", 1.0).endswith(b"[OK]\r\n")
    return c


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    """An Emulator on its own event-loop thread, and the host's end of its pty."""

    def __init__(self, **kw):
        while kw.get("control") == 0 or kw.get("control") in kw.get("ports", {}).values():
            # A control port the OS picks may be one the caller picked for a mapping and let
            # go of, not yet bound: a GET to the site then reached the control port (once in CI).
            kw["control"] = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.emu = Emulator(Config(**kw))
        self.call(self.emu.start())
        self.fd = os.open(self.emu.serial_path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd, termios.TCSANOW)  # TCSAFLUSH would drop the banner
        self.buf = b""

    def call(self, coro, timeout=5):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def in_loop(self, fn, *args):
        """Run fn(*args) on the emulator's loop thread and return its result."""

        async def run():
            return fn(*args)

        return self.call(run())

    def send(self, data):
        os.write(self.fd, data)

    def read_some(self, timeout=0.2):
        if select.select([self.fd], [], [], timeout)[0]:
            self.buf += os.read(self.fd, 65536)

    def expect(self, text, timeout=5.0):
        """Read until ``text`` has arrived; return everything up to and including it."""
        deadline = time.monotonic() + timeout
        while text not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, "waited for %r, got %r" % (text, self.buf)
            if select.select([self.fd], [], [], left)[0]:
                self.buf += os.read(self.fd, 65536)
        i = self.buf.index(text) + len(text)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def at(self, cmd, timeout=5.0):
        self.send(cmd + b"\r")
        return self.expect(b"[OK]\r\n", timeout)

    def close(self):
        os.close(self.fd)
        self.call(self.emu.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

"""The full stack for a benchmark: the emulator paced at a baud rate, and a firmware
script under the MicroPython unix port talking to it through the emulator's pty.

``Stack`` is a context manager; ``stack.http`` is the host port where module
port 80 listens, ``stack.wire()`` the bytes that crossed the UART so far.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests_host", "emulator"))

from build import romfs_args  # noqa: E402
from emu_support import Running, free_port  # noqa: E402

MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")
BUILD = os.path.join(ROOT, "build", "bench-mpy")
ROMFS = os.path.join(ROOT, "build", "bench-romfs")


def build():
    """Driver, Microdot and app as .mpy, as tools/deploy puts them on a board (skips what is up to date)."""
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build.py"), BUILD, "--app"], check=True)


def build_romfs():
    """Driver and Microdot as .mpy in a ROMFS image; returns the image's path."""
    cmd = [sys.executable, os.path.join(ROOT, "tools", "build.py"), ROMFS, "--romfs"]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def app_config(**http):
    """The shipped config.json with the TCP client off (nothing listens for it here)."""
    with open(os.path.join(ROOT, "config.json")) as f:
        config = json.load(f)
    config["tcp_client"]["enabled"] = False
    config["http"].update(http)
    return config


class Stack:
    def __init__(self, baud, script="main.py", config=None, heap="256K", ready=b"serving", romfs=None, **emulator):
        """``romfs``: an image from ``build_romfs``, run in place as a board with a ROMFS
        partition would (tools/romfs_boot.py); ``heap`` is then the board's, without it."""
        self.http = free_port()
        emulator.setdefault("flow", True)  # RTS/CTS, as a board at these rates is wired
        self.module = Running(baud=baud, ports={80: self.http, 7: free_port()}, **emulator)
        self.tmp = tempfile.TemporaryDirectory()
        path = os.path.join(self.tmp.name, "config.json")
        with open(path, "w") as f:
            json.dump(config or app_config(), f)
        env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (BUILD, ROOT), WIZFI_CONFIG=path)
        cmd = [MICROPYTHON, "-X", "heapsize=" + heap, script, "--uart", self.module.emu.serial_path]
        if romfs:
            env["MICROPYPATH"] = ".frozen:" + ROOT
            cmd[1:4] = romfs_args(romfs, heap, script)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE)
        self.lines = []  # (time, line) for everything the firmware prints
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line))
            if ready in line:
                threading.Thread(target=self._collect, daemon=True).start()
                return
        self.close()
        # Its last word (a MemoryError, say) and where it was raised: a table's line, not a dump.
        said = [line.decode("latin-1").strip() for _, line in self.lines]
        where = [s for s in said if s.startswith("File ")]
        raise RuntimeError("firmware exited: %s%s" % (said[-1] if said else "nothing printed", " (%s)" % where[-1] if where else ""))

    def _collect(self):
        # Keep reading: a firmware blocked on a full stdout pipe would stall.
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line))

    def wire(self):
        """(host to module, module to host) bytes on the UART so far."""
        stats = self.module.emu.stats
        return stats["host_to_module"], stats["module_to_host"]

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.http, path)

    def get(self, path="/", timeout=60):
        with urllib.request.urlopen(self.url(path), timeout=timeout) as response:
            return response.read()

    def settle(self, seconds=1.0):
        """Let start-up traffic (the first status datagram, listener moves) pass."""
        time.sleep(seconds)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.module.close()
        self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

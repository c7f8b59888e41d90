"""A virtual board: the MicroPython unix port behind a pty, so mpremote and
tools/deploy can be tested for real without hardware.

What it emulates:
- a serial port (a pty whose path is ``board.port``) speaking the friendly
  and raw REPL, raw-paste included, because the unix port's own REPL answers;
- the board's filesystem: ``/`` is a sandbox folder on the host (``/lib``,
  ``/boot.py``, ``/main.py``, ``/config.json``), with ``sys.path`` set to
  ``['', '.frozen', '/lib']`` as on a board; the host's ``/dev`` is mounted at
  ``/dev`` so firmware can open a host serial device as its UART;
- soft reset (Ctrl-D): the interpreter really ends and a fresh one starts, so
  nothing survives in memory; ``soft reboot`` is printed, ``boot.py`` runs,
  then ``main.py`` runs unless the reset came from the raw REPL (as on rp2,
  esp32 and stm32 ports), and the REPL comes back in the mode it was in;
- Ctrl-C interrupts running code (the pty is the interpreter's controlling
  terminal, so the unix port gets SIGINT as it would in a terminal).

What it does not emulate: ``machine`` (no UART, Pin or reset), hard reset,
flash size and wear, USB re-enumeration, a 32-bit heap (the unix port is
64-bit; ``heap`` only bounds the GC heap), and the exact bytes of the REPL
banner (the unix port's own).

    python tools/vboard.py SANDBOX [--link PATH] [--heap 256K]
"""

import fcntl
import os
import select
import shutil
import signal
import subprocess
import sys
import termios
import tempfile
import threading
import tty

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONSOLE_KEEP = 16384
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")

# Run by the interpreter at each start-up: the board's filesystem and start-up files.
STARTUP = """\
import os, sys, vfs
vfs.umount('/')
vfs.mount(vfs.VfsPosix(%(root)r), '/')
vfs.mount(vfs.VfsPosix('/dev'), '/dev')
os.chdir('/')
sys.path[:] = ['', '.frozen', '/lib']
def _board_run(name):
    try:
        code = open(name).read()
    except OSError:
        return
    try:
        exec(code, {'__name__': '__main__'})
    except BaseException as e:
        sys.print_exception(e)
_board_run('boot.py')
%(main)s
del _board_run
"""


class VirtualBoard:
    """The unix port behind a pty at ``self.port``; restarts it on each soft reset."""

    def __init__(self, sandbox, heap="256K", link=None):
        self.sandbox = os.path.abspath(sandbox)
        os.makedirs(os.path.join(self.sandbox, "lib"), exist_ok=True)
        self.heap = heap
        self.link = link
        self.raw = False  # the REPL mode the host last asked for
        self.resets = 0
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        # Like a board's USB console with no terminal attached: output nobody
        # reads is dropped, never allowed to stall the interpreter.
        os.set_blocking(self.master, False)
        self.console = bytearray()  # the last CONSOLE_KEEP bytes the board printed
        self._slave = slave  # kept open so the pty survives the host closing it
        if link:
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(self.port, link)
        self._scratch = tempfile.mkdtemp(prefix="vboard-")
        self._stop = threading.Event()
        self._start_interpreter(run_main=True)
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _start_interpreter(self, run_main):
        self.inner, child_tty = os.openpty()
        # Raw bytes both ways, but Ctrl-C still raises KeyboardInterrupt in running
        # code; the unix port switches ISIG off itself while its REPL reads a line.
        tty.setraw(child_tty)
        attrs = termios.tcgetattr(child_tty)
        attrs[3] |= termios.ISIG
        termios.tcsetattr(child_tty, termios.TCSANOW, attrs)
        script = os.path.join(self._scratch, "startup.py")
        with open(script, "w") as f:
            f.write(STARTUP % {"root": self.sandbox, "main": "_board_run('main.py')" if run_main else ""})

        def controlling_tty():
            signal.pthread_sigmask(signal.SIG_SETMASK, [])  # tools/vboard blocks them for sigwait
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            [MICROPYTHON, "-X", "heapsize=" + self.heap, "-i", script],
            stdin=child_tty, stdout=child_tty, stderr=child_tty, preexec_fn=controlling_tty,
            env=dict(os.environ, MICROPYPATH=".frozen"), cwd=self.sandbox,
        )  # fmt: skip
        os.close(child_tty)
        if self.raw:
            os.write(self.inner, b"\x01")  # back into the raw REPL, where the reset came from

    def _soft_reset(self):
        """The interpreter ended (Ctrl-D at an empty prompt): start a fresh one, like a board."""
        self.proc.wait()
        os.close(self.inner)
        self.resets += 1
        self._to_host(b"soft reboot\r\n")
        self._start_interpreter(run_main=not self.raw)

    def _to_host(self, data):
        self.console += data
        del self.console[:-CONSOLE_KEEP]
        try:
            os.write(self.master, data)
        except BlockingIOError:
            pass

    def _pump(self):
        while not self._stop.is_set():
            ready = select.select([self.master, self.inner], [], [], 0.1)[0]
            if self.master in ready:
                try:
                    data = os.read(self.master, 4096)
                except (BlockingIOError, OSError):
                    data = b""
                for c in data:
                    if c == 1:
                        self.raw = True
                    elif c == 2:
                        self.raw = False
                if data:
                    os.write(self.inner, data)
            if self.inner in ready:
                try:
                    data = os.read(self.inner, 4096)
                except OSError:  # EIO: every holder of the interpreter's tty is gone
                    data = b""
                if data:
                    self._to_host(data)
                elif not self._stop.is_set():
                    self._soft_reset()

    def close(self):
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(5)
        for fd in (self.inner, self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._scratch, ignore_errors=True)
        if self.link and os.path.islink(self.link):
            os.unlink(self.link)


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sandbox", help="host folder that is the board's filesystem")
    parser.add_argument("--link", help="make a symlink to the pty here")
    parser.add_argument("--heap", default="256K", help="MicroPython GC heap (default 256K)")
    args = parser.parse_args()
    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    board = VirtualBoard(args.sandbox, args.heap, args.link)
    print("port", board.port, flush=True)
    print("ready", flush=True)
    signal.sigwait(stop)
    board.close()


if __name__ == "__main__":
    main()

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
  terminal, so the unix port gets SIGINT as it would in a terminal);
- with ``romfs``, a ROMFS partition of that many bytes (``SANDBOX.rom`` on the
  host): ``vfs.rom_ioctl`` as a build with ``MICROPY_VFS_ROM`` has it, so
  ``mpremote romfs deploy`` writes it, and at start-up a valid image is mounted
  at ``/rom`` with ``/rom`` and ``/rom/lib`` on ``sys.path``. The unix port has
  no flash to map, so the partition is read into one block of the heap, and the
  interpreter gets that many bytes on top of ``heap``: the block stands for the
  board's flash, and ``heap`` stays what the board's code has.

What it does not emulate: ``machine`` (no UART, Pin or reset), hard reset,
the ROMFS partition's erase and write timing,
flash size and wear, USB re-enumeration, a 32-bit heap (the unix port is
64-bit; ``heap`` only bounds the GC heap), and the exact bytes of the REPL
banner (the unix port's own).

    python tools/vboard.py SANDBOX [--link PATH] [--heap 256K] [--romfs 128K]
"""

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

from build import size

CONSOLE_KEEP = 16384
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")

# Run by the interpreter at each start-up: the board's filesystem and start-up files.
STARTUP = """\
import os, sys, vfs
%(romfs)s
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
%(mount)s
_board_run('boot.py')
%(main)s
del _board_run
"""

# With a ROMFS partition: ``vfs`` as such a build has it, the partition in a host file.
# Set up before ``/`` is the sandbox, while the host file can still be reached.
ROMFS = """\
class _RomVfs:
    def __init__(self, real, folder, name):
        self.real, self.host, self.name = real, real.VfsPosix(folder), '/' + name
        # Read into its block in place: f.read() then a copy would need twice the partition.
        self.rom = bytearray(self.host.stat(self.name)[6])
        with self.host.open(self.name, 'rb') as f:
            f.readinto(self.rom)
    def __getattr__(self, attr):
        return getattr(self.real, attr)
    def rom_ioctl(self, op, *args):
        if op == 1:  # how many partitions
            return 1
        if args and args[0] != 0:
            return -19  # ENODEV
        if op == 2:  # the partition, to read in place
            return memoryview(self.rom)
        if op == 3:  # prepare to write (id, length) or (id, offset, length): erase
            start, n = (0, args[1]) if len(args) == 2 else args[1:3]
            self._store(start, b'\\xff' * n)
            return 4  # the smallest write
        if op == 4:  # write (id, offset, data)
            self._store(args[1], args[2])
            return 0
        if op == 5:  # writing done
            return 0
        if op == 6:  # block size
            return 4096
        return -22  # EINVAL
    def _store(self, offset, data):
        self.rom[offset:offset + len(data)] = data
        with self.host.open(self.name, 'r+b') as f:
            f.seek(offset)
            f.write(data)
vfs = sys.modules['vfs'] = _RomVfs(vfs, %(folder)r, %(name)r)
"""
MOUNT_ROMFS = """\
if vfs.rom_ioctl(2, 0)[:3] == b'\\xd2\\xcd\\x31':  # a ROMFS image: mounted as the board's own start-up does
    vfs.mount(vfs.VfsRom(vfs.rom_ioctl(2, 0)), '/rom')
    sys.path[2:2] = ['/rom', '/rom/lib']
"""


class VirtualBoard:
    """The unix port behind a pty at ``self.port``; restarts it on each soft reset."""

    def __init__(self, sandbox, heap="256K", link=None, romfs=0):
        self.sandbox = os.path.abspath(sandbox)
        os.makedirs(os.path.join(self.sandbox, "lib"), exist_ok=True)
        romfs = size(romfs)
        self.heap = size(heap) + romfs  # the partition's block on top: it stands for flash
        self.rom = self.sandbox + ".rom" if romfs else None  # the ROMFS partition, erased at first
        if self.rom and not (os.path.exists(self.rom) and os.path.getsize(self.rom) == romfs):
            with open(self.rom, "wb") as f:
                f.write(b"\xff" * romfs)
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
        self.inner, self._child_tty = os.openpty()
        # Raw bytes both ways, but Ctrl-C still raises KeyboardInterrupt in running
        # code; the unix port switches ISIG off itself while its REPL reads a line.
        tty.setraw(self._child_tty)
        attrs = termios.tcgetattr(self._child_tty)
        attrs[3] |= termios.ISIG
        termios.tcsetattr(self._child_tty, termios.TCSANOW, attrs)
        script = os.path.join(self._scratch, "startup.py")
        with open(script, "w") as f:
            rom = {"folder": os.path.dirname(self.rom), "name": os.path.basename(self.rom)} if self.rom else None
            f.write(STARTUP % {
                "root": self.sandbox, "main": "_board_run('main.py')" if run_main else "",
                "romfs": ROMFS % rom if rom else "", "mount": MOUNT_ROMFS if rom else "",
            })  # fmt: skip
        # In a new session, opening the tty by name makes it the controlling
        # terminal, which is what turns Ctrl-C into SIGINT for the interpreter.
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", 'exec "$0" "$@" <>"$VBOARD_TTY" >&0 2>&0',
             MICROPYTHON, "-X", "heapsize=%d" % self.heap, "-i", script],
            env=dict(os.environ, MICROPYPATH=".frozen", VBOARD_TTY=os.ttyname(self._child_tty)),
            cwd=self.sandbox, start_new_session=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if self.raw:
            os.write(self.inner, b"\x01")  # back into the raw REPL, where the reset came from

    def _soft_reset(self):
        """The interpreter ended (Ctrl-D at an empty prompt): start a fresh one, like a board."""
        os.close(self.inner)
        os.close(self._child_tty)
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
                self._to_host(os.read(self.inner, 4096))
            elif self.proc.poll() is not None and not self._stop.is_set():
                self._soft_reset()  # after its last output: nothing was ready to read

    def close(self):
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(5)
        for fd in (self.inner, self._child_tty, self.master, self._slave):
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
    parser.add_argument("--heap", default="256K", type=size, help="MicroPython GC heap (default 256K)")
    parser.add_argument("--romfs", default=0, type=size,
                        help="a ROMFS partition of this size, e.g. 128K (SANDBOX.rom), given on top of the heap")  # fmt: skip
    args = parser.parse_args()
    board = VirtualBoard(args.sandbox, args.heap, args.link, args.romfs)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("port", board.port, flush=True)
    print("ready", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        board.close()


if __name__ == "__main__":
    main()

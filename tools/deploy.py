"""Deploy the firmware to a board over its serial port: tools/deploy PORT [--reset] [--romfs] [--force].

The driver, Microdot and the application (main.py, as /lib/app.mpy) go as
.mpy (compiled by tools/build.py: a board imports bytecode in a fraction of
the heap that compiling the sources would take), with tools/board_main.py as
/main.py to start the application; boot.py, the configuration and www/ go as
they are. A file
whose SHA-256 on the board already matches is not sent again, so deploying
after a one-line change sends one file. The board is reached through
mpremote's own serial transport, as `mpremote cp` would, in one session.

With ``--romfs`` the driver, Microdot and the application go into the
board's ROMFS partition instead, as one image (tools/build.py --romfs),
written by mpremote's own ``romfs deploy`` unless the partition already
holds it; /main.py starts the application there, as it does from /lib
(tools/board_main.py). The code runs in place from flash and leaves the
heap to the connections (see README, "On a board with a ROMFS partition").
Copies of the driver and Microdot left in /lib are deleted, with their
folders once empty.

Without ``--romfs``, a board whose ROMFS image already holds the driver or
Microdot is refused before anything is sent (exit 2, unless ``--force``): a
board imports /rom/lib ahead of /lib, so it would go on running the image's
old code whatever this sent to /lib.
"""

import argparse
import contextlib
import hashlib
import io
import os
import subprocess
import sys
import time

from build import APP, BIN, ROOT, build, romfs, sources
from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

MPY_DIR = os.path.join(ROOT, "build", "mpy")
ROMFS_DIR = os.path.join(ROOT, "build", "romfs")
ANSWER_S = 5  # how long a board may take to show its raw REPL
CHUNK = 1024  # bytes per write on the board: few round trips, little heap for each


class NoBoard(Exception):
    """Nothing usable answers on the port; the message says what was seen."""


class NoRomfs(Exception):
    """--romfs, and the board has no ROMFS partition."""


class Shadowed(Exception):
    """Without --romfs, and the board's ROMFS image holds the packages /lib would get."""


def manifest(config, in_romfs=False):
    """(local path, board path) for every file the firmware needs, in a stable order.
    ``in_romfs``: the code is in the ROMFS image, and main.py only starts it."""
    files = []
    if not in_romfs:
        build(MPY_DIR, app=True)
        for _, rel in list(sources()) + [APP]:
            mpy = rel[:-3] + ".mpy"
            files.append((os.path.join(MPY_DIR, mpy), "lib/" + mpy.replace(os.sep, "/")))
    files.append((os.path.join(ROOT, "boot.py"), "boot.py"))
    files.append((os.path.join(ROOT, "tools", "board_main.py"), "main.py"))
    files.append((config, "config.json"))
    www = os.path.join(ROOT, "www")
    for folder, dirs, names in os.walk(www):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            files.append((path, os.path.relpath(path, ROOT).replace(os.sep, "/")))
    return files


def connect(port):
    """A SerialTransport in the raw REPL of a freshly soft-reset board, or NoBoard."""
    if not os.path.exists(port):
        raise NoBoard("no board: %s does not exist (is it plugged in? `ls /dev/ttyACM* /dev/ttyUSB*`)" % port)
    try:
        transport = SerialTransport(port)
    except TransportError:
        raise NoBoard("no board: cannot open %s (in use by another program, or no permission)" % port)
    # mpremote reads a pty without a timeout: a silent one would hang it for ever.
    transport.serial.timeout = 1
    seen = io.StringIO()
    try:
        with contextlib.redirect_stdout(seen):  # mpremote prints what it read before failing
            transport.enter_raw_repl(soft_reset=True, timeout_overall=ANSWER_S)
        transport.serial.timeout = None
    except TransportError:
        transport.close()
        answer = seen.getvalue().strip()  # mpremote's print of the bytes it read
        answer = "nothing" if answer in ("", "b''") else answer
        raise NoBoard("no board: %s gave no MicroPython raw REPL within %d s (it sent %s)" % (port, ANSWER_S, answer))
    return transport


def board_sha256(transport, path):
    """The file's SHA-256 on the board, or None when it is not there."""
    try:
        return transport.fs_hashfile(path, "sha256")
    except OSError:
        return None


def romfs_is_current(transport, image):
    """True if the board's ROMFS partition already holds ``image``; NoRomfs if it has none."""
    transport.exec("import vfs, hashlib")
    if not transport.eval("hasattr(vfs, 'rom_ioctl') and vfs.rom_ioctl(1) > 0"):
        raise NoRomfs("this board has no ROMFS partition (MicroPython 1.25+ built with one): deploy without --romfs")
    # Hashed where it lies: a copy of the image would take the board's heap.
    held = transport.eval("hashlib.sha256(memoryview(vfs.rom_ioctl(2, 0))[:%d]).digest()" % len(image))
    return held == hashlib.sha256(image).digest()


def packages():
    """The top-level folders the firmware puts in /lib: wizfi250 and microdot."""
    return sorted({rel.split(os.sep)[0] for _, rel in sources() if os.sep in rel})


def romfs_shadows(transport):
    """Our packages that the board's ROMFS image holds in /rom/lib, which a board puts
    ahead of /lib on sys.path: those are imported from the image, never from /lib."""
    try:
        held = {entry.name for entry in transport.fs_listdir("/rom/lib")}
    except (OSError, TransportError):
        return []  # no partition, no valid image (so nothing mounted), or no lib/ in it
    return [name for name in packages() if name in held]


def shadow_warning(port, shadows):
    """What a user is told when the ROMFS image would shadow a plain deploy, and the ways out."""
    return ("the board's ROMFS image holds %s in /rom/lib, which the board imports ahead of /lib:\n"
            "  it would go on running the image's code, not the .mpy sent to /lib. Either\n"
            "  deploy into the image:  tools/deploy %s --romfs\n"
            "  or erase the image:     mkdir -p build/empty-romfs && .venv/bin/mpremote connect %s romfs deploy build/empty-romfs\n"
            "  and deploy again." % (" and ".join(shadows), port, port))  # fmt: skip


def write_romfs(port, path):
    """The image into the board's partition, by mpremote's own ``romfs deploy``."""
    run = subprocess.run([os.path.join(BIN, "mpremote"), "connect", port, "romfs", "deploy", path],
                         capture_output=True, text=True)  # fmt: skip
    if run.returncode:
        raise NoBoard("mpremote romfs deploy failed: %s" % (run.stdout + run.stderr).strip()[-300:])
    print("sent romfs", flush=True)  # the partition, as "sent FILE" for a file


def ensure_dirs(transport, path, made):
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        folder = "/".join(parts[:i])
        if folder not in made:
            try:
                transport.fs_mkdir(folder)
            except FileExistsError:
                pass
            made.add(folder)


def deploy(transport, files):
    """Send the files whose hash differs; return (sent, unchanged) board paths."""
    sent, unchanged, made = [], [], set()
    for local, remote in files:
        with open(local, "rb") as f:
            data = f.read()
        if board_sha256(transport, remote) == hashlib.sha256(data).digest():
            unchanged.append(remote)
            continue
        ensure_dirs(transport, remote, made)
        transport.fs_writefile(remote, data, chunk_size=CHUNK)
        sent.append(remote)
        print("sent", remote, flush=True)
    return sent, unchanged


def remove_shadows(transport, files):
    """Delete a board's lib/**.py that would shadow a deployed .mpy (MicroPython
    imports x.py before x.mpy), such as the sources `mpremote mip install` leaves."""
    removed = []
    folders = {}
    for _, remote in files:
        if remote.startswith("lib/") and remote.endswith(".mpy"):
            folder, name = remote.rsplit("/", 1)
            folders.setdefault(folder, set()).add(name[:-4] + ".py")
    for folder, shadows in sorted(folders.items()):
        for entry in transport.fs_listdir(folder):
            if entry.name in shadows:
                transport.fs_rmfile(folder + "/" + entry.name)
                removed.append(folder + "/" + entry.name)
                print("removed", removed[-1], "(it would shadow the .mpy)", flush=True)
    return removed


def remove_copies(transport):
    """With ``--romfs``: delete the driver's, Microdot's and app's files from the board's /lib
    (a deploy without --romfs or `mpremote mip install` put them there): /rom/lib
    shadows them, and they would only take flash. Their folders go too once empty,
    so that `ls :lib` shows nothing that looks installed."""
    names = {}
    for _, rel in list(sources()) + [APP]:
        folder, name = ("lib/" + rel.replace(os.sep, "/")).rsplit("/", 1)
        names.setdefault(folder, set()).update((name, name[:-3] + ".mpy"))
    removed = []
    for folder, stale in sorted(names.items(), reverse=True):  # a subfolder before its parent
        try:
            entries = transport.fs_listdir(folder)
        except OSError:
            continue  # never deployed there
        for entry in entries:
            if entry.name in stale:
                transport.fs_rmfile(folder + "/" + entry.name)
                removed.append(folder + "/" + entry.name)
                print("removed", removed[-1], "(the ROMFS image has it)", flush=True)
        if folder != "lib" and not transport.fs_listdir(folder):
            transport.fs_rmdir(folder)
            removed.append(folder)
            print("removed", folder, "(empty now)", flush=True)
    return removed


def soft_reset(transport):
    """Ctrl-D at the friendly REPL, as a user would: boot.py then main.py run."""
    transport.exit_raw_repl()
    transport.read_until(1, b">>> ", timeout_overall=ANSWER_S)
    transport.serial.write(b"\x04")
    data = transport.read_until(1, b"soft reboot\r\n", timeout_overall=ANSWER_S)
    if not data.endswith(b"soft reboot\r\n"):
        raise NoBoard("the board did not soft-reset (it sent %r)" % data[-200:])


def config_problem(path):
    """What is wrong with the configuration file, in main.py's words, or None. Checked
    before the board is touched: there a bad one stops the firmware, and says so only
    on the board's console."""
    sys.path[:0] = [ROOT, os.path.join(ROOT, "lib")]
    from main import ConfigError, load_config

    try:
        load_config(path)
    except ConfigError as e:
        return str(e)
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", help="the board's serial port, e.g. /dev/ttyACM0")
    parser.add_argument("--config", default=os.path.join(ROOT, "config.json"),
                        help="file to install as /config.json (default: config.json)")  # fmt: skip
    parser.add_argument("--reset", action="store_true", help="soft-reset afterwards so main.py starts")
    parser.add_argument("--romfs", action="store_true", help="the code into the board's ROMFS partition, run in place")
    parser.add_argument("--force", action="store_true",
                        help="without --romfs: send to /lib even though the board's ROMFS image shadows it")  # fmt: skip
    args = parser.parse_args(argv)
    problem = config_problem(args.config)
    if problem:
        print("deploy: nothing sent:", problem, file=sys.stderr)
        return 2
    started = time.monotonic()
    files = manifest(args.config, args.romfs)
    image = romfs(ROMFS_DIR) if args.romfs else None
    transport = None
    try:
        transport = connect(args.port)
        shadows = romfs_shadows(transport) if image is None else []
        if shadows and not args.force:
            raise Shadowed(shadow_warning(args.port, shadows) + " Nothing was sent; --force sends to /lib anyway.")
        if image is not None:
            with open(image, "rb") as f:
                current = romfs_is_current(transport, f.read())
            if not current:  # mpremote takes the port for its own session, then we take it back
                transport.close()
                transport = None
                write_romfs(args.port, image)
                transport = connect(args.port)
    except (NoBoard, NoRomfs, Shadowed) as e:
        if transport is not None:
            transport.close()
        print("deploy:", e, file=sys.stderr)
        return 2
    try:
        sent, unchanged = deploy(transport, files)
        if image is not None:
            (unchanged if current else sent).insert(0, "romfs")
        if image is not None:
            remove_copies(transport)
        else:
            remove_shadows(transport, files)
        if args.reset:
            soft_reset(transport)
    except (NoBoard, TransportError, OSError) as e:
        print("deploy: the board stopped answering on %s: %s" % (args.port, e), file=sys.stderr)
        return 3
    finally:
        transport.close()
    print("deploy: %d sent, %d unchanged%s in %.1f s"
          % (len(sent), len(unchanged), ", board reset" if args.reset else "", time.monotonic() - started))  # fmt: skip
    if shadows:  # --force: sent, and said again where it can be seen last
        print("deploy: warning:", shadow_warning(args.port, shadows), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

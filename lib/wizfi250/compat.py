"""The few names that differ between MicroPython, CircuitPython and CPython.

The driver runs on MicroPython first; CircuitPython lacks the ``ticks_*``
functions and CPython (the host tests) lacks ``micropython.const`` and
``asyncio.sleep_ms`` as well; MicroPython's ``decode`` has no ``errors=``.
Everything else the driver uses is common to all three.
"""

import asyncio

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value


try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython and CircuitPython: a monotonic clock that never wraps
    from time import monotonic_ns

    def ticks_ms():
        return monotonic_ns() // 1000000

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b


try:
    from asyncio import sleep_ms
except ImportError:  # CPython

    def sleep_ms(ms):
        return asyncio.sleep(ms / 1000)


def text(line):
    """``line`` (bytes) as str: UTF-8, or else byte for byte (Latin-1). The module's lines are
    ASCII but for SSIDs (any 32 bytes: Latin-1 and GBK names are on the air) and line noise,
    and a UnicodeError where callers expect an OSError ended them (the supervisor's probe)."""
    try:
        return line.decode()
    except UnicodeError:
        return "".join(map(chr, line))

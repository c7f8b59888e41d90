"""The few names that differ between MicroPython, CircuitPython and CPython.

The driver runs on MicroPython first; CircuitPython lacks the ``ticks_*``
functions and CPython (the host tests) lacks ``micropython.const`` and
``asyncio.sleep_ms`` as well; MicroPython's ``decode`` has no ``errors=``, and
its ``Event.wait`` allocates (``EventWaiter`` waits without). Everything else
the driver uses is common to all three.
"""

import asyncio
import sys

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


# MicroPython's scheduler, which EventWaiter queues a task on; None elsewhere.
_core = getattr(asyncio, "core", None) if sys.implementation.name == "micropython" else None


class EventWaiter:
    """``await waiter.wait()`` does ``await event.wait()``, on MicroPython without allocating.

    MicroPython's ``Event.wait`` is a generator, a heap block per wait: a
    reader that keeps up with the wire waits about once per frame, a command
    twice per SSEND. This takes the same steps (queue the task on the event,
    yield, end once ``set`` has requeued it) with this one object, as
    asyncio's ``sleep_ms`` does. One task waits on it at a time. ``set`` and
    ``clear`` are the event's, so the waiter can stand for it.
    """

    def __init__(self, event):
        self.event = event
        self._queued = False

    def set(self):
        self.event.set()

    def clear(self):
        self.event.clear()

    def wait(self):
        if _core is None:  # CPython, CircuitPython: Event.wait itself
            return self.event.wait()
        self._queued = False
        return self

    def __iter__(self):  # MicroPython awaits through __iter__, not __await__
        return self

    def __next__(self):
        event = self.event
        if self._queued or event.state:
            _DONE.__traceback__ = None  # else each raise would lengthen it
            raise _DONE
        self._queued = True
        task = _core.cur_task
        event.waiting.push(task)
        task.data = event.waiting  # where a cancel finds the task to take it off
        return None


_DONE = StopIteration()  # ends every wait; a wait has no value


def text(line):
    """``line`` (bytes) as str: UTF-8, or else byte for byte (Latin-1). The module's lines are
    ASCII but for SSIDs (any 32 bytes: Latin-1 and GBK names are on the air) and line noise,
    and a UnicodeError where callers expect an OSError ended them (the supervisor's probe)."""
    try:
        return line.decode()
    except UnicodeError:
        return "".join(map(chr, line))

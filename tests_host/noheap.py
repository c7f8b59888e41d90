"""Starve one allocation of the engine, for the tests of what a full heap costs.

Its own module, not in fakeuart: under MicroPython every imported class costs
heap, and the core cases run in 64 KB.
"""

from wizfi250 import engine as engine_module


class NoHeapFor:
    """``with NoHeapFor("Ring"):`` making that class of the engine module (a new
    socket's receive ring, or the ``Socket`` itself), or of ``module``, fails with
    MemoryError, as it can on a full, fragmented heap; only the first ``times``
    makings fail when it is given (the heap freed in between is enough)."""

    def __init__(self, name, module=engine_module, times=-1):
        self.name = name
        self.module = module
        self.times = times

    def __enter__(self):
        self.made = getattr(self.module, self.name)
        setattr(self.module, self.name, self._make)

    def __exit__(self, *exc):
        setattr(self.module, self.name, self.made)

    def _make(self, *args, **kw):
        if self.times:
            self.times -= 1
            for arg in args:  # a coroutine handed over (wait_for's) is dropped unrun
                if hasattr(arg, "close"):
                    arg.close()
            raise MemoryError
        return self.made(*args, **kw)

    @staticmethod
    def _fail(*args, **kw):
        raise MemoryError

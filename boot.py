"""Board start-up: nothing to do before main.py but make room for it.

The driver keeps its buffers preallocated; collecting once here gives
main.py the largest contiguous heap to allocate them from.
"""

import gc

gc.collect()

"""Firmware for the heap benchmark: main.py as shipped, plus a sampler.

Every ``EVERY_MS`` it collects garbage and prints ``heap <live bytes>``, so the
benchmark sees the live heap while the site serves, not garbage waiting for
the collector. Collecting that often costs time, never memory.
"""

import asyncio
import gc

try:
    import app as main  # a ROMFS run: main.py is in the image, compiled (tools/build.py --romfs)
except ImportError:
    import main

EVERY_MS = 20


async def sample():
    while True:
        gc.collect()
        print("heap", gc.mem_alloc())
        await asyncio.sleep_ms(EVERY_MS)


async def sampled(config, transport):
    asyncio.create_task(sample())
    await main.main(config, transport)


main.start(sampled)

"""Firmware for the heap benchmark: the application as a board runs it (app.mpy, from
.mpy files or a ROMFS image), plus a sampler.

Every ``EVERY_MS`` it collects garbage and prints ``heap <live bytes>``, so the
benchmark sees the live heap while the site serves, not garbage waiting for
the collector. Collecting that often costs time, never memory.
"""

import asyncio
import gc

import app

EVERY_MS = 20


async def sample():
    while True:
        gc.collect()
        print("heap", gc.mem_alloc())
        await asyncio.sleep_ms(EVERY_MS)


async def sampled(config, transport):
    asyncio.create_task(sample())
    await app.main(config, transport)


app.start(sampled)

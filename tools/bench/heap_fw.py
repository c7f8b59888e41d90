"""The application as a board runs it (app.mpy, from .mpy files or a ROMFS image),
plus a sampler, for the heap benchmark and test_firmware's check of the qstr cliff.

Every 20 ms it collects garbage and prints ``heap <live bytes>``, so the
benchmark sees the live heap while the site serves, not garbage waiting for
the collector (collecting that often costs time, never memory), then
MicroPython's ``qstr pool: ...`` line. It defines no name the firmware does
not already have, so the qstr counts are the firmware's own within two (this
file's path, and one more at rest than a sampler that printed the pools alone).
"""

import asyncio
import gc
import micropython

import app


async def run():
    while True:
        gc.collect()
        print("heap", gc.mem_alloc())
        micropython.qstr_info()
        await asyncio.sleep_ms(20)


async def main(config, transport):
    asyncio.create_task(run())
    await app.main(config, transport)


app.start(main)

"""The firmware from its ROMFS image, printing MicroPython's qstr pools every 200 ms
(``micropython.qstr_info()``), for test_firmware's check of the qstr cliff.

It defines no name the firmware does not already have, so the counts it prints
are the firmware's own, plus one: this file's path.
"""

import asyncio
import micropython

import app


async def run():
    while True:
        micropython.qstr_info()
        await asyncio.sleep_ms(200)


async def main(config, transport):
    asyncio.create_task(run())
    await app.main(config, transport)


app.start(main)

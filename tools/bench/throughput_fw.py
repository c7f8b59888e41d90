"""Firmware for the throughput benchmark, run under the MicroPython unix port.

The driver as main.py brings it up, serving one plain TCP protocol on module
port 80 instead of the site, so that nothing but the driver sits between the
UART and the payload:

``tx N\\n``  the firmware sends N bytes, written in 4200-byte pieces the way
           an application streams a file;
``rx N\\n``  the client sends N bytes, the firmware reads them with
           ``readinto`` and answers ``done\\n`` once it has all of them;
``echo N\\n`` the firmware writes back each piece of the N bytes it reads before it
           reads again, so each send waits behind what the client sent meanwhile
           (tests_host/test_full_duplex.py).
"""

import asyncio

import main

PIECE = bytearray(4200)


async def serve(reader, writer):
    op, n = (await reader.readline()).split()
    left = int(n)
    if op == b"tx":
        piece = memoryview(PIECE)
        while left > 0:
            k = min(left, len(piece))
            await writer.awrite(piece[:k])
            left -= k
    elif op == b"echo":
        buf = bytearray(1024)
        piece = memoryview(buf)
        while left > 0:
            k = await reader.readinto(buf)
            if not k:
                break
            await writer.awrite(piece[:k])
            left -= k
    else:
        buf = bytearray(1400)
        while left > 0:
            k = await reader.readinto(buf)
            if not k:
                break
            left -= k
        await writer.awrite(b"done\n")
    await writer.aclose()


async def bench(config, transport):
    engine, net, wifi, supervisor = await main.bring_up(config, transport)
    await net.start_server(serve, 80, max_handlers=2, idle_ms=0)
    print("serving throughput")
    while True:
        await asyncio.sleep(3600)


main.start(bench)

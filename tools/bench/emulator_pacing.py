"""Measure the emulator's achieved byte rate against baud/10, host->module and module->host.

Host to module: half a second of bytes that are not a command; the module
answers the final CR once it has read them all at the line rate. Module to
host: UDP datagrams sent to a module socket come out as frames; the rate is
taken from the first to the last byte read from the pty.
"""

import asyncio
import os
import select
import socket
import sys
import termios
import threading
import time
import tty

from emulator import Config, Emulator


def read_until(fd, text, buf=b"", timeout=20):
    deadline = time.monotonic() + timeout
    while text not in buf:
        if not select.select([fd], [], [], max(0, deadline - time.monotonic()))[0]:
            raise TimeoutError(text)
        buf += os.read(fd, 65536)
    return buf


def measure(baud):
    loop = asyncio.new_event_loop()
    port = 47000 + baud % 1000
    emu = Emulator(Config(baud=baud, ports={5000: port}))
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(emu.start(), loop).result(5)
    fd = os.open(emu.serial_path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd, termios.TCSANOW)
    try:
        read_until(fd, b"Ltd)\r\n")
        os.write(fd, b"AT+MECHO=0\rAT+WJOIN\r")
        buf = read_until(fd, b"Gateway", timeout=10)
        read_until(fd, b"[OK]\r\n", buf[buf.index(b"Gateway") :])
        # Host -> module.
        n = baud // 20
        start = time.monotonic()
        os.write(fd, b"X" * n + b"\r")
        read_until(fd, b"[ERROR: INVALID INPUT]\r\n")
        up = (n + 1) * 10 / (time.monotonic() - start) / baud
        # Module -> host.
        os.write(fd, b"AT+SCON=O,USN,,,5000,0\r")
        read_until(fd, b"[OK]\r\n")
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        count = max(4, baud // 10 // 2 // 1400)  # about half a second of frames
        for _ in range(count):
            sender.sendto(b"Y" * 1400, ("127.0.0.1", port))
        expected = count * (len(b"{0,127.0.0.1,00000,1400}") + 1400 + 2)
        got = 0
        first = last = None
        while got < expected - count * 2:
            if not select.select([fd], [], [], 10)[0]:
                break
            got += len(os.read(fd, 65536))
            last = time.monotonic()
            first = first or last
        down = (got * 10 / (last - first) / baud) if last > first else float("nan")
        return up, down
    finally:
        os.close(fd)
        asyncio.run_coroutine_threadsafe(emu.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)


def main():
    bauds = [int(b) for b in sys.argv[1:]] or [115200, 921600]
    print("%-8s %-22s %-22s" % ("baud", "host->module / line", "module->host / line"))
    for baud in bauds:
        up, down = measure(baud)
        print("%-8d %-22.3f %-22.3f" % (baud, up, down))


main()

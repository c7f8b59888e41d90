"""Byte pipes to the module. The engine needs two calls from a transport:

``await readinto(buf)``
    wait until at least one byte is there, copy up to ``len(buf)``, return the count;
``await write(data)``
    send all of ``data`` (blocking on RTS/CTS if the UART does flow control).

and may offer a third, ``readinto_now(buf)``: copy what is already there
without waiting (0 or None if nothing). The engine tries it first, which
saves a coroutine per read while the module streams.

``StreamTransport`` covers MicroPython: ``machine.UART`` and, on the unix
port, a pty or tty opened by ``open_device``. ``PollingTransport`` covers
CircuitPython's ``busio.UART``, which cannot be polled by asyncio.
"""

import asyncio

EIO = 5


class StreamTransport:
    """A pollable stream (``machine.UART``, a non-blocking tty file) under asyncio."""

    def __init__(self, stream, hangup_ends=False):
        self.raw = stream
        self.stream = asyncio.StreamReader(stream)
        self.hangup_ends = hangup_ends  # a tty: a read of 0 is its other side gone

    def readinto_now(self, buf):
        return self.raw.readinto(buf)

    async def readinto(self, buf):
        while True:
            n = await self.stream.readinto(buf)
            if n:
                return n
            # None: woken with nothing to read. 0: a tty whose other side is
            # closed (an adapter unplugged, the emulator stopped) polls as
            # readable for ever: that ends the driver, so the program can say so
            # and stop, rather than serve nothing in silence. Elsewhere, wait.
            if n == 0:
                if self.hangup_ends:
                    raise OSError(EIO, "UART closed")
                await asyncio.sleep_ms(10)

    async def write(self, data):
        # MicroPython's StreamReader is its one Stream class, a writer too; the
        # stubs describe CPython's, which is not.
        self.stream.write(data)  # pyright: ignore[reportAttributeAccessIssue]
        await self.stream.drain()  # pyright: ignore[reportAttributeAccessIssue]


class PollingTransport:
    """CircuitPython ``busio.UART``: poll ``in_waiting``, never block in ``readinto``."""

    def __init__(self, uart, poll_ms=2):
        self.uart = uart
        self.poll_s = poll_ms / 1000

    def readinto_now(self, buf):
        uart = self.uart
        n = uart.in_waiting
        if not n:
            return 0
        if n < len(buf):
            buf = memoryview(buf)[:n]  # asked for more, busio's readinto would wait out its timeout
        return uart.readinto(buf) or 0

    async def readinto(self, buf):
        while True:
            n = self.readinto_now(buf)
            if n:
                return n
            await asyncio.sleep(self.poll_s)

    async def write(self, data):
        uart = self.uart
        view = memoryview(data)
        while view:
            n = uart.write(view) or 0
            view = view[n:]
            if view:
                await asyncio.sleep(self.poll_s)


def machine_uart(uart_id, baud=115200, tx=None, rx=None, rts=None, cts=None, flow=False, rxbuf=2048):
    """A ``StreamTransport`` over ``machine.UART`` (MicroPython boards)."""
    from machine import UART, Pin

    kw = {"baudrate": baud, "rxbuf": rxbuf, "timeout": 0}  # type: dict
    for name, pin in (("tx", tx), ("rx", rx), ("rts", rts), ("cts", cts)):
        if pin is not None:
            kw[name] = Pin(pin)
    if flow:
        kw["flow"] = UART.RTS | UART.CTS
    return StreamTransport(UART(uart_id, **kw))


def open_device(path, baud=None, flow=False):
    """A ``StreamTransport`` over a serial device (the unix port: a pty or a USB adapter).

    The device is set raw with VMIN=0/VTIME=0 so reads never block the event
    loop: a blocking tty read would stall every task. ``flow`` switches RTS/CTS
    on or off, as ``machine_uart`` does on a board: without it a USB adapter's
    buffer overruns at high rates and frames lose bytes.
    """
    import termios

    f = open(path, "r+b")
    fd = f.fileno()
    termios.setraw(fd)
    attrs = termios.tcgetattr(fd)
    attrs[6][termios.VMIN if hasattr(termios, "VMIN") else 6] = 0
    attrs[6][termios.VTIME if hasattr(termios, "VTIME") else 5] = 0
    if baud:
        speed = getattr(termios, "B%d" % baud)
        attrs[4] = attrs[5] = speed
    # Linux's CRTSCTS, bit 31: the unix port's termios names none. Shifted when run: as a
    # literal, a 32-bit port without long ints could not even load this module's .mpy.
    bit = 31
    attrs[2] = attrs[2] | 1 << bit if flow else attrs[2] & ~(1 << bit)
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return StreamTransport(f, hangup_ends=True)

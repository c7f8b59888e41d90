"""The CircuitPython transport over a fake busio.UART; CPython and MicroPython."""

import asyncio

from fakeuart import eq, run
from wizfi250.engine import Engine
from wizfi250.sockets import TCP
from wizfi250.transport import PollingTransport


class FakeBusioUART:
    """busio.UART's polling surface: in_waiting, readinto (never more than asked), write."""

    def __init__(self):
        self.incoming = b""
        self.written = b""
        self.on_write = None

    @property
    def in_waiting(self):
        return len(self.incoming)

    def readinto(self, buf):
        n = min(len(buf), len(self.incoming))
        if not n:
            return None  # busio returns None on timeout
        buf[:n] = self.incoming[:n]
        self.incoming = self.incoming[n:]
        return n

    def write(self, data):
        data = bytes(data[:7])  # a UART may take only part of a write
        self.written += data
        if self.on_write is not None:
            self.on_write(data)
        return len(data)


def test_engine_runs_a_command_over_a_polled_busio_uart():
    async def main():
        uart = FakeBusioUART()

        def answer(data):
            if uart.written.endswith(b"\r"):
                uart.incoming += b"{0,10.0.0.1,80,3}abc\r\n0\r\n[OK]\r\n"

        uart.on_write = answer
        engine = Engine(PollingTransport(uart, poll_ms=1))
        engine.start()
        sock = engine._new_socket(0, TCP)
        eq(await engine.command(b"AT+MECHO=?"), [b"0"])
        eq(uart.written, b"AT+MECHO=?\r")  # written in pieces, all of it
        eq(sock.rx.read(), b"abc")
        engine.stop()
        await asyncio.sleep(0)

    run(main())


def test_a_polled_uart_is_read_without_waiting_while_bytes_are_waiting():
    uart = FakeBusioUART()
    transport = PollingTransport(uart)
    buf = bytearray(8)
    eq(transport.readinto_now(buf), 0)
    uart.incoming = b"abc"
    eq(transport.readinto_now(buf), 3)  # no more asked of busio than it holds
    eq(bytes(buf[:3]), b"abc")

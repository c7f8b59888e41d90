"""An echo through the whole stack (the emulator, and tools/bench/throughput_fw.py under
MicroPython): each of its sends waits for a prompt and an [OK] that come after the rest
of what its peer sent meanwhile.

The task that would read those bytes is the one waiting, so the driver takes them into
rings it lends the socket (``Engine._lend``). It used to hold the UART instead, until
the stall limit dropped the connection: 8 KB messages came back cut after 550 bytes.
"""

import os
import socket

import pytest

from bench.stack import Stack, build

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("baud", [115200, 921600])
def test_an_echo_gets_back_every_message_its_peer_sends_while_its_sends_wait(baud):
    build()
    with Stack(baud, "tools/bench/throughput_fw.py", ready=b"serving throughput") as stack:
        with socket.create_connection(("127.0.0.1", stack.http), timeout=30) as s:
            s.sendall(b"echo %d\n" % (3 * 8000))
            for i in range(3):
                message = os.urandom(8000)  # the ring and seven lent ones (1 KB each)
                s.sendall(message)
                got = b""
                while len(got) < len(message):
                    chunk = s.recv(65536)
                    assert chunk, "closed after %d bytes of message %d" % (len(got), i)
                    got += chunk
                assert got == message

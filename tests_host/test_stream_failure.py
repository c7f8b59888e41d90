"""A stream's failed send sticks, exactly when bytes were lost, with two senders of one
stream (the writer and its flush timer). Written by a review that found the first
version judging that by the queue's length, which the other sender changes, and a
fuzzer that found a send waiting for the lock behind a failed one still sent."""

import asyncio

from fakenet import net_with
from fakeuart import Module, eq, run
from wizfi250.sockets import TCP
from wizfi250.stream import Stream


def _stream():
    """A module, its engine, and a stream on socket 0."""
    module = Module()
    net, engine = net_with(module)
    return module, engine, Stream(engine, engine._new_socket(0, TCP))


def _failing_ssend(engine, when, after_wire=False):
    """engine._ssend raising MemoryError on call number ``when``, with ssend_from's bytes
    taken: before the command goes out (its line or its _Transaction found no heap), or
    with ``after_wire`` once the whole SSEND is done (an answer that found none)."""
    real = engine._ssend
    calls = []

    async def ssend(sock, data, n, ip, port):
        calls.append(bytes(data[:n]))
        if len(calls) != when:
            return await real(sock, data, n, ip, port)
        if after_wire:
            await real(sock, data, n, ip, port)
        raise MemoryError

    engine._ssend = ssend
    return calls


class _File:
    """A file's readinto and seek over ``data``, or readinto alone (``seekable=False``)."""

    def __init__(self, data, seekable=True):
        self.data = data
        self.pos = 0
        if not seekable:
            self.seek = None

    def readinto(self, buf):
        n = min(len(buf), len(self.data) - self.pos)
        buf[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n

    def seek(self, offset, whence):
        assert whence == 1
        self.pos += offset


def test_a_flush_that_finds_no_heap_keeps_its_bytes_while_the_writer_appends():
    # The flush timer waits for the engine lock (another connection's SSEND) with 100
    # bytes; meanwhile the handler writes 200 more. The timer's send takes its 100 bytes
    # and finds no heap before its command goes out. It used to fail the stream (ENOBUFS):
    # a download cut short whenever six handlers filled the heap. Nothing went out, so
    # nothing is lost: the bytes stay first in the queue and go out in order.
    async def main():
        module, engine, stream = _stream()
        stream.write(b"A" * 100)
        await stream.drain()  # tail left to the flush timer
        await engine._lock.acquire()  # another socket's SSEND holds the UART
        await asyncio.sleep(0.02)  # the timer is now in _send, waiting for the lock
        calls = _failing_ssend(engine, 1)
        stream.write(b"B" * 200)  # the handler goes on writing
        engine._lock.release()
        await asyncio.sleep(0.02)
        eq((calls, module.payloads), ([b"A" * 100], []))  # tried, and not sent
        await stream.awrite(b"C")
        await stream.flush()
        eq((stream.sock.send_error, b"".join(module.payloads)), (0, b"A" * 100 + b"B" * 200 + b"C"))
        engine.stop()

    run(main())


def test_a_send_that_fails_for_heap_once_it_went_out_fails_the_stream_and_is_not_sent_again():
    # The other side of the line: the SSEND went out whole, and only then the heap ran
    # out. Its bytes are the peer's now; sent again they would reach it twice, and what
    # follows cannot be trusted to follow them: every later write fails.
    async def main():
        module, engine, stream = _stream()
        _failing_ssend(engine, 1, after_wire=True)
        stream.write(b"A" * 100)
        try:
            await stream.flush()
            raised = None
        except OSError as e:
            raised = e.args[0]
        try:
            await stream.awrite(b"B")
            await stream.flush()
            later = None
        except OSError as e:
            later = e.args[0]
        eq((raised, later, module.payloads, len(stream._out)), (105, 105, [b"A" * 100], 0))
        engine.stop()

    run(main())


_FILE = bytes(range(256)) * 12


def _send_a_file_whose_second_ssend_finds_no_heap(seekable):
    """``send_from`` of ``_FILE`` behind 5 queued bytes, its second SSEND finding no heap
    for the command: (the error it raised or 0, what the peer got)."""

    async def main():
        module, engine, stream = _stream()
        _failing_ssend(engine, 2)
        stream.write(b"head:")
        try:
            await stream.send_from(_File(_FILE, seekable))
            raised = 0
        except OSError as e:
            raised = e.args[0]
        engine.stop()
        return raised, b"".join(module.payloads)

    return run(main())


def test_a_file_send_that_finds_no_heap_puts_back_what_it_read():
    # Those 1400 bytes go back to the file (seek), and the file arrives whole.
    eq(_send_a_file_whose_second_ssend_finds_no_heap(True), (0, b"head:" + _FILE))


def test_a_source_that_cannot_go_back_fails_the_stream_instead_of_losing_a_piece():
    eq(_send_a_file_whose_second_ssend_finds_no_heap(False), (105, (b"head:" + _FILE)[:1400]))


def test_a_send_that_took_nothing_marks_a_healthy_stream_failed():
    # The writer waits for the lock with 1500 queued bytes behind the flush timer, which
    # sends 100 of them fine; the writer's send then fails for heap before taking a byte.
    # Judged by the queue's length (1400 < 1500), the stream failed with nothing lost.
    async def main():
        module, engine, stream = _stream()
        stream.write(b"A" * 100)
        await stream.drain()
        await engine._lock.acquire()
        await asyncio.sleep(0.02)  # the timer waits for the lock with its 100 bytes
        real = engine.ssend_from
        n_calls = []

        async def ssend_from(sock, queue, n, source=None):
            n_calls.append(n)
            if len(n_calls) == 1:
                async with engine._lock:  # its turn, as the real one
                    pass
                raise MemoryError  # before a byte of the queue is taken
            return await real(sock, queue, n, source)

        engine.ssend_from = ssend_from
        stream.write(b"B" * 1400)
        writer = asyncio.ensure_future(stream.drain())  # queued 1500: _send(1400) waits for the lock
        await asyncio.sleep(0.01)
        engine._lock.release()
        try:
            await writer
        except MemoryError:
            pass
        await asyncio.sleep(0.02)
        sent = b"".join(module.payloads)
        # Every byte reached the peer in order, yet every later write now fails.
        eq((sent == b"A" * 100 + b"B" * 1400, stream.sock.send_error), (True, 0))
        engine.stop()

    run(main())


def test_a_send_waiting_behind_the_flush_timers_failed_send_is_not_sent():
    # The flush timer's SSEND is on the wire; the handler writes more and closes, and
    # the close's flush waits for the engine's lock. The timer's SSEND ends in [TCP Send
    # Error]; checked before the wait only, the close's send went out anyway, and the
    # peer got "b"*50 without the "a"*100 before it (fuzz round 3).
    async def main():
        module, engine, stream = _stream()
        module.after_payload = b""  # the module answers later, by hand
        stream.write(b"a" * 100)
        await stream.drain()  # the tail goes to the flush timer
        await asyncio.sleep(0.02)  # the timer's SSEND is on the wire, its payload sent
        eq(module.payloads, [b"a" * 100])
        stream.write(b"b" * 50)
        closing = asyncio.create_task(stream.aclose())
        await asyncio.sleep(0.01)  # wait_closed's flush waits for the lock
        module.after_payload = b"[OK]\r\n"
        module.uart.emit(b"\r\n[TCP Send Error]\r\n")  # the timer's send failed
        await closing
        eq(module.payloads, [b"a" * 100])  # nothing after the lost bytes
        engine.stop()

    run(main())


def test_a_send_waiting_behind_a_failed_send_of_the_same_stream_is_not_sent():
    # The same with two writers' sends (a handler's drain and the timer's flush).
    async def main():
        module, engine, stream = _stream()
        module.after_payload = b""
        stream.write(b"a" * 100)
        first = asyncio.create_task(stream.flush())
        await asyncio.sleep(0.01)
        stream.write(b"b" * 50)
        second = asyncio.create_task(stream.flush())
        await asyncio.sleep(0.01)
        module.after_payload = b"[OK]\r\n"
        module.uart.emit(b"\r\n[TCP Send Error]\r\n")
        for t in (first, second):
            try:
                await t
            except OSError:
                pass
        eq(module.payloads, [b"a" * 100])
        engine.stop()

    run(main())

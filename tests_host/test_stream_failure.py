"""A stream's failed send sticks, exactly when bytes were lost, with two senders of one
stream (the writer and its flush timer). Written by a review that found the first
version judging that by the queue's length, which the other sender changes."""

import asyncio

from cases_net import net_with
from fakeuart import Module, eq, run
from wizfi250.sockets import TCP
from wizfi250.stream import Stream


def _failing_ssend(engine, when):
    """engine._ssend raising MemoryError on call number ``when`` (after ssend_from took the bytes)."""
    real = engine._ssend
    calls = []

    async def ssend(sock, data, n, ip, port):
        calls.append(bytes(data[:n]))
        if len(calls) == when:
            raise MemoryError  # the _Transaction / the command line found no heap
        return await real(sock, data, n, ip, port)

    engine._ssend = ssend
    return calls


def test_flush_timer_loses_bytes_while_the_writer_appends_and_the_stream_goes_on():
    # The flush timer waits for the engine lock (another connection's SSEND) with 100
    # bytes; meanwhile the handler writes 200 more. The timer's send takes its 100 bytes
    # and fails for heap: judged by the queue's length (now 200), the stream went on and
    # the peer got a response with a 100-byte hole.
    async def main():
        module = Module()
        net, engine = net_with(module)
        stream = Stream(engine, engine._new_socket(0, TCP))
        stream.write(b"A" * 100)
        await stream.drain()  # tail left to the flush timer
        await engine._lock.acquire()  # another socket's SSEND holds the UART
        await asyncio.sleep(0.02)  # the timer is now in _send, waiting for the lock
        calls = _failing_ssend(engine, 1)
        stream.write(b"B" * 200)  # the handler goes on writing
        engine._lock.release()
        await asyncio.sleep(0.02)
        eq(calls, [b"A" * 100])  # the A's left the queue and were never sent
        failed = stream._failed
        try:
            await stream.awrite(b"C")
            await stream.flush()
            raised = None
        except OSError as e:
            raised = e.args[0]
        # Expected: the stream fails (ENOBUFS), the peer never gets B's without the A's.
        eq((failed, raised, [(len(x), x[:1]) for x in module.payloads]), (105, 105, []))
        engine.stop()

    run(main())


def test_a_send_that_took_nothing_marks_a_healthy_stream_failed():
    # The writer waits for the lock with 1500 queued bytes behind the flush timer, which
    # sends 100 of them fine; the writer's send then fails for heap before taking a byte.
    # Judged by the queue's length (1400 < 1500), the stream failed with nothing lost.
    async def main():
        module = Module()
        net, engine = net_with(module)
        stream = Stream(engine, engine._new_socket(0, TCP))
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
        eq((sent == b"A" * 100 + b"B" * 1400, stream._failed), (True, 0))
        engine.stop()

    run(main())

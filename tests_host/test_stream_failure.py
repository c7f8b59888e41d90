"""A stream's failed send sticks, exactly when bytes were lost, with two senders of one
stream (the writer and its flush timer). Written by a review that found the first
version judging that by the queue's length, which the other sender changes, and a
fuzzer that found a send waiting for the lock behind a failed one still sent."""

import asyncio

from fakenet import net_with
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
        failed = stream.sock.send_error
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
        eq((sent == b"A" * 100 + b"B" * 1400, stream.sock.send_error), (True, 0))
        engine.stop()

    run(main())


def test_a_send_waiting_behind_the_flush_timers_failed_send_is_not_sent():
    # The flush timer's SSEND is on the wire; the handler writes more and closes, and
    # the close's flush waits for the engine's lock. The timer's SSEND ends in [TCP Send
    # Error]; checked before the wait only, the close's send went out anyway, and the
    # peer got "b"*50 without the "a"*100 before it (fuzz round 3).
    async def main():
        module = Module()
        net, engine = net_with(module)
        stream = Stream(engine, engine._new_socket(0, TCP))
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
        module = Module()
        net, engine = net_with(module)
        stream = Stream(engine, engine._new_socket(0, TCP))
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

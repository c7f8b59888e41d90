"""Streams, the server, clients and UDP against a scripted module; CPython and MicroPython.

The resync cases are in ``cases_resync``: under MicroPython a case module's own bytecode
is heap, and this one's grew past the socket layer's budget."""

import asyncio

from fakenet import net_with
from fakeuart import Module, engine_with, eq, fails, run, settle
from noheap import NoHeapFor
from wizfi250 import engine as engine_module
from wizfi250 import net as netmod
from wizfi250.net import Datagram
from wizfi250.sockets import ACCEPTED, LISTENER, TCP, UDP
from wizfi250.stream import Stream


def test_a_connection_with_no_heap_for_its_handler_is_closed_not_left_open():
    # Its Stream (or task) found no heap: the error went to the parser, which counted it,
    # and the connection stayed open with nobody to read or close it, holding an id.
    async def main():
        module = Module()
        net, engine = net_with(module)
        served = []

        async def handler(reader, writer):
            served.append(await reader.readline())
            await writer.aclose()

        await net.start_server(handler, 80)
        with NoHeapFor("Stream", netmod, times=1):  # this one only
            module.uart.emit(b"\r\n[CONNECT 0]\r\n{0,10.0.0.4,50000,5}GET \n\r\n")
            module.uart.emit(b"\r\n[CONNECT 1]\r\n{1,10.0.0.5,50001,5}GET \n\r\n")
            await asyncio.sleep(0.05)
        engine.stop()
        closed = [c for c in module.commands if c.startswith(b"AT+SMGMT")]
        eq((served, closed, net.servers[0].refused), ([b"GET \n"], [b"AT+SMGMT=0", b"AT+SMGMT=1"], 1))

    run(main())


async def park_the_second(net, module, handler, first=b"", second=b""):
    """Serve ``handler`` on port 80; connection 0 comes, then 1 with no heap for its
    Stream while 0's handler runs (the frames: what each sends with its connect)."""
    await net.start_server(handler, 80)
    module.uart.emit(b"\r\n[CONNECT 0]\r\n" + first)
    await settle()
    with NoHeapFor("Stream", netmod):
        module.uart.emit(b"\r\n[CONNECT 1]\r\n" + second)
        await settle()


def test_a_connection_with_no_heap_while_a_handler_runs_is_served_once_that_handler_ends():
    # At a 128K heap about one request in 10,000 came while the running handlers held
    # the heap: closed at once, the browser got no answer. A running handler's end gives
    # its heap back, so the connection waits for that.
    async def main():
        module = Module()
        net, engine = net_with(module)
        served = []
        first_may_end = asyncio.Event()

        async def handler(reader, writer):
            served.append(await reader.readline())
            if len(served) == 1:
                await first_may_end.wait()
            await writer.aclose()

        await park_the_second(net, module, handler, b"{0,10.0.0.4,50000,5}GET \n\r\n", b"{1,10.0.0.5,50001,6}GET 1\n\r\n")
        eq((served, net.servers[0].parked), ([b"GET \n"], 1))
        first_may_end.set()
        await settle()
        server = net.servers[0]
        eq((served, server.refused), ([b"GET \n", b"GET 1\n"], 0))
        eq([c for c in module.commands if c.startswith(b"AT+SMGMT")], [b"AT+SMGMT=0", b"AT+SMGMT=1"])
        engine.stop()

    run(main())


def test_a_parked_connection_that_ends_unserved_gives_its_id_and_ring_back():
    # Its peer gave up while it waited: the module reuses its id for the next one.
    async def main():
        module = Module()
        net, engine = net_with(module)
        hold = asyncio.Event()

        async def handler(reader, writer):
            await hold.wait()
            await writer.aclose()

        await park_the_second(net, module, handler)
        parked = engine.table[1]
        ring = parked.rx
        module.uart.emit(b"\r\n[DISCONNECT 1]\r\n\r\n[CONNECT 1]\r\n")
        await settle()
        server = net.servers[0]
        eq((server.parked, server.refused, parked.rx, engine.table[1] is not parked), (1, 1, None, True))
        eq(any(r is ring for r in engine.rings), True)  # back for the next connection
        hold.set()
        await settle()
        engine.stop()

    run(main())


def test_server_coalesces_a_response_into_one_ssend_and_closes():
    async def main():
        module = Module()
        net, engine = net_with(module)
        got = []

        async def handler(reader, writer):
            got.append(await reader.readline())
            for piece in (b"HTTP/1.0 200 OK\r\n", b"Content-Type: text/plain\r\n", b"\r\n", b"hello"):
                await writer.awrite(piece)
            await writer.aclose()

        await net.start_server(handler, 80)
        module.uart.emit(b"\r\n[CONNECT 0]\r\n{0,10.0.0.4,50000,16}GET / HTTP/1.0\n\r\n")
        await asyncio.sleep(0.05)
        eq(got, [b"GET / HTTP/1.0\n"])
        body = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello"
        eq(module.payloads, [body])
        eq([c for c in module.commands if c.startswith(b"AT+SSEND") or c.startswith(b"AT+SMGMT")],
           [b"AT+SSEND=0,,,%d" % len(body), b"AT+SMGMT=0"])  # fmt: skip
        eq(engine.table[0], None)
        engine.stop()

    run(main())


def test_server_puts_its_listener_back_after_an_accept_without_doubling_it():
    async def main():
        module = Module()
        net, engine = net_with(module)

        async def handler(reader, writer):
            await reader.read(10)
            await writer.aclose()

        await net.start_server(handler, 80)
        module.replies[b"AT+SCON=O,TSN"] = b"[OK]\r\n\r\n[LISTEN 1]\r\n"
        module.uart.emit(b"\r\n[CONNECT 0]\r\n")  # the listener on 0 became the connection
        await asyncio.sleep(0.05)
        listens = [c for c in module.commands if c.startswith(b"AT+SCON=O,TSN")]
        eq(listens, [b"AT+SCON=O,TSN,,,80,0"] * 2)  # put back at once, not on the module's tick
        eq(engine.listener().sid, 1)
        # The module's own task may get there first: then nothing more is sent.
        module.uart.emit(b"\r\n[CONNECT 1]\r\n\r\n[LISTEN 2]\r\n")
        await asyncio.sleep(0.05)
        eq(len([c for c in module.commands if c.startswith(b"AT+SCON=O,TSN")]), 2)
        eq(engine.listener().sid, 2)
        engine.stop()

    run(main())


def test_idle_preconnect_is_closed_and_others_are_served():
    async def main():
        module = Module()
        net, engine = net_with(module, idle_ms=50)
        served = []

        async def handler(reader, writer):
            served.append(await reader.read(10))
            await writer.aclose()

        await net.start_server(handler, 80)
        module.uart.emit(b"\r\n[CONNECT 0]\r\n\r\n[LISTEN 1]\r\n\r\n[CONNECT 1]\r\n{1,10.0.0.5,40000,3}GET\r\n")
        await asyncio.sleep(0.2)
        eq(served, [b"GET"])
        assert b"AT+SMGMT=0" in module.commands
        eq(net.counters["idle_closed"], 1)
        eq(engine.table[0], None)
        engine.stop()

    run(main())


def test_listener_comes_back_as_soon_as_an_idle_close_frees_an_id():
    async def main():
        module = Module()
        net, engine = net_with(module, idle_ms=50)

        async def handler(reader, writer):
            await writer.aclose()

        await net.start_server(handler, 80)
        module.replies[b"AT+SCON=O,TSN"] = b"[ERROR]\r\n"  # every id taken: no listener for now
        module.uart.emit(b"\r\n[CONNECT 0]\r\n")  # the listener became an idle connection
        await asyncio.sleep(0.02)
        eq(engine.listener(), None)
        module.replies[b"AT+SCON=O,TSN"] = b"[OK]\r\n\r\n[LISTEN 0]\r\n"
        await asyncio.sleep(0.2)  # the idle close frees id 0: the listener goes back on it
        eq(net.counters["idle_closed"], 1)
        eq([c for c in module.commands if c.startswith(b"AT+SCON=O,TSN") or c.startswith(b"AT+SMGMT")],
           [b"AT+SCON=O,TSN,,,80,0", b"AT+SCON=O,TSN,,,80,0", b"AT+SMGMT=0", b"AT+SCON=O,TSN,,,80,0"])  # fmt: skip
        eq(engine.listener().sid, 0)
        engine.stop()

    run(main())


def test_a_burst_of_clients_is_accepted_one_relisten_after_another():
    async def main():
        module = Module()
        net, engine = net_with(module, idle_ms=0)
        waiting = [1, 2]  # clients queued on the host: each takes the next listener at once

        def tsn(cmd):
            sid = 3 - len(waiting) if waiting else 3
            if waiting:
                waiting.pop(0)
                return b"\r\n[LISTEN %d]\r\n\r\n[CONNECT %d]\r\n[OK]\r\n" % (sid, sid)
            return b"\r\n[LISTEN %d]\r\n[OK]\r\n" % sid

        async def handler(reader, writer):
            await reader.read(10)

        await net.start_server(handler, 80)
        module.replies[b"AT+SCON=O,TSN"] = tsn
        module.uart.emit(b"\r\n[CONNECT 0]\r\n")
        await asyncio.sleep(0.1)
        eq(len([c for c in module.commands if c.startswith(b"AT+SCON=O,TSN")]), 4)  # start + one per accept
        eq([s.kind for s in engine.table[:4]], [ACCEPTED, ACCEPTED, ACCEPTED, LISTENER])
        engine.stop()

    run(main())


def test_a_waiting_connection_whose_request_fills_its_ring_is_refused_at_once():
    """Its frame's rest would hold the UART, and the busy handler's [OK] behind it:
    nothing could end until the slot wait ran out, a second with the whole server still."""

    async def main():
        module = Module()
        net, engine = net_with(module, socket_rx=64, max_handlers=1)
        go = asyncio.Event()

        async def handler(reader, writer):
            await reader.read(10)
            await go.wait()
            await writer.awrite(b"response")
            await writer.aclose()

        await net.start_server(handler, 80)
        module.uart.emit(b"\r\n[CONNECT 0]\r\n{0,10.0.0.4,50000,3}one\r\n")
        await asyncio.sleep(0.02)
        module.uart.emit(b"\r\n[CONNECT 1]\r\n{1,10.0.0.4,50001,100}" + b"c" * 100 + b"\r\n")
        await asyncio.sleep(0.1)  # far below SLOT_WAIT_MS
        eq(net.servers[0].refused, 1)
        assert b"AT+SMGMT=1" in module.commands
        go.set()
        await asyncio.sleep(0.05)
        eq(module.payloads, [b"response"])  # and the busy handler finished
        engine.stop()

    run(main())


def test_a_connection_with_no_heap_to_wait_for_a_handler_is_refused_and_closed():
    # Its wait for a handler's end found no heap (it was a wait_for, a task): its task
    # died there, before the try that closes the stream, and the module kept the
    # connection open for good.
    async def main():
        module = Module()
        net, engine = net_with(module, max_handlers=1)
        release = asyncio.Event()

        async def handler(reader, writer):
            await reader.read(10)
            await release.wait()
            await writer.aclose()

        await net.start_server(handler, 80)
        module.uart.emit(b"\r\n[CONNECT 0]\r\n{0,10.0.0.4,50000,3}one\r\n")
        await asyncio.sleep(0.05)
        with NoHeapFor("_slot", net.servers[0], times=1):
            module.uart.emit(b"\r\n[CONNECT 1]\r\n{1,10.0.0.4,50001,3}two\r\n")
            await asyncio.sleep(0.05)
        # Closed on the module, its id free for the listener's next move.
        eq((net.servers[0].refused, module.commands.count(b"AT+SMGMT=1")), (1, 1))
        assert engine.table[1] is None or engine.table[1].kind == LISTENER
        release.set()
        await asyncio.sleep(0.05)
        engine.stop()

    run(main())


def test_connection_beyond_max_handlers_waits_for_a_closing_handler_then_is_refused():
    async def main():
        module = Module()
        net, engine = net_with(module, max_handlers=1)
        served = []
        release = asyncio.Event()

        async def handler(reader, writer):
            served.append(await reader.read(10))
            await release.wait()
            await writer.aclose()

        await net.start_server(handler, 80)
        module.uart.emit(b"\r\n[CONNECT 0]\r\n{0,10.0.0.4,50000,3}one\r\n")
        await asyncio.sleep(0.05)
        # The browser's next connection arrives while the first handler is still closing.
        module.uart.emit(b"\r\n[CONNECT 1]\r\n{1,10.0.0.4,50001,3}two\r\n")
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.sleep(0.05)
        eq(served, [b"one", b"two"])
        eq(net.servers[0].refused, 0)
        # A slot that does not free up in time: refused, its id given back.
        release.clear()
        netmod.SLOT_WAIT_MS = 50
        try:
            module.uart.emit(b"\r\n[CONNECT 2]\r\n{2,10.0.0.4,50002,5}three\r\n")
            await asyncio.sleep(0.02)
            module.uart.emit(b"\r\n[CONNECT 3]\r\n{3,10.0.0.4,50003,4}four\r\n")
            await asyncio.sleep(0.2)
        finally:
            netmod.SLOT_WAIT_MS = 1000
        eq(served, [b"one", b"two", b"three"])
        eq(net.servers[0].refused, 1)
        assert b"AT+SMGMT=3" in module.commands
        release.set()
        await asyncio.sleep(0.05)
        engine.stop()

    run(main())


def test_peer_disconnect_gives_eof_to_readers_and_104_to_writers():
    async def main():
        module = Module()
        net, engine = net_with(module)
        module.replies[b"AT+SCON=O,TCN"] = b"[OK]\r\n\r\n[CONNECT 2]\r\n"
        reader, writer = await net.open_connection("10.0.0.2", 7)
        eq(writer.get_extra_info("peername"), ("10.0.0.2", 7))
        module.uart.emit(b"{2,10.0.0.2,7,4}tail\r\n\r\n[DISCONNECT 2]\r\n")
        await settle()
        eq(await reader.read(2), b"ta")
        try:
            await reader.readexactly(5)
            raise AssertionError("no EOF")
        except EOFError:
            pass
        eq(await reader.read(), b"")
        await fails(writer.awrite(b"x"), 104)
        await writer.aclose()
        eq([c for c in module.commands if c.startswith(b"AT+SMGMT")], [])  # already closed by the peer
        engine.stop()

    run(main())


def test_a_client_closed_without_wait_closed_still_sends_closes_and_gives_back_its_id():
    # CPython's idiom again, on a client: close() and forget the stream. The module kept
    # the socket, and with eight ids a firmware that did this eight times had no more.
    async def main():
        module = Module()
        net, engine = net_with(module)
        module.replies[b"AT+SCON=O,TCN"] = b"[OK]\r\n\r\n[CONNECT 2]\r\n"
        reader, writer = await net.open_connection("10.0.0.2", 7)
        rings = len(engine.rings)
        writer.write(b"bye")
        writer.close()
        await fails(writer.awrite(b"late"), 104)  # closing: no more writes
        await asyncio.sleep(0.05)
        eq(module.payloads, [b"bye"])  # what was written before the close leaves first
        eq([c for c in module.commands if c.startswith(b"AT+SMGMT")], [b"AT+SMGMT=2"])
        eq((engine.table[2], len(engine.rings)), (None, rings + 1))
        await writer.wait_closed()  # after the fact: nothing left to do, nothing done twice
        writer.close()
        await asyncio.sleep(0.02)
        eq(len([c for c in module.commands if c.startswith(b"AT+SMGMT")]), 1)
        engine.stop()

    run(main())


def test_a_client_with_no_heap_for_its_socket_or_stream_leaves_nothing_open_on_the_module():
    # Its Socket was made at its [CONNECT n]: with no heap then the connect failed with
    # ECONNREFUSED, and the module kept the connection, whose data a server took for a
    # browser's. Now the Socket is made before the SCON.
    async def main():
        module = Module()
        net, engine = net_with(module)
        module.replies[b"AT+SCON=O,TCN"] = b"[OK]\r\n\r\n[CONNECT 2]\r\n"
        with NoHeapFor("Socket"):
            try:
                await net.open_connection("10.0.0.2", 7)
                raise AssertionError("connected without heap")
            except MemoryError:
                pass
        eq([c for c in module.commands if c.startswith(b"AT+SCON")], [])
        reader, writer = await net.open_connection("10.0.0.2", 7)  # heap again: it connects
        eq((writer.sock.sid, writer.sock.local_port, engine.table[2] is writer.sock), (2, 0, True))
        module.uart.emit(b"{2,10.0.0.2,7,2}hi\r\n")
        eq(await reader.read(2), b"hi")
        await writer.aclose()
        # Opened, but no heap for its Stream: closed on the module, not left to nobody.
        module.replies[b"AT+SCON=O,TCN"] = b"[OK]\r\n\r\n[CONNECT 3]\r\n"
        with NoHeapFor("Stream", netmod):
            try:
                await net.open_connection("10.0.0.2", 7)
                raise AssertionError("a client without its stream")
            except MemoryError:
                pass
        await asyncio.sleep(0.02)
        eq(([c for c in module.commands if c.startswith(b"AT+SMGMT")], engine.table[3]), ([b"AT+SMGMT=2", b"AT+SMGMT=3"], None))
        engine.stop()

    run(main())


def test_read_without_a_size_reads_to_the_end_of_the_stream():
    # As asyncio's read(): it returned the first frame alone, and a client that read
    # a whole response with one read() got its first piece.
    async def main():
        module = Module()
        net, engine = net_with(module)
        module.replies[b"AT+SCON=O,TCN"] = b"[OK]\r\n\r\n[CONNECT 2]\r\n"
        reader, writer = await net.open_connection("10.0.0.2", 7)
        module.uart.emit(b"{2,10.0.0.2,7,6}first \r\n")
        read = asyncio.create_task(reader.read())
        await asyncio.sleep(0.02)
        module.uart.emit(b"{2,10.0.0.2,7,6}second\r\n\r\n[DISCONNECT 2]\r\n")
        eq(await read, b"first second")
        engine.stop()

    run(main())


def test_a_read_given_up_by_its_timeout_leaves_the_stream_readable():
    async def main():
        module = Module()
        net, engine = net_with(module)
        module.replies[b"AT+SCON=O,TCN"] = b"[OK]\r\n\r\n[CONNECT 2]\r\n"
        reader, writer = await net.open_connection("10.0.0.2", 7)
        buf = bytearray(8)
        for _ in range(2):  # a cancelled wait leaves nothing behind for the next one
            try:
                await asyncio.wait_for(reader.readinto(buf), 0.02)
                raise AssertionError("no timeout")
            except asyncio.TimeoutError:
                pass
        module.uart.emit(b"{2,10.0.0.2,7,4}data\r\n")
        eq(await reader.readinto(buf), 4)
        eq(bytes(buf[:4]), b"data")
        reading = asyncio.create_task(reader.readinto(buf))
        await asyncio.sleep(0.02)  # it waits when the peer goes
        module.uart.emit(b"\r\n[DISCONNECT 2]\r\n")
        eq(await reading, 0)
        engine.stop()

    run(main())


def test_client_resolves_names_with_fdns():
    async def main():
        module = Module()
        net, engine = net_with(module)
        module.replies[b"AT+FDNS=example.test"] = b"10.1.2.3\r\n[OK]\r\n"
        module.replies[b"AT+SCON=O,TCN,10.1.2.3,8080"] = b"\r\n[CONNECT 0]\r\n[OK]\r\n"
        reader, writer = await net.open_connection("example.test", 8080)
        eq(writer.sock.kind, TCP)
        eq(module.commands[:2], [b"AT+FDNS=example.test,5000", b"AT+SCON=O,TCN,10.1.2.3,8080,0,0"])
        engine.stop()

    run(main())


def test_a_client_opened_on_an_id_whose_end_was_missed_is_the_new_clients():
    # The [DISCONNECT 0] of an earlier client was lost, and the module gave 0 to the next
    # SCON. Its [CONNECT 0] must be the command's (not an event for a socket already open,
    # which left the SCON waiting 8 s for it), and the old socket's reader learns it ended.
    async def main():
        module = Module()
        net, engine = net_with(module)
        module.replies[b"AT+SCON=O,TCN,10.0.0.7,5000"] = b"\r\n[CONNECT 0]\r\n[OK]\r\n"
        old_reader, old = await net.open_connection("10.0.0.7", 5000)
        reader, writer = await asyncio.wait_for(net.open_connection("10.0.0.7", 5000), 2)
        module.uart.emit(b"{0,10.0.0.7,5000,3}new\r\n")
        got = await reader.read(10)
        await fails(old_reader.read(10), 104)
        eq((got, engine.table[0] is writer.sock, old.sock.open), (b"new", True, False))
        engine.stop()

    run(main())


def test_udp_recvfrom_reports_each_sender_and_sendto_names_the_peer():
    async def main():
        module = Module()
        net, engine = net_with(module)
        module.replies[b"AT+SCON=O,USN"] = b"\r\n[CONNECT 3]\r\n[OK]\r\n"
        udp = await net.open_udp(local_port=5000)
        module.uart.emit(b"{3,10.0.0.7,1111,5}first\r\n{3,10.0.0.8,2222,6}second\r\n")
        eq(await udp.recvfrom(), (b"first", ("10.0.0.7", 1111)))
        eq(await udp.recvfrom(), (b"second", ("10.0.0.8", 2222)))
        await udp.sendto(b"echo", ("10.0.0.8", 2222))
        eq(module.payloads, [b"echo"])
        eq(module.commands[0], b"AT+SCON=O,USN,,,5000,0")
        engine.stop()

    run(main())


def test_a_connection_that_got_no_ring_is_still_closed_on_the_module():
    async def main():
        module = Module()
        net, engine = net_with(module)
        served = []

        async def handler(reader, writer):
            served.append(await reader.readline())  # fails: nothing can be read without a ring

        await net.start_server(handler, 80)
        with NoHeapFor("Ring"):
            module.uart.emit(b"\r\n[CONNECT 1]\r\n{1,10.0.0.4,50000,16}GET / HTTP/1.0\n\r\n")
            await asyncio.sleep(0.05)
        eq(served, [])
        assert b"AT+SMGMT=1" in module.commands  # not left open until the browser gives up
        eq(engine.table[1], None)
        engine.stop()

    run(main())


def test_a_close_whose_send_finds_no_heap_still_closes_and_keeps_its_queue():
    async def main():
        module = Module()
        net, engine = net_with(module, queues=1)
        ssend_from = engine.ssend_from

        def no_heap(*args):
            engine.ssend_from = ssend_from  # only this once
            raise MemoryError

        async def handler(reader, writer):
            await reader.readline()
            await writer.awrite(b"hello")  # short: left for the flush timer
            engine.ssend_from = no_heap  # the close's own flush finds no heap
            await writer.aclose()

        await net.start_server(handler, 80)
        queue = net.queues[0]
        module.uart.emit(b"\r\n[CONNECT 1]\r\n{1,10.0.0.4,50000,16}GET / HTTP/1.0\n\r\n")
        await asyncio.sleep(0.3)  # the close's flush is tried again 100 ms on
        eq(module.payloads, [b"hello"])  # sent once, after all
        assert b"AT+SMGMT=1" in module.commands
        eq(engine.table[1], None)
        eq(net.queues, [queue])  # back in the pool: the next connection allocates nothing
        engine.stop()

    run(main())


def test_a_dropped_socket_whose_close_finds_no_heap_is_still_closed_on_the_module():
    # A socket dropped for stalling the UART: its close found no heap to begin (or before
    # the SMGMT went out) and was given up, and the module kept the socket, and its peer.
    async def main():
        module = Module()
        engine, _ = engine_with(module, socket_rx=32, stall_ms=50)
        engine._new_socket(0, TCP)
        module.replies[b"AT+SMGMT=0"] = b"[OK]\r\n\r\n[DISCONNECT 0]\r\n"
        with NoHeapFor("close_socket", engine, times=1):
            module.uart.emit(b"{0,10.0.0.1,80,100}" + b"s" * 100 + b"\r\n")
            await asyncio.sleep(0.3)  # the stall limit, the close, a retry's wait, the close again
        eq((module.commands, engine.table[0], engine.counters["overflow"]), ([b"AT+SMGMT=0"], None, 1))
        engine.stop()

    run(main())


def test_a_close_that_finds_no_heap_before_its_command_is_tried_again_and_gives_back_the_ring():
    # With no heap to begin the close ("close_socket": its coroutine), or for a step of
    # the SMGMT before its line went out ("write"), the socket was released, forgotten
    # here but left open on the module: its browser waited for the rest of the response
    # until it gave up (seen at a 160K heap). A starved close is now tried again.
    for starve in ("close_socket", "_Transaction", "write"):
        async def main():
            module = Module()
            net, engine = net_with(module)
            where = {"close_socket": engine, "_Transaction": engine_module, "write": module.uart}[starve]

            async def handler(reader, writer):
                await reader.readline()
                with NoHeapFor(starve, where, times=1):  # no heap for the close, once
                    await writer.aclose()

            server = await net.start_server(handler, 80)
            module.uart.emit(b"\r\n[CONNECT 1]\r\n{1,10.0.0.4,50000,16}GET / HTTP/1.0\n\r\n")
            await asyncio.sleep(0.3)  # a retry's wait, and the close again
            eq((starve, module.commands.count(b"AT+SMGMT=1"), engine.table[1]), (starve, 1, None))
            eq(len(engine.rings), 1)  # back for the next connection, not lost with this one
            eq(server.active, 0)
            engine.stop()

        run(main())


def test_a_handler_that_only_calls_close_still_closes_and_gives_back_its_buffers():
    # CPython's idiom: close() and return, no wait_closed. The server skipped its own
    # close once close() had been called, so the module kept the socket open for good.
    async def main():
        module = Module()
        net, engine = net_with(module, idle_ms=0, queues=1)

        async def handler(reader, writer):
            await reader.readline()
            await writer.awrite(b"hi")
            writer.close()

        await net.start_server(handler, 80)
        module.uart.emit(b"\r\n[CONNECT 1]\r\n{1,10.0.0.4,50000,16}GET / HTTP/1.0\n\r\n")
        await asyncio.sleep(0.1)
        eq(module.payloads, [b"hi"])
        assert b"AT+SMGMT=1" in module.commands
        eq((engine.table[1], len(engine.rings), len(net.queues)), (None, 1, 1))
        engine.stop()

    run(main())


def test_a_reader_slower_than_the_wire_is_no_stall_while_it_reads():
    # The stall clock restarted only once the whole UART buffer was parsed: an app that
    # read 4 bytes every 20 ms, slower than the frames came, was dropped after stall_ms.
    async def main():
        module = Module()
        engine, _ = engine_with(module, socket_rx=32, stall_ms=200)
        stream = Stream(engine, engine._new_socket(0, TCP))
        module.uart.emit(b"{0,10.0.0.1,80,100}" + b"s" * 100 + b"\r\n{0,10.0.0.1,80,60}" + b"t" * 60 + b"\r\n")
        got = b""
        while len(got) < 160:  # 800 ms in all: four times the stall limit
            got += await stream.read(4)
            await asyncio.sleep(0.02)
        engine.stop()
        eq((got, engine.counters["overflow"]), (b"s" * 100 + b"t" * 60, 0))

    run(main())


def test_an_echo_whose_send_waits_behind_its_peers_message_gets_the_message_whole():
    # The echo's send of what it read waits for its prompt, and the rest of the peer's
    # message, ahead of that prompt, fills the ring: the one task that would read it is
    # the one waiting. The UART stood still until the stall limit dropped the socket.
    async def main():
        module = Module()
        engine, _ = engine_with(module, socket_rx=32, stall_ms=1000)
        stream = Stream(engine, engine._new_socket(0, TCP))
        message = bytes(range(200))  # the ring and six more of its size
        module.replies[b"AT+SSEND=0"] = lambda cmd: b"{0,10.0.0.1,80,200}" + message + b"\r\n[%s]\r\n" % cmd[9:]
        await asyncio.wait_for(stream.awrite(b"e" * 600), 0.5)
        eq(await stream.readexactly(200), message)
        eq((engine.counters["overflow"], len(engine.rings)), (0, 6))  # each lent ring back once read
        await stream.aclose()
        eq(len(engine.rings), 7)
        engine.stop()

    run(main())


def test_a_stream_that_lost_bytes_to_a_stall_ends_in_an_error_not_a_clean_end():
    # A clean end of stream would pass the cut-short transfer off as whole.
    async def main():
        module = Module()
        engine, _ = engine_with(module, socket_rx=32, stall_ms=50)
        module.replies[b"AT+SMGMT=0"] = b"[OK]\r\n\r\n[DISCONNECT 0]\r\n"
        stream = Stream(engine, engine._new_socket(0, TCP))
        module.uart.emit(b"{0,10.0.0.1,80,100}" + b"s" * 100 + b"\r\n")
        await asyncio.sleep(0.2)
        await fails(stream.read(), 105)
        await fails(stream.readinto(bytearray(8)), 105)
        engine.stop()

    run(main())


def test_a_datagram_without_room_is_dropped_alone_and_the_uart_flows():
    async def main():
        module = Module()
        engine, _ = engine_with(module, socket_rx=64, stall_ms=50)
        udp = Datagram(engine, engine._new_socket(2, UDP))
        tcp = engine._new_socket(1, TCP)
        module.uart.emit(
            b"{2,10.0.0.7,5000,100}" + b"B" * 100 + b"\r\n"  # bigger than the ring: never fits
            b"{2,10.0.0.7,5000,40}" + b"a" * 40 + b"\r\n"
            b"{2,10.0.0.8,5001,40}" + b"b" * 40 + b"\r\n"  # 40 more do not fit beside the first
            b"{1,10.0.0.1,81,5}alive\r\n"
        )  # fmt: skip
        await asyncio.sleep(0.1)  # less than the stall limit: nothing held the UART
        eq(tcp.rx.read(), b"alive")
        eq(await udp.recvfrom(), (b"a" * 40, ("10.0.0.7", 5000)))
        module.uart.emit(b"{2,10.0.0.8,5001,3}c c\r\n")  # room again
        eq(await udp.recvfrom(), (b"c c", ("10.0.0.8", 5001)))
        eq((engine.counters["udp_dropped"], engine.counters["discarded"], engine.counters["overflow"]), (2, 140, 0))
        engine.stop()

    run(main())


def test_a_datagram_cut_short_by_a_reset_fails_recvfrom_instead_of_hanging():
    async def main():
        module = Module()
        engine, _ = engine_with(module, socket_rx=64)
        udp = Datagram(engine, engine._new_socket(2, UDP))
        module.uart.emit(b"{2,10.0.0.7,5000,30}" + b"x" * 10)  # the module restarts mid-frame
        await settle()
        receiving = asyncio.create_task(udp.recvfrom())
        await settle()
        engine._end_socket(engine.table[2], 104)  # what a [Reset Event] does to every socket
        await fails(asyncio.wait_for(receiving, 1), 104)
        engine.stop()

    run(main())


def test_clients_that_come_and_go_inside_one_send_are_each_served_their_own_bytes():
    # Their [CONNECT 2]s wait for the SSEND's [OK] to be delivered; by then id 2 is
    # nobody's, or a newer client's. Looked up by id then, the first client was never
    # served and the second was served twice.
    async def main():
        module = Module()
        net, engine = net_with(module, idle_ms=0)
        served = []

        async def handler(reader, writer):
            served.append((writer.get_extra_info("peername"), await reader.read()))
            await writer.aclose()

        await net.start_server(handler, 80)
        client = engine._new_socket(5, TCP)
        module.replies[b"AT+SSEND=5"] = b"[5,,,2]\r\n"
        module.after_payload = (
            b"\r\n[CONNECT 2]\r\n{2,10.0.0.7,40000,5}first\r\n\r\n[DISCONNECT 2]\r\n"
            b"\r\n[CONNECT 2]\r\n{2,10.0.0.8,40001,6}second\r\n[OK]\r\n"
        )  # fmt: skip
        await engine.ssend(client, b"hi")
        module.after_payload = b"[OK]\r\n"
        await asyncio.sleep(0.05)
        module.uart.emit(b"\r\n[DISCONNECT 2]\r\n")
        await asyncio.sleep(0.05)
        eq(sorted(served), [(("10.0.0.7", 40000), b"first"), (("10.0.0.8", 40001), b"second")])
        eq(engine.counters["adopted"], 0)
        engine.stop()

    run(main())


def test_a_client_whose_request_fills_its_ring_during_a_send_is_served_at_once():
    # Its handler is its only reader. Handed over only at the SSEND's [OK], which comes
    # after the rest of the request, it could not make room: the UART stood still for
    # the stall limit, then the connection was dropped with its request (fuzzer round 2).
    async def main():
        module = Module()
        net, engine = net_with(module, socket_rx=64, idle_ms=0)
        engine.stall_ms = 1000
        served = []

        async def handler(reader, writer):
            served.append(await reader.readexactly(100))
            await writer.aclose()

        await net.start_server(handler, 80)  # the listener on id 0
        module.after_payload = b"\r\n[CONNECT 0]\r\n{0,10.0.0.7,40000,100}" + b"R" * 100 + b"\r\n[OK]\r\n"
        await engine.ssend(engine._new_socket(5, TCP), b"hi")
        module.after_payload = b"[OK]\r\n"
        await asyncio.sleep(0.05)
        eq((served, engine.counters["overflow"]), ([b"R" * 100], 0))  # not dropped at the stall limit
        engine.stop()

    run(main())


def test_after_the_flush_timer_failed_to_send_writes_fail_instead_of_leaving_a_hole():
    # The timer's send of the short tail ended in [TCP Send Error], and nobody heard: the
    # next write went out, so the peer got it without the bytes before it (fuzzer round 2).
    async def main():
        module = Module()
        net, engine = net_with(module)
        stream = Stream(engine, engine._new_socket(0, TCP))
        module.after_payload = b"\r\n[TCP Send Error]\r\n"
        stream.write(b"part1")
        await stream.drain()  # the tail is left to the flush timer
        await asyncio.sleep(0.05)
        module.after_payload = b"[OK]\r\n"
        await fails(stream.awrite(b"part2"), 5)
        eq(module.payloads, [b"part1"])
        await stream.aclose()
        engine.stop()

    run(main())


def test_a_write_without_drain_still_goes_out_within_flush_ms():
    # As asyncio's write(), which sends at once: only drain armed the flush timer, and
    # a client's request written without one never left, so its reply never came.
    async def main():
        module = Module()
        net, engine = net_with(module)
        stream = Stream(engine, engine._new_socket(0, TCP))
        stream.write(b"PI")
        stream.write(b"NG\r\n")
        await asyncio.sleep(0.05)
        eq(module.payloads, [b"PING\r\n"])  # in one SSEND still
        await stream.aclose()
        engine.stop()

    run(main())


def test_flush_returns_only_once_the_flush_timers_send_is_done():
    # The timer's SSEND took the queue's bytes and waited for its [OK]: a flush then
    # found the queue empty and returned while the bytes could still fail.
    async def main():
        module = Module()
        net, engine = net_with(module)
        stream = Stream(engine, engine._new_socket(0, TCP))
        module.after_payload = b""  # the module holds its answer
        stream.write(b"tail")
        await stream.drain()  # left to the flush timer
        await asyncio.sleep(0.05)
        eq(module.payloads, [b"tail"])
        flush = asyncio.create_task(stream.flush())
        await settle()
        eq(flush.done(), False)
        module.uart.emit(b"\r\n[TCP Send Error]\r\n")
        await fails(flush, 5)  # EIO: the bytes the flush stood for are lost
        await stream.aclose()
        engine.stop()

    run(main())


def test_a_relisten_that_finds_no_heap_ends_quietly_and_the_next_accept_relistens():
    # A task that ends in an exception prints "Task exception wasn't retrieved" on the
    # board's console, and a full heap is a normal moment for a busy server.
    async def main():
        module = Module()
        net, engine = net_with(module)
        unhandled = []
        asyncio.get_event_loop().set_exception_handler(lambda loop, context: unhandled.append(context))

        async def handler(reader, writer):
            await writer.aclose()

        await net.start_server(handler, 80)
        opened = engine.open_socket

        async def no_heap(*args, **kw):
            raise MemoryError

        engine.open_socket = no_heap
        module.uart.emit(b"\r\n[CONNECT 0]\r\n{0,10.0.0.4,50000,2}x\n\r\n")
        await asyncio.sleep(0.05)
        engine.open_socket = opened
        module.uart.emit(b"\r\n[CONNECT 1]\r\n{1,10.0.0.4,50001,2}y\n\r\n")
        await asyncio.sleep(0.05)
        eq(unhandled, [])
        eq(engine.listener() is not None, True)
        engine.stop()

    run(main())

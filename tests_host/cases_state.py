"""The engine's socket table: accepts, resets, back-pressure, resync; CPython and MicroPython.

Apart from cases_engine.py (the transactions) so that each MicroPython run
imports less and keeps its headroom in a 64 KB heap.
"""

import asyncio
import gc

from fakeuart import Module, engine_with, eq, fails, run, settle
from noheap import NoHeapFor
from wizfi250 import parser as P
from wizfi250.compat import ticks_diff, ticks_ms
from wizfi250.sockets import ACCEPTED, LISTENER, TCP, UDP


def test_listener_accepts_and_migrates():
    async def main():
        module = Module()
        engine, events = engine_with(module)
        module.replies[b"AT+SCON=O,TSN"] = b"[OK]\r\n"
        listener = await engine.open_socket(LISTENER, local_port=80)
        eq(listener.sid, 0)
        module.uart.emit(b"\r\n[CONNECT 0]\r\n{0,10.0.0.4,50000,3}GET\r\n\r\n[LISTEN 1]\r\n\r\n[CONNECT 1]\r\n")
        await settle()
        eq(events, [(P.CONNECT, 0), (P.LISTEN, 1), (P.CONNECT, 1)])
        eq((engine.table[0].kind, engine.table[0].local_port, engine.table[0].peer), (ACCEPTED, 80, ("10.0.0.4", 50000)))
        eq(engine.table[1].kind, ACCEPTED)
        engine.stop()

    run(main())


def test_module_reset_fails_the_waiter_and_ends_every_socket():
    async def main():
        module = Module()
        engine, events = engine_with(module)
        s0 = engine._new_socket(0, TCP)
        module.replies[b"AT+WJOIN"] = b"Joining : MyAP\r\nWizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n"
        await fails(engine.command(b"AT+WJOIN", timeout_ms=30000), 104)
        assert not s0.open and s0.error == 104
        eq(engine.table, [None] * 8)
        eq(engine.counters["resets"], 1)
        eq([k for k, a in events], [P.JOIN, P.BANNER])
        engine.stop()

    run(main())


def test_stopping_the_driver_fails_waiters_at_once_not_after_their_timeouts():
    async def main():
        module = Module()
        module.replies[b"AT+WSCAN"] = b""  # the module says nothing: only a timeout would end it
        engine, _ = engine_with(module)
        sock = engine._new_socket(0, TCP)
        waiter = asyncio.create_task(fails(engine.command(b"AT+WSCAN", timeout_ms=60000), 103))
        await settle()
        engine.stop()
        await waiter
        assert not sock.open and sock.error == 103
        await fails(engine.command(b"AT"), 103)  # at once: nobody would read its answer

    run(main())


def test_a_queued_send_or_close_never_reaches_the_connection_that_reused_its_id():
    async def main():
        module = Module()
        module.replies[b"AT+WSCAN"] = b""  # holds the command slot until the test answers
        engine, _ = engine_with(module)
        old = engine._new_socket(2, ACCEPTED)
        scan = asyncio.create_task(engine.command(b"AT+WSCAN"))
        await settle()
        send = asyncio.create_task(fails(engine.ssend(old, b"old reply"), 104))
        close = asyncio.create_task(engine.close_socket(old))
        await settle()
        module.uart.emit(b"\r\n[DISCONNECT 2]\r\n\r\n[CONNECT 2]\r\n[OK]\r\n")  # a new browser got id 2
        await scan
        await send
        await close
        new = engine.table[2]
        assert new is not old and new.open and not old.open
        written = bytes(module.uart.written)
        assert b"AT+SSEND=2" not in written and b"AT+SMGMT=2" not in written
        eq(module.payloads, [])
        engine.stop()

    run(main())


def test_full_socket_ring_holds_the_uart_until_the_app_reads():
    async def main():
        module = Module(lambda n: 100)
        engine, _ = engine_with(module, socket_rx=64)
        sock = engine._new_socket(0, TCP)
        body = bytes(range(256)) * 4
        for i in range(0, len(body), 200):
            chunk = body[i : i + 200]
            module.uart.emit(b"{0,10.0.0.1,80,%d}" % len(chunk) + chunk + b"\r\n")
        module.uart.emit(b"\r\n[DISCONNECT 0]\r\n")
        got = bytearray()
        while True:
            sock.changed.clear()
            if len(sock.rx):
                got += sock.rx.read(50)
                await asyncio.sleep(0)
            elif not sock.open:
                break
            else:
                await sock.changed.wait()
        eq(bytes(got), body)
        eq(engine.counters["overflow"], 0)
        engine.stop()

    run(main())


def test_reader_that_stops_reading_costs_only_its_own_socket():
    async def main():
        module = Module()
        engine, events = engine_with(module, socket_rx=32, stall_ms=50)
        stuck = engine._new_socket(0, TCP)
        other = engine._new_socket(1, TCP)
        # More of it arrives while the driver closes it: dropped, not taken for a new connection.
        module.replies[b"AT+SMGMT=0"] = b"{0,10.0.0.1,80,3}abc\r\n[OK]\r\n\r\n[DISCONNECT 0]\r\n"
        module.uart.emit(b"{0,10.0.0.1,80,100}" + b"s" * 100 + b"\r\n{1,10.0.0.1,81,5}alive\r\n")
        await asyncio.sleep(0.2)
        eq(other.rx.read(), b"alive")
        eq(module.commands, [b"AT+SMGMT=0"])  # closed on the module, where it was still open
        assert not stuck.open and stuck.error == 105 and engine.table[0] is None
        eq((engine.counters["overflow"], engine.counters["adopted"], events), (1, 0, []))
        eq(engine.counters["discarded"], 68 + 32 + 3)  # the frame's rest, the full ring, what came after
        engine.stop()

    run(main())


def test_a_peer_that_outsends_the_lent_rings_is_held_then_dropped_and_every_ring_comes_back():
    # Lending must end somewhere: only the UART can hold back a peer that keeps sending.
    async def main():
        module = Module()
        engine, _ = engine_with(module, socket_rx=32, stall_ms=300)
        sock = engine._new_socket(0, TCP)
        message = b"m" * 400  # more than the ring and the eight it may be lent (9 x 32)
        module.replies[b"AT+SSEND=0"] = lambda cmd: b"{0,10.0.0.1,80,400}" + message + b"\r\n[%s]\r\n" % cmd[9:]
        module.replies[b"AT+SMGMT=0"] = b"[OK]\r\n\r\n[DISCONNECT 0]\r\n"
        await asyncio.wait_for(engine.ssend(sock, b"e" * 600), 1)  # its prompt came once the socket was dropped
        await asyncio.sleep(0.05)
        eq((engine.counters["overflow"], sock.error, sock.open), (1, 105, False))
        sock.release()
        eq(len(engine.rings), 9)
        engine.stop()

    run(main())


def test_a_full_ring_is_lent_nothing_while_no_command_waits():
    # Nobody waits for the module: the UART is held, as back-pressure wants, not buffered.
    async def main():
        module = Module()
        engine, _ = engine_with(module, socket_rx=32, stall_ms=1000)
        sock = engine._new_socket(0, TCP)
        module.uart.emit(b"{0,10.0.0.1,80,100}" + b"s" * 100 + b"\r\n")
        await asyncio.sleep(0.1)
        eq((len(sock.rx), sock.rx.next, engine.parser._left), (32, None, 68))
        engine.stop()

    run(main())


def test_a_restart_during_the_close_of_a_dropped_socket_leaves_no_task_error():
    async def main():
        errors = []
        asyncio.get_event_loop().set_exception_handler(lambda loop, context: errors.append(context))
        module = Module()
        engine, events = engine_with(module, socket_rx=32, stall_ms=50)
        engine._new_socket(0, TCP)
        module.replies[b"AT+SMGMT=0"] = b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n"
        module.uart.emit(b"{0,10.0.0.1,80,100}" + b"s" * 100 + b"\r\n")
        await asyncio.sleep(0.2)
        eq((module.commands, events), ([b"AT+SMGMT=0"], [(P.BANNER, b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)")]))
        gc.collect()  # CPython reports an unretrieved task error when the task is freed
        eq(errors, [])
        engine.stop()

    run(main())


def test_resync_takes_the_modules_word_for_its_sockets():
    async def main():
        module = Module()
        engine, events = engine_with(module)
        accepted = []
        engine.on_accept = accepted.append
        gone = engine._new_socket(3, TCP)
        module.replies[b"AT+SMGMT=?"] = (
            b"Number of Sockets : 3 (SCID/Mode/Remote/Local/DataMode)\r\n"
            b"0/TSN/0.0.0.0:0/80/0\r\n1/TSN/10.0.0.4:50000/80/0\r\n2/UCN/10.0.0.9:7/30001/0\r\n[OK]\r\n"
        )
        module.replies[b"AT+SMGMT=2"] = b"[OK]\r\n\r\n[DISCONNECT 2]\r\n"
        await engine.resync_table()
        # The UDP socket nobody here opened is closed: no one could ever read it.
        eq([s.kind if s else None for s in engine.table], [LISTENER, ACCEPTED] + [None] * 6)
        eq((engine.server_port, module.commands[-1]), (80, b"AT+SMGMT=2"))
        assert not gone.open and gone.error == 104
        eq((accepted, events), ([engine.table[1]], [(P.CONNECT, 1)]))  # the server serves it
        engine.stop()

    run(main())


def test_a_frame_from_another_peer_is_a_new_connection_on_that_id_not_the_old_ones_data():
    # The id changed hands unseen (its [DISCONNECT 1] and [CONNECT 1] never read): the new
    # browser's request went to the old connection's reader, which answered it.
    async def main():
        module = Module()
        engine, events = engine_with(module)
        accepted = []
        engine.on_accept = accepted.append
        old = engine._new_socket(1, ACCEPTED)
        module.uart.emit(b"{1,10.0.0.9,40000,3}one\r\n{1,10.0.0.9,40001,3}two\r\n")
        await settle()
        new = engine.table[1]
        engine.stop()
        eq((old.rx.read(), old.open, old.error), (b"one", False, 104))
        eq((new is not old, new.rx.read(), new.peer, accepted), (True, b"two", ("10.0.0.9", 40001), [new]))

    run(main())


def test_a_udp_socket_takes_datagrams_from_anyone_even_while_it_closes():
    # Only a TCP connection has one peer: a closing UDP socket's second sender must not
    # pass for a new connection on its id.
    async def main():
        module = Module()
        engine, events = engine_with(module)
        sock = engine._new_socket(2, UDP)
        sock.closing = True  # its close is on its way: what comes is dropped
        module.uart.emit(b"{2,10.0.0.7,5000,2}hi\r\n{2,10.0.0.8,5001,2}yo\r\n")
        await settle()
        engine.stop()
        eq((engine.table[2] is sock, sock.open, events, engine.counters["adopted"]), (True, True, [], 0))

    run(main())


def test_closing_a_socket_nobody_reads_drops_its_input_instead_of_holding_the_uart():
    async def main():
        module = Module()
        engine, _ = engine_with(module, socket_rx=32, stall_ms=2000)
        sock = engine._new_socket(2, ACCEPTED)
        module.uart.emit(b"{2,10.0.0.1,80,100}" + b"r" * 100 + b"\r\n")  # a request bigger than the ring
        await asyncio.sleep(0.05)
        module.replies[b"AT+SMGMT=2"] = b"[OK]\r\n{2,10.0.0.1,80,40}" + b"m" * 40 + b"\r\n[DISCONNECT 2]\r\n"
        start = ticks_ms()
        await engine.close_socket(sock)
        assert ticks_diff(ticks_ms(), start) < 1000, "the close waited for the stall limit"
        assert not sock.open
        eq(engine.counters["overflow"], 0)
        eq(engine.counters["discarded"], 100 + 40)
        engine.stop()

    run(main())


def test_no_heap_for_a_new_connection_costs_that_connection_not_the_reader():
    async def main():
        module = Module()
        engine, events = engine_with(module)
        alive = engine._new_socket(1, TCP)
        with NoHeapFor("Ring"):
            module.uart.emit(b"[CONNECT 3]\r\n{3,10.0.0.5,5000,4}lost\r\n{1,10.0.0.1,80,5}alive\r\n")
            await settle()
        eq(alive.rx.read(), b"alive")  # the reader lives on
        eq(events, [(P.CONNECT, 3)])
        starved = engine.table[3]
        eq((starved.error, starved.rx), (105, None))
        eq(engine.counters["discarded"], 4)
        module.replies[b"AT+SMGMT=3"] = b"[OK]\r\n[DISCONNECT 3]\r\n"
        await engine.close_socket(starved)  # and its close still reaches the module
        eq(module.commands[-1], b"AT+SMGMT=3")
        engine.stop()

    run(main())


def test_a_client_whose_peer_speaks_and_closes_at_once_is_still_returned():
    """[CONNECT n], data and [DISCONNECT n] all before open_socket resumes: the
    caller gets the ended socket with its data, not an AttributeError."""

    async def main():
        module = Module()
        engine, events = engine_with(module)
        module.replies[b"AT+SCON=O,TCN"] = b"\r\n[CONNECT 4]\r\n{4,10.0.0.2,5000,3}bye\r\n\r\n[DISCONNECT 4]\r\n[OK]\r\n"
        tcp = await engine.open_socket(TCP, "10.0.0.2", 5000)
        eq((tcp.sid, tcp.open, tcp.peer, tcp.rx.read()), (4, False, ("10.0.0.2", 5000), b"bye"))
        eq(engine.table[4], None)
        eq(events, [(P.DISCONNECT, 4)])  # the close is news, as for any client later on
        engine.stop()

    run(main())


def test_a_connection_whose_first_header_finds_no_heap_fails_its_reader():
    """No heap for a connection's first header (its peer, or the check's copy of it): the
    parser drops that frame by its length, and the reader got what followed with a hole in
    front, as if whole; or, with the check's copy, the new connection took the last one's
    peer and was ended by its own next frame. Now its reader fails, and it is closed."""

    async def main():
        from wizfi250 import header

        for lost in ("peer", "copy"):
            module = Module()
            engine, _ = engine_with(module, socket_rx=64)  # small rings: a small heap holds four
            module.uart.emit(b"\r\n[CONNECT 2]\r\n{2,10.0.0.7,7777,3}old\r\n\r\n[DISCONNECT 2]\r\n\r\n[CONNECT 2]\r\n")
            await settle()
            sock = engine.table[2]
            if lost == "peer":
                peer = engine.parser.frame_peer

                def once():
                    engine.parser.frame_peer = peer
                    raise MemoryError

                engine.parser.frame_peer = once
            else:
                header.bytes = NoHeapFor._fail
            try:
                module.uart.emit(b"{2,10.0.0.8,8888,4}GET \r\n")
                await settle()
            finally:
                header.bytes = bytes
            module.uart.emit(b"{2,10.0.0.8,8888,5}/ HTT\r\n")
            await settle()
            eq((engine.table[2] is sock, sock.closing, sock.error, sock.rx.read()), (True, True, 105, b""))
            engine.stop()
            eq(module.commands, [b"AT+SMGMT=2"])  # closed on the module, not left to its peer

    run(main())


def test_the_reader_outlives_a_full_heap():
    """No heap for a new socket, even once a spare ring is let go for it: that
    [CONNECT n] is lost, and its first data adopts the socket. No heap for a read:
    the read waits. The driver goes on either way."""

    async def main():
        module = Module()
        engine, events = engine_with(module, rings=2)
        module.replies[b"AT"] = b"[OK]\r\n"
        with NoHeapFor("Socket"):
            module.uart.emit(b"\r\n[CONNECT 3]\r\n")
            await settle()
        eq((engine.table[3], dict(engine.counts())["no_memory"], len(engine.rings)), (None, 1, 1))
        rx = engine.parser.rx
        rx.space = NoHeapFor._fail  # the next read finds no heap for its memoryview
        module.uart.emit(b"{3,10.0.0.2,5000,2}hi\r\n")
        await settle()
        del rx.space
        await asyncio.sleep(0.05)  # the reader's wait after a failed read
        sock = engine.table[3]
        eq((sock.kind, sock.rx.read(), events, len(engine.rings)), (ACCEPTED, b"hi", [(P.CONNECT, 3)], 0))
        assert engine.counters["no_memory_reads"] >= 1
        eq(await engine.command(b"AT"), [])
        engine.stop()

    run(main())


def test_a_connection_whose_request_found_no_heap_is_closed_once_there_is_heap():
    """Seen at a 152K heap: a [CONNECT n] and its request's frame both found no heap for a
    Socket. The frame was dropped, the module kept the connection, and its client waited
    30 s for an answer nobody would send. One whose client gives up first is let be."""

    async def main():
        module = Module()
        engine, events = engine_with(module, rings=2)
        module.replies[b"AT+SMGMT=3"] = b"[OK]\r\n\r\n[DISCONNECT 3]\r\n"
        with NoHeapFor("Socket"):
            module.uart.emit(b"\r\n[CONNECT 3]\r\n{3,10.0.0.2,5000,2}hi\r\n\r\n[CONNECT 4]\r\n{4,10.0.0.2,5001,2}ho\r\n")
            await asyncio.sleep(0.25)  # ticks pass, and find no heap to close them with
            eq((module.commands, engine.table[3], engine._orphans), ([], None, 0b11000))
            module.uart.emit(b"\r\n[DISCONNECT 4]\r\n")  # 4's client gives up
            await settle()
        await asyncio.sleep(0.25)  # heap again: the next tick closes 3
        counts = dict(engine.counts())
        eq((module.commands, engine.table[3], engine._orphans, events), ([b"AT+SMGMT=3"], None, 0, []))
        eq((counts["stray"], counts["no_memory"]), (0, 4))
        engine.stop()

    run(main())


def test_a_connection_with_no_heap_for_its_socket_gets_the_heap_of_a_spare_ring():
    # The spare ring went with the failed Socket, and the connection was lost, or
    # adopted from its first frame if that found heap: in soaks at 128K, one request
    # in 10,000 hung 30 s when it did not.
    async def main():
        module = Module()
        engine, events = engine_with(module, rings=2)
        with NoHeapFor("Socket", times=1):  # the ring let go leaves room
            module.uart.emit(b"\r\n[CONNECT 3]\r\n{3,10.0.0.2,5000,2}hi\r\n")
            await settle()
        sock = engine.table[3]
        counts = dict(engine.counts())
        eq((sock.rx.read(), events, counts["no_memory"], counts["adopted"]), (b"hi", [(P.CONNECT, 3)], 0, 0))
        eq(len(engine.rings), 0)  # one let go, one taken
        engine.stop()

    run(main())


def test_no_heap_to_wait_for_an_ssend_prompt_never_leaves_the_module_waiting_for_payload():
    # The command was out when the wait for its prompt found no heap: the send failed
    # there, the module took the next command as its payload and sent it to the peer.
    # (On MicroPython the wait allocates nothing; elsewhere it is Event.wait's coroutine.
    # Its failure is made here on both.)
    async def main():
        module = Module()
        engine, _ = engine_with(module)
        sock = engine._new_socket(2, TCP)
        module.replies[b"AT+SSEND"] = lambda cmd: b"[2,,,%s]\r\n" % cmd.split(b",")[3]
        starved = NoHeapFor("wait", engine._moved, times=1)
        with starved:
            await engine.ssend(sock, b"hello")
        await engine.ssend(sock, b"again")
        eq((module.commands, module.payloads), ([b"AT+SSEND=2,,,5", b"AT+SSEND=2,,,5"], [b"hello", b"again"]))
        eq(starved.times, 0)
        engine.stop()

    run(main())


def test_a_command_that_finds_no_heap_as_it_lets_go_of_the_uart_leaves_it_to_the_next():
    # ``async with`` on the engine's lock makes a coroutine of ``__aexit__`` on the way
    # out: with no heap for it the lock stayed taken, and every command after waited
    # for it for good (the firmware served nothing more).
    async def main():
        module = Module()
        engine, _ = engine_with(module)
        module.replies[b"AT"] = b"[OK]\r\n"
        with NoHeapFor("__aexit__", type(engine._lock), times=1):
            eq(await engine.command(b"AT"), [])
        eq(await asyncio.wait_for(engine.command(b"AT"), 2), [])
        engine.stop()

    run(main())


def test_a_late_answer_to_a_timed_out_command_is_not_taken_by_the_next_ones():
    # The module answers one command at a time, so a command that outlasted its timeout
    # is answered later, ahead of the resync AT. That [OK] ended the AT, and the AT's own
    # [OK] the next command: a list came back empty, and an SSEND ended before its
    # prompt, "sent" with nothing sent, while the module took the next command as payload.
    async def main():
        module = Module()
        engine, _ = engine_with(module)
        sock = engine._new_socket(0, TCP)
        held = []  # answers to commands sent while the module was still busy

        async def finish():
            await asyncio.sleep(0.08)  # the slow command ends after its timeout
            module.uart.emit(b"[OK]\r\n")
            while held:
                await asyncio.sleep(0.01)
                module.uart.emit(held.pop(0))
            held.append(None)  # not busy any more

        def slow(cmd):
            del held[:]
            asyncio.create_task(finish())
            return b""

        def answer(text):
            def reply(cmd):
                if held and held[-1] is None:
                    return text
                held.append(text)  # the module is still on the slow one
                return b""

            return reply

        module.replies[b"AT+WJOIN"] = slow
        module.replies[b"AT"] = answer(b"[OK]\r\n")
        rows = b"Number of Sockets : 1 (SCID/Mode/Remote/Local/DataMode)\r\n0/TCN/10.0.0.2:80/30412/0\r\n"
        module.replies[b"AT+SMGMT=?"] = answer(rows + b"[OK]\r\n")
        module.replies[b"AT+SSEND="] = answer(b"[0,,,5]\r\n")
        await fails(engine.command(b"AT+WJOIN", timeout_ms=50), 110)
        eq(len(await engine.command(b"AT+SMGMT=?")), 2)
        await fails(engine.command(b"AT+WJOIN", timeout_ms=50), 110)
        await engine.ssend(sock, b"hello")
        eq(module.payloads, [b"hello"])
        eq(module.commands, [b"AT+WJOIN", b"AT", b"AT+SMGMT=?", b"AT+WJOIN", b"AT", b"AT+SSEND=0,,,5"])
        engine.stop()

    run(main())


def test_an_ok_before_the_prompt_is_not_the_ssends():
    # Later than the quiet wait after a resync, a late [OK] can still land on an SSEND;
    # the module never answers one [OK] before its prompt, so it is a stray.
    async def main():
        module = Module()
        engine, _ = engine_with(module)
        module.replies[b"AT+SSEND="] = b"[OK]\r\n[0,,,5]\r\n"
        await engine.ssend(engine._new_socket(0, TCP), b"hello")
        eq((module.payloads, engine.counters["stray"]), ([b"hello"], 1))
        engine.stop()

    run(main())

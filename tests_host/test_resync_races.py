"""resync_table against the races a fuzzer found (hypothesis models of the module, the
last of them test_fuzz_resync.py): each test is one of their findings, shrunk by hand, and
failed on the driver before the fix. CPython only: one takes 10 s (a send's timeout)."""

import asyncio

from cases_resync import _ROWS, _SERVING, _done, _server_after
from fakenet import net_with
from fakeuart import Module, eq, run
from smgmt import listing
from wizfi250.sockets import ACCEPTED, TCP


def test_resync_a_frame_for_an_orphan_waiting_for_its_close_does_not_kill_the_reader():
    # resync_table puts each orphan in the table as a Socket without a ring, but only
    # close_socket marks it closing, one orphan after the other. A datagram for the second
    # orphan while the first one's SMGMT is on the wire went to its ring, None: the reader
    # died of an AttributeError, and with it every socket and command (fuzz: reader died).
    async def main():
        module = Module()
        _, engine, accepted, held = await _server_after(module, _SERVING)
        module.replies[b"AT+SMGMT=?"] = listing(_ROWS + (b"2/TCN/10.0.0.7:5000/30001/0", b"3/USN/0.0.0.0:0/7000/0"))
        module.replies[b"AT+SMGMT=2"] = b"{3,10.0.0.5,9999,4}ping\r\n[OK]\r\n\r\n[DISCONNECT 2]\r\n"
        await asyncio.wait_for(engine.resync_table(), 3)
        await asyncio.sleep(0.02)
        alive = engine._task is not None
        closes = [c for c in module.commands if c.startswith(b"AT+SMGMT")]
        await _done(engine, held)
        eq((alive, closes), (True, [b"AT+SMGMT=?", b"AT+SMGMT=2", b"AT+SMGMT=3"]))

    run(main())


def test_resync_keeps_a_browser_whose_row_an_event_split():
    # The firmware prints a row in several calls (F-CMDS WXCmd_SMGMT; reference 5.5, 9.1):
    # an event can land between them. The row then reaches the driver as two lines, neither
    # a row: the browser on 0 counted as not listed, was ended (its reader got 104), and its
    # next request was adopted and served a second time (fuzz: inv1, inv2).
    async def main():
        module = Module()
        _, engine, accepted, held = await _server_after(module, _SERVING)
        client = engine._new_socket(2, TCP)  # our client: its peer leaves while row 0 is printed
        module.replies[b"AT+SMGMT=?"] = (
            b"Number of Sockets : 3 (SCID/Mode/Remote/Local/DataMode)\r\n"
            b"0/TSN/10.0.0.9:\r\n[DISCONNECT 2]\r\n40000/80/0\r\n"
            b"1/TSN/0.0.0.0:0/80/0\r\n[OK]\r\n"
        )
        browser = engine.table[0]
        await engine.resync_table()
        module.uart.emit(b"{0,10.0.0.9,40000,3}GET\r\n")
        await asyncio.sleep(0.02)
        state = (engine.table[0] is browser, browser.open, browser.error, client.open)
        await _done(engine, held)
        eq(state, (True, True, 0, False))

    run(main())


def test_resync_closes_an_orphan_whose_datagram_came_while_the_list_printed():
    # A datagram for an orphan UDP socket adopts it as a browser ("data proves the socket
    # is open") and marks its id touched, so resync_table leaves it alone: it is never
    # closed, and the HTTP server reads its datagrams. A frame changes no state on the
    # module: the row (USN) still holds, and says close it (fuzz: inv3, frame-touched).
    async def main():
        module = Module()
        _, engine, accepted, held = await _server_after(module, _SERVING)
        module.replies[b"AT+SMGMT=?"] = listing(_ROWS + (b"3/USN/0.0.0.0:0/7000/0",), b"{3,10.0.0.5,9999,4}ping\r\n")
        await engine.resync_table()
        await asyncio.sleep(0.02)
        closes = [c for c in module.commands if c.startswith(b"AT+SMGMT")]
        await _done(engine, held)
        eq(closes, [b"AT+SMGMT=?", b"AT+SMGMT=3"])

    run(main())


def test_resync_closes_an_orphan_under_a_listener_guessed_on_its_id():
    # The driver restarted alone: the module still has a UDP socket (0) and the listener
    # (1) of the earlier run. start_server's SCON fails to listen twice on port 80: [OK],
    # then [DISCONNECT 2] and no [LISTEN n] (reference 5.2, listen error in F-SOCK), so
    # open_socket guesses its listener on the lowest free id in its table: 0. resync_table
    # then finds a table socket on row 0 (USN) that is neither None nor ACCEPTED and keeps
    # it; adopting the listener on 1 then drops the guess, and the orphan is never closed:
    # its next datagram is served as a browser (fuzz: inv3 orphan not closed).
    async def main():
        module = Module()
        net, engine = net_with(module, idle_ms=0)
        module.replies[b"AT+SCON=O,TSN"] = b"[OK]\r\n\r\n[DISCONNECT 2]\r\n"
        served = []

        async def handler(reader, writer):
            served.append(await reader.read(10))
            await writer.aclose()

        await net.start_server(handler, 80)
        module.replies[b"AT+SMGMT=?"] = listing((b"0/USN/0.0.0.0:0/7000/0", b"1/TSN/0.0.0.0:0/80/0"))
        await engine.resync_table()
        await asyncio.sleep(0.02)
        closes = [c for c in module.commands if c.startswith(b"AT+SMGMT")]
        state = (engine.listener() and engine.listener().sid, engine.table[0], served)
        engine.stop()
        await asyncio.sleep(0.02)
        eq((closes, state), ([b"AT+SMGMT=?", b"AT+SMGMT=0"], (1, None, [])))

    run(main())


def test_resync_replaces_a_stale_socket_on_an_id_the_module_reused():
    # resync_table ends a table socket the module no longer lists, but the module reuses the
    # lowest free id at once: a client whose [DISCONNECT 1] was lost still holds id 1 when
    # the relisten lands there ([LISTEN 1] finds it taken) and a browser connects on it
    # ([CONNECT 1]: "already open", stray). The list says 1/TSN with a peer; resync keeps
    # the stale client (it only adopts a TSN row on an empty id), and the browser's request
    # goes into the client's ring (fuzz: stale, inv2/inv3).
    async def main():
        module = Module()
        net, engine = net_with(module, idle_ms=0)
        accepted = []

        async def handler(reader, writer):
            accepted.append((writer.sock.sid, await reader.read(10)))
            await writer.aclose()

        await net.start_server(handler, 80)  # listener on 0
        client = engine._new_socket(1, TCP)  # the module has freed 1; its [DISCONNECT 1] was lost
        module.replies[b"AT+SCON=O,TSN"] = b"\r\n[LISTEN 1]\r\n[OK]\r\n"  # the relisten, on the lowest free id
        module.uart.emit(b"\r\n[CONNECT 0]\r\n")
        await asyncio.sleep(0.02)
        module.uart.emit(b"\r\n[CONNECT 1]\r\n")  # a second browser, on the new listener
        await asyncio.sleep(0.02)
        module.replies[b"AT+SMGMT=?"] = listing((b"0/TSN/10.0.0.4:40000/80/0", b"1/TSN/10.0.0.5:40001/80/0"))
        await engine.resync_table()
        module.uart.emit(b"{1,10.0.0.5,40001,3}GET\r\n")
        await asyncio.sleep(0.05)
        state = (client.open, client.rx.read(), sorted(accepted))
        engine.stop()
        await asyncio.sleep(0.02)
        eq(state, (False, b"", [(1, b"GET")]))

    run(main())


def test_a_close_after_a_timeout_does_not_close_the_browser_that_got_the_orphans_id():
    # close_socket checks that the orphan still holds its id, then _run first sends the AT
    # (and waits 100 ms) that a timeout asks for. Meanwhile the orphan left and a browser
    # got its id: the driver saw it, yet SMGMT=2 went out and closed the browser. Here the
    # timeout is a competing SSEND's, waiting behind the list: the module may try a TCP
    # send 3 x 5 s (reference 4.4); the driver gives up 10 s after the payload. Takes 10 s.
    async def main():
        module = Module()
        _, engine, accepted, held = await _server_after(module, _SERVING)
        rows = _ROWS + (b"2/TCN/10.0.0.7:5000/30001/0",)
        sends = []

        async def send():
            try:
                await engine.ssend(engine.table[0], b"hi")
            except OSError as e:
                sends.append(e.args[0])

        def reply(cmd):
            asyncio.create_task(send())
            return listing(rows)

        module.replies[b"AT+SMGMT=?"] = reply
        module.after_payload = b""  # the module is still trying to send
        # The SSEND's late end, the AT's [OK], then the orphan leaves, a browser takes the
        # listener on 1, the module relistens on 2 and a browser takes that too.
        module.replies[b"AT"] = (
            b"\r\n[TCP Send Error]\r\n[OK]\r\n\r\n[DISCONNECT 2]\r\n\r\n[CONNECT 1]\r\n"
            b"\r\n[LISTEN 2]\r\n\r\n[CONNECT 2]\r\n"
        )
        await asyncio.wait_for(engine.resync_table(), 15)
        module.after_payload = b"[OK]\r\n"
        await asyncio.sleep(0.05)
        browser = engine.table[2]
        state = (sends, b"AT+SMGMT=2" in module.commands, browser is not None and browser.kind == ACCEPTED and browser.open)
        await _done(engine, held)
        eq(state, ([110], False, True))

    run(main())


def test_a_listen_on_an_id_a_stale_socket_holds_replaces_it():
    # The client on 7 ended unseen and the module relistened there: [LISTEN 7] left the
    # stale client in place and no listener in the table.
    async def main():
        module = Module()
        _, engine, _, held = await _server_after(module, _SERVING)
        client = engine._new_socket(7, TCP)
        module.uart.emit(b"\r\n[LISTEN 7]\r\n")
        await asyncio.sleep(0.02)
        state = (client.open, client.error, engine.listener() and engine.listener().sid)
        await _done(engine, held)
        eq(state, (False, 104, 7))

    run(main())


def test_resync_does_not_adopt_an_unknown_browser_that_left_while_the_list_printed():
    # Its [CONNECT 2] was missed and its row printed, then it left: [DISCONNECT 2] found
    # nothing to end, and the row adopted a connection the module no longer had.
    async def main():
        module = Module()
        _, engine, accepted, held = await _server_after(module, _SERVING)
        module.replies[b"AT+SMGMT=?"] = listing(_ROWS + (b"2/TSN/10.0.0.8:40002/80/0",), b"\r\n[DISCONNECT 2]\r\n")
        await engine.resync_table()
        await asyncio.sleep(0.02)
        state = (engine.table[2], list(accepted))
        await _done(engine, held)
        eq(state, (None, [0]))

    run(main())


def test_resync_gives_a_browser_on_a_stale_browsers_id_a_socket_of_its_own():
    # Browser A on 0 left, its [DISCONNECT 0] lost; B took the listener on 1, and the
    # [LISTEN 0] of the relisten was lost too (the table guesses 2). While the list prints,
    # C takes the listener on 0: [CONNECT 0] found A's socket open and was dropped as
    # stray, untouched, for the row to replace A's socket. But the row says "a browser on
    # 0", which A's socket is: it was kept, C was never accepted, and C's request went to
    # A's handler (test_fuzz_resync.py: "not ended"). A [CONNECT n] now ends what held n.
    async def main():
        module = Module()
        _, engine, accepted, held = await _server_after(module, _SERVING)  # A on 0, listener on 1
        a = engine.table[0]
        module.replies[b"AT+SCON=O,TSN"] = b"[OK]\r\n"
        module.uart.emit(b"\r\n[CONNECT 1]\r\n")  # B
        await asyncio.sleep(0.02)
        module.replies[b"AT+SMGMT=?"] = (
            b"Number of Sockets : 2 (SCID/Mode/Remote/Local/DataMode)\r\n"
            b"\r\n[CONNECT 0]\r\n0/TSN/10.0.0.8:40002/80/0\r\n1/TSN/10.0.0.7:40001/80/0\r\n[OK]\r\n"
        )
        await engine.resync_table()
        module.uart.emit(b"{0,10.0.0.8,40002,3}GET\r\n")
        await asyncio.sleep(0.02)
        state = (a.open, engine.table[0] is a, sorted(accepted))
        await _done(engine, held)
        eq(state, (False, False, [0, 0, 1, 104]))

    run(main())

"""The supervisor's resync of the socket table (``AT+SMGMT=?``) while browsers, clients
and UDP sockets come and go, against a scripted module; CPython and MicroPython."""

import asyncio

from fakenet import net_with
from fakeuart import Module, eq, fails, run, settle
from smgmt import listing
from wizfi250.compat import ticks_ms
from wizfi250.sockets import ACCEPTED, LISTENER, TCP
from wizfi250.supervisor import Supervisor
from wizfi250.wifi import WiFi


_SERVING = b"\r\n[CONNECT 0]\r\n\r\n[LISTEN 1]\r\n"  # a browser on 0, the listener moved to 1
_ROWS = (b"0/TSN/10.0.0.9:40000/80/0", b"1/TSN/0.0.0.0:0/80/0")  # their rows in AT+SMGMT=?


async def _server_after(module, events):
    """A server whose handlers note their socket id and the errno a read ends in, then
    wait for ``held``, once the module has printed ``events``: for the resync tests."""
    net, engine = net_with(module, idle_ms=0)
    accepted = []
    held = asyncio.Event()

    async def handler(reader, writer):
        accepted.append(writer.sock.sid)
        try:
            await reader.read(10)
        except OSError as e:
            accepted.append(e.args[0])
        await held.wait()
        await writer.aclose()

    await net.start_server(handler, 80)
    module.uart.emit(events)
    await asyncio.sleep(0.02)
    return net, engine, accepted, held


async def _done(engine, held):
    """Let the handlers end, the one still reading too (stopping the driver ends its read):
    under MicroPython a task left waiting runs on in the next test, with its heap."""
    held.set()
    engine.stop()
    await asyncio.sleep(0.05)


def test_resync_table_keeps_the_listener_a_connection_moved_after_the_list():
    # AT+SMGMT=? lists the sockets as they were when the list was printed. A client that
    # connected between the rows and the [OK] moved the listener ([CONNECT 1], [LISTEN 2]):
    # resync_table then ended the listener on 2, not in the list (fuzz round 3).
    async def main():
        module = Module()
        _, engine, _, held = await _server_after(module, _SERVING)
        eq(engine.listener().sid, 1)
        module.replies[b"AT+SMGMT=?"] = listing(
            _ROWS,
            b"\r\n[CONNECT 1]\r\n\r\n[LISTEN 2]\r\n",  # right after the list was printed
        )
        await engine.resync_table()
        eq((engine.table[1] is not None, engine.listener() and engine.listener().sid), (True, 2))
        await _done(engine, held)

    run(main())


def test_resync_table_does_not_adopt_a_connection_that_ended_after_the_list():
    # The converse: listed, then [DISCONNECT 0] before the [OK]: resync adopted a
    # connection the module no longer had, and handed it to the server a second time.
    async def main():
        module = Module()
        _, engine, accepted, held = await _server_after(module, _SERVING)
        module.replies[b"AT+SMGMT=?"] = listing(
            _ROWS,
            b"\r\n[DISCONNECT 0]\r\n",  # the client left after the list was printed
        )
        await engine.resync_table()
        await asyncio.sleep(0.02)
        eq((engine.table[0], accepted), (None, [0]))
        await _done(engine, held)

    run(main())


def test_resync_table_ends_nothing_when_a_row_is_left_in_pieces():
    # A row's first piece, then a line that does not continue it (a late answer, a lost
    # byte): neither is a row, and the rows after them glue on. Which ids the list names
    # is then unknown, so none is ended: the browser and the listener stay as they are.
    async def main():
        module = Module()
        _, engine, accepted, held = await _server_after(module, _SERVING)
        browser, listener = engine.table[0], engine.table[1]
        module.replies[b"AT+SMGMT=?"] = listing((b"0/TSN/10.0.0.9:", b"7.5.2") + _ROWS)
        await engine.resync_table()
        closes = [c for c in module.commands if c.startswith(b"AT+SMGMT=") and c != b"AT+SMGMT=?"]
        state = (engine.table[0] is browser, browser.open, engine.table[1] is listener, closes)
        await _done(engine, held)
        eq(state, (True, True, True, []))

    run(main())


def test_resync_table_reads_the_rows_around_a_late_answer():
    # A command's late answer (an FDNS address) comes before the list, and another between
    # its rows: neither is a row, nor the start of one. Glued to the rows after it, it hid
    # them all, and a connection whose end was missed stayed open for good.
    async def main():
        module = Module()
        _, engine, accepted, held = await _server_after(module, _SERVING + b"\r\n[CONNECT 2]\r\n")
        browser, listener, missed = engine.table[0], engine.table[1], engine.table[2]
        module.replies[b"AT+SMGMT=?"] = b"10.0.0.5\r\n" + listing((_ROWS[0], b"10.0.0.6", _ROWS[1]))
        await engine.resync_table()
        state = (engine.table[0] is browser, browser.open, engine.table[1] is listener, engine.table[2], missed.open)
        await _done(engine, held)
        eq(state, (True, True, True, None, False))

    run(main())


def test_resync_table_closes_client_and_udp_sockets_that_nobody_opened():
    # A client whose SCON timed out before its [CONNECT 2], taken by the server as a
    # browser, and a UDP socket of an earlier run: both were adopted, and nobody would
    # ever read them while they held two of the module's eight ids.
    async def main():
        module = Module()
        events = _SERVING + b"\r\n[CONNECT 2]\r\n"
        _, engine, accepted, held = await _server_after(module, events)
        module.replies[b"AT+SMGMT=?"] = listing(
            _ROWS + (b"2/TCN/10.0.0.7:5000/30001/0", b"3/USN/0.0.0.0:0/7000/0")
        )
        await engine.resync_table()
        await asyncio.sleep(0.02)
        eq(accepted, [0, 2, 104])  # the late client's reader is told, not left waiting
        eq([c for c in module.commands if c.startswith(b"AT+SMGMT")], [b"AT+SMGMT=?", b"AT+SMGMT=2", b"AT+SMGMT=3"])
        eq((engine.table[0].kind, engine.table[1].kind, engine.table[2], engine.table[3]), (ACCEPTED, LISTENER, None, None))
        await _done(engine, held)

    run(main())


def _listing_while_sending(engine, rows):
    """An AT+SMGMT=? answer that sets another socket's SSEND waiting for the lock: the
    closes that follow the list wait behind it, with what the module sends meanwhile."""

    def reply(cmd):
        asyncio.create_task(engine.ssend(engine.table[0], b"hi"))
        return listing(rows)

    return reply


def test_resync_does_not_close_a_browser_that_got_an_orphans_id_while_the_close_waited():
    # The orphan left and a browser got its id while the close waited behind an SSEND:
    # the close went out anyway and ended the browser's connection (found by review).
    async def main():
        module = Module()
        events = _SERVING + b"\r\n[CONNECT 2]\r\n"  # 2: a late client
        _, engine, accepted, held = await _server_after(module, events)
        rows = _ROWS + (b"2/TCN/10.0.0.7:5000/30001/0",)
        module.replies[b"AT+SMGMT=?"] = _listing_while_sending(engine, rows)
        module.after_payload = b"\r\n[DISCONNECT 2]\r\n\r\n[CONNECT 2]\r\n[OK]\r\n"
        await engine.resync_table()
        module.after_payload = b"[OK]\r\n"
        await asyncio.sleep(0.05)
        eq([c for c in module.commands if c.startswith(b"AT+SMGMT")], [b"AT+SMGMT=?"])
        eq((engine.table[2] is not None and engine.table[2].kind, accepted[-1]), (ACCEPTED, 2))
        await _done(engine, held)

    run(main())


def test_resync_drops_what_comes_for_an_orphan_while_its_close_waits():
    # Out of the table before its close, the orphan's datagram was taken for a browser.
    async def main():
        module = Module()
        _, engine, accepted, held = await _server_after(module, _SERVING)
        rows = _ROWS + (b"3/USN/0.0.0.0:0/7000/0",)
        module.replies[b"AT+SMGMT=?"] = _listing_while_sending(engine, rows)
        module.after_payload = b"\r\n{3,10.0.0.5,9999,4}ping\r\n[OK]\r\n"  # a datagram for the orphan
        await engine.resync_table()
        module.after_payload = b"[OK]\r\n"
        await asyncio.sleep(0.05)
        eq((module.commands[-1], accepted, engine.table[3], engine.counters["discarded"]), (b"AT+SMGMT=3", [0], None, 4))
        await _done(engine, held)

    run(main())


def test_a_timeout_while_the_probes_resync_waits_gets_a_resync_of_its_own():
    # The probe counted the timeouts after its resync: a client's SCON that timed out while
    # the resync waited for the lock passed as looked at, and when its [CONNECT 2] came
    # late, the server kept it as a browser for good (found by review).
    async def main():
        module = Module()
        net, engine, accepted, held = await _server_after(module, _SERVING)
        module.replies[b"AT"] = b"[OK]\r\n"
        module.replies[b"AT+SCON=O,TCN"] = b""  # no answer: the SCON times out
        module.replies[b"AT+SMGMT=?"] = listing(_ROWS)
        supervisor = Supervisor(net, WiFi(engine), None)
        engine.counters["timeouts"] += 1  # an earlier one: the next probe looks
        scon = asyncio.create_task(fails(engine.open_socket(TCP, "10.0.0.7", 5000, timeout_ms=100), 110))
        await settle()  # the SCON holds the lock
        engine.last_rx = ticks_ms()  # a busy UART: no silence to probe
        await supervisor._probe()  # its resync waits for the SCON, which times out meanwhile
        await scon  # its timeout came while nobody awaited it: checked inside the task
        module.uart.emit(b"\r\n[CONNECT 2]\r\n")  # the client's, late: taken for a browser
        await asyncio.sleep(0.02)
        module.replies[b"AT+SMGMT=?"] = listing(_ROWS + (b"2/TCN/10.0.0.7:5000/30001/0",))
        engine.last_rx = ticks_ms()
        await supervisor._probe()
        eq((module.commands[-1], accepted), (b"AT+SMGMT=2", [0, 2, 104]))
        await _done(engine, held)

    run(main())

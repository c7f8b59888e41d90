"""AT engine tests against a scripted module on a fake UART; CPython and MicroPython.

Collected by ``test_core.py`` for pytest, run by ``mp_runner.py`` under the
MicroPython unix port. The first test is the failure the users hit.
"""


import asyncio

from check import errors
from fakeuart import FakeUART, Module, engine_with, eq, fails, run, settle
from wizfi250 import parser as P
from wizfi250.compat import ticks_diff, ticks_ms
from wizfi250.sockets import ACCEPTED, ECONNRESET, LISTENER, TCP, UDP

CUTS = (lambda n: 1, lambda n: 2, lambda n: 3, lambda n: 7, lambda n: n)


def read_all(sock):
    return sock.rx.read()


def test_ssend_survives_events_and_frames_for_other_sockets():
    """The users' failure: everything arriving during SSEND is delivered exactly once, in order."""

    async def main(cut):
        module = Module(cut)
        engine, events = engine_with(module)
        s0 = engine._new_socket(0, TCP)
        s2 = engine._new_socket(2, ACCEPTED)
        module.replies[b"AT+SSEND=0,,,5"] = (
            b"\r\n[CONNECT 1]\r\n[0,,,5" + b"{2,10.0.0.3,6000,7}x[OK]\r\n\r\n" + b"]\r\n"
        )
        module.after_payload = (
            b"{1,10.0.0.2,5001,3}hi{\r\n\r\n[DISCONNECT 2]\r\n{0,10.0.0.9,80,4}echo\r\n[OK]\r\n"
        )
        await engine.ssend(s0, b"hello")
        eq(module.payloads, [b"hello"])
        eq(events, [(P.CONNECT, 1), (P.DISCONNECT, 2)])
        eq(read_all(s0), b"echo")
        eq(read_all(s2), b"x[OK]\r\n")
        assert not s2.open and s0.open
        eq(read_all(engine.table[1]), b"hi{")
        eq(engine.table[1].kind, ACCEPTED)
        eq(engine.counters["stray"], 0)
        engine.stop()

    for cut in CUTS:
        run(main(cut))


def test_event_between_prompt_halves_does_not_end_ssend():
    async def main():
        module = Module(lambda n: 1)
        engine, events = engine_with(module)
        sock = engine._new_socket(0, TCP)
        module.replies[b"AT+SSEND"] = b"[0,,,3\r\n[DISCONNECT 0]\r\n]\r\n"
        module.after_payload = b"[OK]\r\n"
        await engine.ssend(sock, b"abc")  # the socket closed, but this send was accepted
        eq(events, [(P.DISCONNECT, 0)])
        engine.stop()

    run(main())


def test_rejected_ssend_never_sends_the_payload():
    async def main():
        module = Module()
        engine, _ = engine_with(module)
        module.replies[b"AT+SSEND"] = b"[ERROR: INVALID INPUT]\r\n"
        await fails(engine.ssend(engine._new_socket(5, TCP), b"secret"), 104)
        eq(module.payloads, [])
        eq(bytes(module.uart.written), b"AT+SSEND=5,,,6\r")
        engine.stop()

    run(main())


def test_tcp_send_error_is_the_final_line_of_ssend():
    async def main():
        module = Module()
        engine, events = engine_with(module)
        sock = engine._new_socket(0, TCP)
        module.replies[b"AT+SSEND"] = b"[0,,,2]\r\n"
        module.after_payload = b"\r\n[TCP Send Error]\r\n"
        await fails(engine.ssend(sock, b"hi"), 5)
        eq(engine.counters["send_errors"], 1)
        eq(events, [])
        engine.stop()

    run(main())


def test_scon_connect_before_and_after_ok_and_failed_connect():
    async def main():
        module = Module()
        engine, events = engine_with(module)
        module.replies[b"AT+SCON=O,UCN"] = b"\r\n[CONNECT 0]\r\n[OK]\r\n"
        module.replies[b"AT+SCON=O,TCN,10.0.0.2"] = b"[OK]\r\n\r\n[LISTEN 1]\r\n{0,10.0.0.5,9,2}ud\r\n\r\n[CONNECT 2]\r\n"
        module.replies[b"AT+SCON=O,TCN,10.0.0.9"] = b"[OK]\r\n\r\n[DISCONNECT 3]\r\n"
        udp = await engine.open_socket(UDP, "10.0.0.5", 9)
        eq((udp.sid, udp.kind), (0, UDP))
        engine.server_port = 80
        tcp = await engine.open_socket(TCP, "10.0.0.2", 5000)
        eq((tcp.sid, tcp.kind), (2, TCP))
        eq(engine.table[1].kind, LISTENER)
        eq(udp.datagrams, [(2, ("10.0.0.5", 9))])
        await fails(engine.open_socket(TCP, "10.0.0.9", 1), 111)
        eq(events, [(P.LISTEN, 1)])  # the clients' own events are the commands' results
        engine.stop()

    run(main())


def test_events_during_a_command_wait_for_its_end():
    async def main():
        module = Module()
        engine, events = engine_with(module)
        module.replies[b"AT+WSTAT"] = (
            b"IF/SSID/IP-Addr/Gateway/MAC/TxPower(dBm)/RSSI(-dBm)\r\n\r\n[CONNECT 4]\r\n"
            b"STA/MyAP/10.0.0.5/10.0.0.1/00:08:DC:11:22:33/31/45\r\n\r\n[DISCONNECT 4]\r\n[OK]\r\n"
        )
        seen = []
        engine.on_event = lambda kind, arg: seen.append((kind, arg, engine.tx is None))
        lines = await engine.command(b"AT+WSTAT")
        eq(len(lines), 2)
        eq(seen, [(P.CONNECT, 4, True), (P.DISCONNECT, 4, True)])
        engine.stop()

    run(main())


def test_timeout_raises_and_resyncs_before_the_next_command():
    async def main():
        module = Module()
        engine, _ = engine_with(module)
        module.replies[b"AT+MINFO"] = b""  # the module says nothing
        await fails(engine.command(b"AT+MINFO", timeout_ms=50), 110)
        module.replies[b"AT"] = b"[OK]\r\n"
        await engine.command(b"AT+MECHO=0")
        eq(module.commands[-2:], [b"AT", b"AT+MECHO=0"])
        engine.stop()

    run(main())


def test_a_prompt_after_its_ssend_timed_out_gets_no_command_as_payload():
    """The module reads everything after an accepted SSEND as its payload, however late
    the prompt: a resync AT written then would reach the peer. Nothing goes out until
    that SSEND ends; the command in flight when the prompt came fails at once."""

    async def main():
        module = Module()
        engine, _ = engine_with(module, stall_ms=0)  # the prompt is awaited 2 s
        sock = engine._new_socket(0, TCP)
        module.replies[b"AT+SSEND"] = b""  # busy: the prompt comes later
        module.replies[b"AT"] = b""  # nor does the module answer while it waits for payload
        await fails(engine.ssend(sock, b"hello"), 110)
        module.expect = 0  # the test says when the module reads payload

        command = asyncio.create_task(engine.command(b"AT+MINFO"))
        await asyncio.sleep(0.05)
        eq(module.commands[-1], b"AT")  # the resync, with no prompt seen yet
        module.expect = 5
        module.uart.emit(b"[0,,,5]\r\n")  # the late prompt: that AT went as payload
        await fails(command, 5)
        eq(engine.counters["stray"], 1)

        written = len(module.uart.written)
        command = asyncio.create_task(engine.command(b"AT+MINFO"))
        await asyncio.sleep(0.1)
        eq(len(module.uart.written), written)  # waits for the late SSEND's end
        module.expect = 0
        module.replies[b"AT"] = b"[OK]\r\n"
        module.uart.emit(b"[ERROR]\r\n")  # its payload timed out on the module (reference 4.5)
        eq(await command, [])
        eq(module.commands[-2:], [b"AT", b"AT+MINFO"])
        eq(module.payloads, [])  # nothing written while the module read payload
        eq(engine.counters["stray"], 2)  # the prompt and its SSEND's [ERROR]
        engine.stop()

    run(main())


def test_line_noise_that_is_not_utf8_still_gives_callers_an_oserror_or_their_answer():
    # A byte of noise made MicroPython's decode raise UnicodeError where callers catch
    # OSError: the supervisor's probe (resync_table) died of one, and recovery with it.
    async def main():
        module = Module()
        engine, _ = engine_with(module)
        module.replies[b"AT+MINFO"] = b"[ERROR\xff]\r\n"
        await fails(engine.command(b"AT+MINFO"), 5)
        module.replies[b"AT+SMGMT=?"] = (  # written out: this module runs in 80K under MicroPython
            b"Number of Sockets : 1 (SCID/Mode/Remote/Local/DataMode)\r\n\xfe\xff\r\n0/TSN/10.0.0.2:40000/80/0\r\n[OK]\r\n"
        )
        gone = engine._new_socket(3, TCP)
        await engine.resync_table()
        engine.stop()
        eq((gone.open, engine.table[0].kind), (False, ACCEPTED))

    run(main())


def test_init_with_echo_on_turns_it_off_and_enables_what_the_driver_needs():
    async def main():
        module = Module()
        engine, events = engine_with(module)
        echo = [True]

        def reply(cmd):
            out = cmd + b"\r\n" if echo[0] else b""
            if cmd == b"AT+MECHO=0":
                echo[0] = False
            return out + b"[OK]\r\n"

        module.replies[b"AT"] = reply
        await engine.init()
        eq(module.commands, [b"AT", b"AT+MECHO=0", b"AT+MMSG=2", b"AT+MEVTMSG=1", b"AT+FSOCK=9,1"])
        eq(engine.counters["stray"], 0)
        engine.stop()

    run(main())


def test_a_transport_that_can_read_without_waiting_is_read_that_way():
    """``readinto_now`` first: while the module streams, no coroutine per UART read."""

    class NowUART(FakeUART):
        now = 0

        def readinto_now(self, buf):
            if not self.out:
                return None  # as machine.UART(timeout=0) says "nothing yet"
            self.now += 1
            chunk = self.out.pop(0)
            buf[: len(chunk)] = chunk
            return len(chunk)

    async def main():
        module = Module()
        module.uart = uart = NowUART()
        engine, _ = engine_with(module)
        sock = engine._new_socket(3, TCP)
        for i in range(4):
            uart.emit(b"{3,10.0.0.1,80,5}part%d\r\n" % i)
        await settle()
        eq(read_all(sock), b"part0part1part2part3")
        assert uart.now >= 1 and uart.reads == 0
        engine.stop()

    run(main())


def test_two_senders_of_one_queue_keep_its_order_and_a_closed_socket_takes_nothing():
    async def main():
        module = Module(lambda n: 2)
        engine, _ = engine_with(module)
        sock = engine._new_socket(0, TCP)
        module.replies[b"AT+SSEND"] = lambda cmd: b"[0,,,%s]\r\n" % cmd.split(b",")[3]
        queue = bytearray(b"abcdefgh")
        # A writer and its flush timer both ask for more than is left when their turn comes.
        await asyncio.gather(engine.ssend_from(sock, queue, 5), engine.ssend_from(sock, queue, 5))
        eq(module.payloads, [b"abcde", b"fgh"])
        eq(len(queue), 0)
        queue += b"not for the next owner of id 0"
        engine._end_socket(sock, 0)
        await fails(engine.ssend_from(sock, queue, 5), ECONNRESET)
        eq(bytes(queue), b"not for the next owner of id 0")
        engine.stop()

    run(main())


def test_after_a_module_restart_only_init_speaks_and_stale_answers_pass_first():
    """Restarted, the module echoes and may still answer a command sent before the
    restart: a command slipped in then could take another's final line (in the chaos
    test a relisten took a stale [OK], and a client's SCON then waited 8 s)."""

    async def main():
        module = Module()
        engine, events = engine_with(module)
        module.uart.emit(b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\nAT+SSEND=4,,,1400\r\n")
        await settle()
        await fails(engine.open_socket(LISTENER, local_port=80), 5)  # refused, not sent
        eq(module.commands, [])
        init = asyncio.create_task(engine.init())
        await asyncio.sleep(0.01)
        module.uart.emit(b"[ERROR: INVALID INPUT]\r\n")  # the answer to the SSEND before the restart
        for cmd in (b"AT", b"AT+MECHO=0", b"AT+MMSG=2", b"AT+MEVTMSG=1", b"AT+FSOCK=9,1"):
            module.replies[cmd] = b"[OK]\r\n"
        await init  # the stale [ERROR] went by before its first command: no failure
        eq(module.commands, [b"AT", b"AT+MECHO=0", b"AT+MMSG=2", b"AT+MEVTMSG=1", b"AT+FSOCK=9,1"])
        module.replies[b"AT+SCON=O,TSN"] = b"[OK]\r\n\r\n[LISTEN 2]\r\n"
        eq((await engine.open_socket(LISTENER, local_port=80)).sid, 2)  # and now anyone may speak
        engine.stop()

    run(main())


def test_a_frame_cut_short_by_a_restart_does_not_swallow_what_follows():
    # Restarted mid-frame, the module never sends the rest of the payload. Its banner and
    # every answer after it were taken as payload, up to the header's length: each command
    # timed out, for minutes on an idle link. The first timeout now ends that frame.
    async def main():
        module = Module()
        engine, events = engine_with(module)
        sock = engine._new_socket(0, TCP)
        module.uart.emit(b"{0,10.0.0.2,80,1400}" + b"x" * 300)
        banner = b"\r\nWizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n"
        module.uart.emit(banner)
        module.replies[b"AT"] = b"[OK]\r\n"
        await settle()
        await fails(engine.command(b"AT", timeout_ms=600), 104)  # its [OK] went into the payload
        eq((errors(engine.parser)["cut_frame"], engine.restarting, engine.counters["resets"]), (1, True, 1))
        eq(events, [(P.RESET, b"frame cut short")])  # the supervisor sets the module up again
        eq((sock.open, sock.error, len(sock.rx)), (False, 104, 300 + len(banner) + 6))  # read, then ECONNRESET
        for cmd in (b"AT+MECHO=0", b"AT+MMSG=2", b"AT+MEVTMSG=1", b"AT+FSOCK=9,1"):
            module.replies[cmd] = b"[OK]\r\n"
        await engine.init()  # lines are lines again
        module.uart.emit(b"{1,10.0.0.2,80,3}abc\r\n")  # and frames frames
        await settle()
        eq(bytes(engine.table[1].rx.read()), b"abc")
        engine.stop()

    run(main())


def test_a_frame_still_coming_is_not_cut_however_long_it_takes():
    # A slow line: the frame takes longer than the command's timeout, but its bytes keep
    # coming. Cut, the module was taken as restarted and the rest read as lines.
    async def main():
        module = Module()
        engine, events = engine_with(module)
        sock = engine._new_socket(0, TCP)
        module.uart.emit(b"{0,10.0.0.2,80,390}")
        await settle()  # the frame began before the command

        async def trickle():
            for _ in range(30):
                await asyncio.sleep(0.02)
                module.uart.emit(b"\r\n[CONNECT 5]")  # 13 bytes of payload every 20 ms
            module.uart.emit(b"\r\n")

        task = asyncio.create_task(trickle())
        await fails(engine.command(b"AT", timeout_ms=300), 110)  # a plain timeout
        await task
        await settle()
        eq((sock.open, engine.restarting, len(sock.rx), engine.table[5]), (True, False, 390, None))
        engine.stop()

    run(main())


def test_a_frame_held_by_a_full_ring_or_begun_during_the_command_is_not_cut_at_once():
    async def main():
        module = Module()
        engine, events = engine_with(module, socket_rx=32)
        sock = engine._new_socket(0, TCP)
        # More than the ring takes, and the rings it is lent while the command waits (9 x 32).
        module.uart.emit(b"{0,10.0.0.2,80,400}" + b"x" * 400 + b"\r\n")
        await settle()
        await fails(engine.command(b"AT", timeout_ms=50), 110)  # unanswered: a plain timeout
        eq((errors(engine.parser)["cut_frame"], engine.restarting), (0, False))
        got = b""
        for _ in range(50):  # the reader polls for room every millisecond
            sock.advance()  # as a stream reads: a lent ring once the one before it is empty
            got += sock.rx.read()
            await asyncio.sleep(0.002)
        eq(got, b"x" * 400)  # the frame went on once read

        def begin_frame(cmd):
            module.uart.emit(b"{0,10.0.0.2,80,100}" + b"y" * 50)
            return b""

        module.replies[b"AT+WSTATUS"] = begin_frame  # its frame began after the command went out
        await fails(engine.command(b"AT+WSTATUS", timeout_ms=50), 110)
        eq((errors(engine.parser)["cut_frame"], engine.restarting, events), (0, False, []))
        engine.stop()

    run(main())


def test_a_frame_cut_while_a_command_waits_is_seen_before_its_timeout():
    # The module restarted mid-frame during an SSEND's wait for its prompt (7 s): the cut
    # was seen only at the next command's timeout, and the site served again after 9.5 s
    # (115200 baud). The wait now looks every half second; a frame begun during the
    # command counts as cut after 2 s of silence.
    async def main():
        module = Module()
        engine, events = engine_with(module)
        engine._new_socket(0, TCP)

        def restart_mid_frame(cmd):
            module.uart.emit(b"{0,10.0.0.2,80,1400}" + b"x" * 300 + b"\r\nWizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n")
            return b""

        module.replies[b"AT+WSTATUS"] = restart_mid_frame
        start = ticks_ms()
        await fails(engine.command(b"AT+WSTATUS", timeout_ms=10000), 104)
        waited = ticks_diff(ticks_ms(), start)
        engine.stop()
        eq((errors(engine.parser)["cut_frame"], engine.restarting, events), (1, True, [(P.RESET, b"frame cut short")]))
        assert 2000 <= waited < 10000, waited  # after the 2 s of silence, not at the 10 s timeout

    run(main())


def test_a_restart_whose_banner_went_partly_or_wholly_into_a_cut_frame_is_seen():
    # The restart cut a frame short: what it printed next paid the frame's missing bytes.
    # With the banner's head taken it was not recognised; taken whole, no line was left at
    # all, and only the echo of the next command (echo is on after a restart) tells (fuzz
    # round 3: the server stopped accepting, and an old id's response reached a new client).
    async def main():
        banner = b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n"
        for k in (1, 12, 25, len(banner)):
            module = Module()
            engine, events = engine_with(module)
            for cmd in (b"AT", b"AT+MECHO=0", b"AT+MMSG=2", b"AT+MEVTMSG=1", b"AT+FSOCK=9,1"):
                module.replies[cmd] = b"[OK]\r\n"
            await engine.init()
            engine._new_socket(0, TCP)
            module.uart.emit(b"{0,10.0.0.2,80,%d}" % (10 + k) + b"x" * 10 + banner)
            await settle()
            if k == len(banner):
                eq(engine.counters["resets"], 0)  # nothing to see yet
                module.replies[b"AT+SSEND="] = lambda cmd: cmd + b"\r\n[ERROR: INVALID INPUT]\r\n"
                await fails(engine.ssend(engine._new_socket(1, TCP), b"hello"), 104)
            eq((engine.counters["resets"], engine.restarting, [kind for kind, arg in events]), (1, True, [P.RESET if k == len(banner) else P.BANNER]))
            engine.stop()

    run(main())


"""Wi-Fi commands and the supervisor against a scripted module; CPython and MicroPython."""

import asyncio

from fakeuart import Module, engine_with, eq, fails, run, settle
from noheap import NoHeapFor
from smgmt import listing
from wizfi250 import parser as P
from wizfi250.net import Net
from wizfi250.sockets import ACCEPTED, LISTENER, TCP, UDP
from wizfi250.supervisor import Supervisor
from wizfi250.wifi import WiFi, parse_scan_row

JOINED = (
    b"Joining : MyAP\r\nSuccessfully joined : MyAP\r\n"
    b"\r\n[Link-Up Event]\r\n  IP Addr    : 192.168.1.23\r\n  Gateway    : 192.168.1.1\r\n[OK]\r\n"
)


def ok_module():
    module = Module()
    for prefix in (b"AT+WSET", b"AT+WSEC", b"AT+WNET", b"AT+M", b"AT+FSOCK", b"AT"):
        module.replies[prefix] = b"[OK]\r\n"
    module.replies[b"AT+WJOIN"] = JOINED
    module.replies[b"AT+SCON=O,TSN"] = b"[OK]\r\n\r\n[LISTEN 0]\r\n"
    module.replies[b"AT+MRESET"] = b"[OK]\r\nWizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n"
    return module


async def started(sup):
    """Wait for the supervisor's first restore: the module restarted, then set up."""
    for _ in range(100):
        if sup.state == "up":
            return
        await asyncio.sleep(0.01)
    eq(sup.state, "up")


async def supervising(engine, net=None, join=("station", "MyAP", "k" * 8, ""), probe_ms=10000):
    """A supervisor of ``engine`` running in its own task, once its first restore is done."""
    sup = Supervisor(net or Net(engine), WiFi(engine), join=join, probe_ms=probe_ms)
    task = asyncio.create_task(sup.run())
    await started(sup)
    return sup, task


_SCAN_HEAD = b"Index/SSID/BSSID/RSSI(-dBm)/MaxDataRate(Mbps)/Security/RadioBand(GHz)/Channel\r\n"


DOWN = b"Down////00:08:DC:11:22:33/31/0"  # WSTAT's row while the module is on no network


def wstat(row):
    """AT+WSTAT's answer, with ``row``."""
    return b"IF/SSID/IP-Addr/Gateway/MAC/TxPower(dBm)/RSSI(-dBm)\r\n" + row + b"\r\n[OK]\r\n"


async def scan(engine, module, rows, listed=()):
    """``WiFi.scan`` of ``rows`` (between the module's header and its [OK]); ``listed``: the
    module's socket list, for the check that follows SSID text read as an event."""
    module.replies[b"AT+WSCAN"] = _SCAN_HEAD + rows + b"[OK]\r\n"
    module.replies[b"AT+SMGMT=?"] = listing(listed)
    return await WiFi(engine).scan()


def test_scan_rows_with_the_extra_field_and_a_slash_in_the_ssid():
    eq(parse_scan_row("Index/SSID/BSSID/RSSI(-dBm)/MaxDataRate(Mbps)/Security/RadioBand(GHz)/Channel"), None)
    eq(parse_scan_row("001/MyAP/00:11:22:33:44:55/-45/72.2/Infra/WPA2-Mixed/2.4/6"),
       {"ssid": "MyAP", "bssid": "00:11:22:33:44:55", "rssi": -45, "security": "WPA2-Mixed", "channel": 6})  # fmt: skip
    eq(parse_scan_row("002/a/b/00:11:22:33:44:66/-70/54/Open/2.4/11")["ssid"], "a/b")  # WizFi310: 8 fields
    for row in ("003/x/00:00:00:00:00:00/y/00:11:22:33:44:77/-50/54/Infra/Open/2.4/1",  # a BSSID in the name
                "003/x/00:00:00:00:00:00/y/00:11:22:33:44:77/-50/54/Open/2.4/1"):  # fmt: skip
        eq((parse_scan_row(row)["ssid"], parse_scan_row(row)["bssid"]), ("x/00:00:00:00:00:00/y", "00:11:22:33:44:77"))


def test_scan_and_status_take_an_ssid_that_is_not_utf8_or_holds_a_slash():
    # Any 32 bytes make an SSID: a neighbour's in Latin-1 failed every scan (UnicodeError),
    # and a '/' in the joined network's shifted every field of the status after it.
    async def main():
        module = ok_module()
        engine, _ = engine_with(module)
        module.replies[b"AT+WSTAT"] = wstat(b"STA/Caf\xe9/Home/192.168.1.23/192.168.1.1/00:08:DC:11:22:33/31/45")
        found = await scan(engine, module, (
            b"001/Caf\xe9/00:11:22:33:44:55/-45/72.2/Infra/WPA2-Mixed/2.4/6\r\n"
            b"002/Z\xc3\xbcrich/00:11:22:33:44:66/-70/54/Infra/Open/2.4/11\r\n"
        ))
        status = await WiFi(engine).status()
        engine.stop()
        eq([(n["ssid"], n["channel"]) for n in found], [("Caf\xe9", 6), ("Z\xfcrich", 11)])
        eq((status["ssid"], status["ip"], status["rssi"]), ("Caf\xe9/Home", "192.168.1.23", -45))

    run(main())


def test_a_scan_takes_line_ends_in_an_ssid_as_its_text_not_as_the_modules_word():
    # Networks in range named "\r\n[Reset Event]\r\n" and "\r\n[OK]\r\n": the module prints
    # each SSID as it came over the air. Read as lines, the first ended every socket and
    # had the module set up again, the second ended the scan and later a command of its own.
    async def main():
        module = ok_module()
        engine, events = engine_with(module)
        sock = engine._new_socket(0, TCP)
        module.replies[b"AT+MINFO"] = b"FW version/HW version\r\n1.0.5.2/WizFi250 Rev 1.0\r\n[OK]\r\n"
        rows = (
            b"001/\r\n[Reset Event]\r\n/00:11:22:33:44:55/-45/72.2/Infra/WPA2-Mixed/2.4/6\r\n"
            + b"002/x\r\n[OK]\r\n/00:11:22:33:44:66/-70/54/Infra/Open/2.4/11\r\n"
            + b"003/MyAP/00:11:22:33:44:77/-50/54/Infra/Open/2.4/1\r\n"
        )
        found = await scan(engine, module, rows, (b"0/TCN/10.0.0.2:80/30412/0",))
        info = await engine.command(b"AT+MINFO")
        engine.stop()
        eq([n["ssid"] for n in found], ["\n[Reset Event]\n", "x\n[OK]\n", "MyAP"])
        eq((sock.open, engine.restarting, events, engine.counters["stray"]), (True, False, [], 0))
        eq((module.commands[-3:], len(info)), ([b"AT+SMGMT=?", b"AT+WSTAT", b"AT+MINFO"], 2))

    run(main())


def test_a_name_holding_a_bssid_and_a_line_end_does_not_hold_the_scan_open():
    # "/00:00:00:00:00:00/\r\n[" names a network: its first '/'-field that looked like a
    # BSSID was the name's, so the row was never whole, and its text took the scan's [OK]
    # and every line after it (events too) until the scan timed out.
    async def main():
        module = ok_module()
        engine, events = engine_with(module)
        sock = engine._new_socket(0, TCP)
        rows = b"001//00:00:00:00:00:00/\r\n[/00:11:22:33:44:55/-45/72.2/Infra/WPA2-Mixed/2.4/6\r\n"
        found = await scan(engine, module, rows)
        module.uart.emit(b"\r\n[DISCONNECT 0]\r\n")
        await settle()
        engine.stop()
        eq([(n["ssid"], n["bssid"]) for n in found], [("/00:00:00:00:00:00/\n[", "00:11:22:33:44:55")])
        eq((sock.open, events), (False, [(P.DISCONNECT, 0)]))

    run(main())


def test_a_real_event_inside_an_ssid_is_found_again_by_the_check_after_the_scan():
    # An event printed while an SSID is, within its reach, cannot be told from its text:
    # it is taken as text, and the socket table is checked against the module's own list.
    async def main():
        module = ok_module()
        engine, _ = engine_with(module)
        kept, gone = engine._new_socket(0, TCP), engine._new_socket(2, TCP)
        rows = b"001/My\r\n[DISCONNECT 2]\r\nAP/00:11:22:33:44:55/-45/72.2/Infra/Open/2.4/6\r\n"
        found = await scan(engine, module, rows, (b"0/TCN/10.0.0.2:80/30412/0",))
        engine.stop()
        eq(([n["channel"] for n in found], engine.counters["air"]), ([6], 1))
        eq((kept.open, gone.open, engine.table[2]), (True, False, None))

    run(main())


def test_a_link_down_inside_an_ssid_is_found_by_the_status_after_the_scan_and_rejoined():
    # A Link-Down taken as an SSID's text reached nobody: the supervisor, which rejoins on
    # that event only, took the network for up until the board restarted.
    async def main():
        module = ok_module()
        engine, _ = engine_with(module)
        sup, task = await supervising(engine)
        module.replies[b"AT+WSTAT"] = wstat(DOWN)
        rows = b"001/My\r\n[Link-Down Event]\r\nAP/00:11:22:33:44:55/-45/72.2/Infra/Open/2.4/6\r\n"
        found = await scan(engine, module, rows)
        eq([n["ssid"] for n in found], ["My\n[Link-Down Event]\nAP"])
        await asyncio.sleep(0.05)
        eq((sup.state, engine.wifi["state"], module.commands.count(b"AT+WJOIN")), ("up", "up", 2))
        task.cancel()
        engine.stop()

    run(main())


def test_a_row_that_ends_like_the_banner_or_holds_a_real_event_in_a_long_ssid_is_listed():
    # Found by test_fuzz_scan.py. A row piece ending in "(WIZnet Co.Ltd)" is a banner to the
    # parser (a banner behind what a restart cut short ends so): the module was taken as
    # reset. And a real event inside a 31-byte SSID pushed the row past an SSID's reach:
    # the event's own bytes counted, so the row was cut off from its fields and lost.
    async def main():
        module = ok_module()
        engine, events = engine_with(module)
        gone = engine._new_socket(1, TCP)
        rows = (
            b"001/(WIZnet Co.Ltd)\n/00:11:22:33:44:55/-45/72.2/Infra/Open/2.4/6\r\n"
            + b"002/" + b"A" * 31 + b"\r\n[DISCONNECT 1]\r\n/00:11:22:33:44:66/-70/54/Infra/Open/2.4/11\r\n"
        )
        found = await scan(engine, module, rows)
        engine.stop()
        eq([n["channel"] for n in found], [6, 11])
        eq((found[0]["ssid"], engine.restarting, engine.counters["resets"]), ("(WIZnet Co.Ltd)\n", False, 0))
        eq((gone.open, engine.table[1], events), (False, None, []))  # the event, found again by the check

    run(main())


def test_an_ssid_that_reads_as_a_frame_header_is_listed_and_reaches_no_socket():
    # "{0,6.6.6.6,6,4}EVIL" names a network: read as a frame, its bytes reached the reader of
    # socket 0 (a browser here) during every scan. A TCP socket's frames all come from its
    # peer, so a header naming another is not its data: in a scan, it is the row's text.
    async def main():
        module = ok_module()
        engine, _ = engine_with(module)
        sock = engine._new_socket(0, ACCEPTED)
        module.uart.emit(b"{0,10.0.0.9,40000,3}GET\r\n")
        await settle()
        rows = (
            b"001/{0,6.6.6.6,6,4}EVIL/00:11:22:33:44:55/-45/72.2/Infra/Open/2.4/6\r\n"
            + b"002/\r\n{0,6.6.6.6,6,2}xy\r\n/00:11:22:33:44:66/-70/54/Infra/Open/2.4/11\r\n"
        )
        found = await scan(engine, module, rows, (b"0/TSN/10.0.0.9:40000/80/0",))
        module.uart.emit(b"{0,10.0.0.9,40000,3} / \r\n")  # the browser goes on
        await settle()
        engine.stop()
        eq([n["ssid"] for n in found], ["{0,6.6.6.6,6,4}EVIL", "\n{0,6.6.6.6,6,2}xy\n"])
        eq((sock.rx.read(), sock.open, engine.table[0] is sock), (b"GET / ", True, True))

    run(main())


def test_a_name_cannot_pin_a_new_connection_to_a_peer_of_its_choosing():
    # A browser connected, its request not yet in, and a scan ran: "{0,6.6.6.6,6,1}x" in a
    # name was its first frame, which pinned it to 6.6.6.6. Its real request, later in the
    # scan, then read as the row's text, so its bytes were the module's lines: one
    # "[Reset Event]" in a POST ended every socket. A header inside a row now pins no peer.
    async def main():
        module = ok_module()
        engine, events = engine_with(module)
        sock = engine._new_socket(0, ACCEPTED)
        body = b"POST / HTTP/1.0\r\n\r\n[Reset Event]\r\n"
        rows = (
            b"001/{0,6.6.6.6,6,1}x/00:11:22:33:44:55/-45/72.2/Infra/Open/2.4/6\r\n"
            + b"{0,10.0.0.9,40000,%d}%s\r\n" % (len(body), body)
            + b"002/MyAP/00:11:22:33:44:66/-70/54/Infra/Open/2.4/11\r\n"
        )
        found = await scan(engine, module, rows)
        module.uart.emit(b"{0,10.0.0.9,40000,3}end\r\n")  # after the scan: its peer now
        await settle()
        engine.stop()
        eq([n["bssid"][-2:] for n in found], ["55", "66"])
        eq((sock.rx.read(), sock.open, sock.head, engine.counters["resets"], events), (b"x" + body + b"end", True, b"{0,10.0.0.9,40000,", 0, []))

    run(main())


def test_a_new_connection_on_an_id_that_changed_hands_in_a_name_keeps_its_request():
    # A browser left and another took its id while the module printed an SSID, so both
    # events were read as the name's text. The new one's request came between two rows
    # and, naming another peer than the socket's, was read as row text: its bytes were
    # the module's lines. Outside a row no name can be: it is a new connection's frame.
    async def main():
        module = ok_module()
        engine, events = engine_with(module)
        old = engine._new_socket(0, ACCEPTED)
        module.uart.emit(b"{0,10.0.0.9,40000,3}GET\r\n")
        await settle()
        body = b"POST / HTTP/1.0\r\n\r\n[Reset Event]\r\n"
        rows = (
            b"001/x\r\n[DISCONNECT 0]\r\n\r\n[CONNECT 0]\r\ny/00:11:22:33:44:55/-45/72.2/Infra/Open/2.4/6\r\n"
            + b"{0,10.0.0.99,5555,%d}%s\r\n" % (len(body), body)
            + b"002/MyAP/00:11:22:33:44:66/-70/54/Infra/Open/2.4/11\r\n"
        )
        found = await scan(engine, module, rows, (b"0/TSN/10.0.0.99:5555/80/0",))
        new = engine.table[0]
        engine.stop()
        eq([n["bssid"][-2:] for n in found], ["55", "66"])
        eq((old.open, new.peer, new.rx.read(), engine.counters["resets"], events), (False, ("10.0.0.99", 5555), body, 0, [(P.CONNECT, 0)]))

    run(main())


def test_a_datagram_during_a_scan_is_a_datagram_whoever_sent_it():
    # A UDP socket takes datagrams from anyone, during a scan too. Once, a UDP client's
    # frames from another sender were read as SSID text during a scan, to keep a network
    # named "{1,6.6.6.6,6,4}EVIL" out of its datagrams: then any host on the network could
    # send "[Reset Event]" in a datagram and, arriving during a scan, it was the module's.
    # A name with a header for a UDP socket's id is a datagram, as anyone's may be.
    async def main():
        module = ok_module()
        engine, events = engine_with(module)
        module.replies[b"AT+SCON=O,UCN"] = b"\r\n[CONNECT 1]\r\n[OK]\r\n"
        sock = await engine.open_socket(UDP, "10.0.0.2", 7000)
        forged = b"\r\n[Reset Event]\r\n[OK]\r\n"
        rows = (
            b"001/MyAP/00:11:22:33:44:55/-45/72.2/Infra/Open/2.4/6\r\n"
            + b"{1,10.0.0.3,9,%d}%s\r\n" % (len(forged), forged)
            + b"002/{1,6.6.6.6,6,4}EVIL/00:11:22:33:44:66/-70/54/Infra/Open/2.4/11\r\n"
        )
        found = await scan(engine, module, rows, (b"1/UCN/10.0.0.2:7000/5000/0",))
        engine.stop()
        eq([(n["ssid"], n["bssid"]) for n in found], [("MyAP", "00:11:22:33:44:55"), ("", "00:11:22:33:44:66")])
        eq((sock.rx.read(), [(n, peer[0]) for n, peer in sock.datagrams]), (forged + b"EVIL", [(len(forged), "10.0.0.3"), (4, "6.6.6.6")]))
        eq((sock.open, engine.counters["resets"], events), (True, 0, []))

    run(main())


def test_a_name_whose_header_swallows_the_listing_fails_the_scan_not_the_sockets():
    # "{1,6.6.6.6,6,1400}" in a name, with a UDP socket on id 1: the frame took the rest of
    # the listing, its [OK] too, then waited for bytes that never came. Cut short, it was
    # taken for a restart, and every socket ended. Now the scan fails; the AT before the
    # next command tells a real restart by its echo (the second round).
    async def main():
        for restarted in (False, True):
            module = ok_module()
            engine, events = engine_with(module)
            await engine.init()
            module.replies[b"AT+SCON=O,UCN"] = b"\r\n[CONNECT 1]\r\n[OK]\r\n"
            sock = await engine.open_socket(UDP, "10.0.0.2", 7000)
            rows = b"001/{1,6.6.6.6,6,1400}x/00:11:22:33:44:55/-45/72.2/Infra/Open/2.4/6\r\n"
            await fails(scan(engine, module, rows), 5)
            if restarted:
                module.replies[b"AT"] = lambda cmd: cmd + b"\r\n[OK]\r\n"  # echo is on again
            module.replies[b"AT+WSTAT"] = wstat(b"STA/MyAP/192.168.1.23/192.168.1.1/00:08:DC:11:22:33/31/45")
            if restarted:
                await fails(WiFi(engine).status(), 104)
            else:
                eq((await WiFi(engine).status())["ip"], "192.168.1.23")
            engine.stop()
            eq(module.commands[6:], [b"AT+WSCAN", b"AT"] + ([] if restarted else [b"AT+WSTAT"]))
            eq((sock.open, engine.counters["resets"], events), (not restarted, int(restarted), [(P.RESET, b"echo is on again")] if restarted else [(P.LINK_UP, None)]))

    run(main())


def test_join_then_status():
    async def main():
        module = ok_module()
        engine, _ = engine_with(module)
        module.replies[b"AT+WSTAT"] = wstat(b"STA/MyAP/192.168.1.23/192.168.1.1/00:08:DC:11:22:33/31/45")
        wifi = WiFi(engine)
        eq(await wifi.join("MyAP", "secret99"), "192.168.1.23")
        eq(module.commands[:4], [b"AT+WSET=0,MyAP", b"AT+WSEC=0,,secret99", b"AT+WNET=1", b"AT+WJOIN"])
        status = await wifi.status()
        eq((status["mode"], status["ip"], status["rssi"]), ("station", "192.168.1.23", -45))
        engine.stop()

    run(main())


def test_the_supervisor_starts_by_restarting_a_module_that_kept_running():
    # The board restarted (a reset, a deploy), the module did not: a UDP socket of the
    # previous run (id 3) sends a datagram, taken for a connection. The restart ends it.
    async def main():
        module = ok_module()
        module.replies[b"AT+MRESET"] = b"[OK]\r\n\r\n[DISCONNECT 3]\r\n\r\n[Link-Down Event]\r\n"
        engine, events = engine_with(module)
        module.uart.emit(b"{3,10.0.0.9,5000,4}ping\r\n")
        await settle()
        old = engine.table[3]
        sup = Supervisor(Net(engine), WiFi(engine), join=("station", "MyAP", "secret99", ""))
        task = asyncio.create_task(sup.run())
        await asyncio.sleep(0.1)
        eq((sup.state, module.commands), ("initialising", [b"AT+MRESET"]))  # nothing until the banner
        module.uart.emit(b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n")
        await started(sup)
        eq(module.commands[:6], [b"AT+MRESET", b"AT", b"AT+MECHO=0", b"AT+MMSG=2", b"AT+MEVTMSG=1", b"AT+FSOCK=9,1"])
        eq((old.open, engine.table[3], engine.wifi["state"], engine.counters["resets"]), (False, None, "up", 1))
        task.cancel()
        engine.stop()

    run(main())


def test_supervisor_restores_service_after_a_module_reset():
    async def main():
        module = ok_module()
        engine, _ = engine_with(module)
        net = Net(engine)
        sup, task = await supervising(engine, net, ("station", "MyAP", "secret99", ""))
        await net.start_server(lambda r, w: None, 80)
        eq(engine.table[0].kind, LISTENER)
        module.commands.clear()
        module.uart.emit(b"\r\n[DISCONNECT 0]\r\n\r\n[Link-Down Event]\r\nWizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n")
        await asyncio.sleep(0.25)  # init first lets stale answers pass (QUIET_MS)
        eq(sup.state, "up")
        eq(module.commands, [b"AT", b"AT+MECHO=0", b"AT+MMSG=2", b"AT+MEVTMSG=1", b"AT+FSOCK=9,1",
                             b"AT+WSET=0,MyAP", b"AT+WSEC=0,,secret99", b"AT+WNET=1", b"AT+WJOIN",
                             b"AT+SCON=O,TSN,,,80,0"])  # fmt: skip
        eq((engine.wifi["state"], engine.table[0].kind, engine.counters["resets"]), ("up", LISTENER, 2))  # with the start's
        eq(sup.recoveries, 2)  # the Link-Down before the banner is no restore of its own
        task.cancel()
        engine.stop()

    run(main())


def test_the_supervisor_outlives_a_wait_that_finds_no_heap():
    # At a small heap its wait for news (asyncio.wait_for) found no heap once: the task
    # died, and the board never rejoined or set the module up again after that.
    async def main():
        module = ok_module()
        engine, _ = engine_with(module)
        sup, task = await supervising(engine)
        with NoHeapFor("wait_for", asyncio, times=1):
            module.uart.emit(b"\r\n[Link-Down Event]\r\n")
            await asyncio.sleep(0.1)  # rejoined, and back to a wait that finds no heap
        module.uart.emit(b"\r\n[Link-Down Event]\r\n")
        await asyncio.sleep(0.3)
        eq((task.done(), sup.recoveries, engine.wifi["state"]), (False, 3, "up"))
        task.cancel()
        engine.stop()

    run(main())


def test_supervisor_rejoins_after_link_down_with_backoff():
    async def main():
        module = ok_module()
        engine, _ = engine_with(module)
        sup, task = await supervising(engine)
        module.replies[b"AT+WJOIN"] = b"Joining : MyAP\r\nFailed to join: MyAP\r\n[ERROR]\r\n"
        module.uart.emit(b"\r\n[Link-Down Event]\r\n")
        await asyncio.sleep(0.05)
        eq(sup.state[:8], "retrying")
        module.replies[b"AT+WJOIN"] = JOINED
        await asyncio.sleep(1.1)  # the first backoff is 1 s
        eq((sup.state, engine.wifi["state"], sup.recoveries), ("up", "up", 2))
        eq([k for k in module.commands if k == b"AT+WJOIN"], [b"AT+WJOIN"] * 3)
        task.cancel()
        engine.stop()

    run(main())


def test_a_link_down_lost_to_noise_is_found_by_an_scon_or_the_quiet_probe_and_rejoined():
    # "[Link-Dxwn Event]": the supervisor, which rejoins on that event only, never heard of
    # it, and the board stayed off the network until it restarted. The module's own word
    # finds it: an SCON's [ERROR: WiFi Status], or WSTAT when the UART has gone quiet.
    async def main():
        module = ok_module()
        engine, _ = engine_with(module)
        link = ["up"]  # the module's
        rows = {"up": b"STA/MyAP/10.0.0.5/10.0.0.1/00:08:DC:11:22:33/31/45", "down": DOWN}
        module.replies[b"AT+WSTAT"] = lambda cmd: wstat(rows[link[0]])

        def join(cmd):
            link[0] = "up"
            return JOINED

        module.replies[b"AT+WJOIN"] = join
        net = Net(engine)
        heard = []
        net.listeners.append(lambda kind, arg: heard.append(kind))
        sup, task = await supervising(engine, net, probe_ms=50)
        module.replies[b"AT+SCON=O,TCN"] = b"[ERROR: WiFi Status]\r\n"
        link[0] = "down"
        module.uart.emit(b"\r\n[Link-Dxwn Event]\r\n")
        await fails(engine.open_socket(TCP, "10.0.0.2", 80), 5)
        eq(engine.wifi["state"], "down")  # at once: the SCON's answer said so, not a probe
        for _ in range(100):
            if module.commands.count(b"AT+WJOIN") == 2 and sup.state == "up":
                break
            await asyncio.sleep(0.01)
        eq((sup.state, engine.wifi["state"], module.commands.count(b"AT+WJOIN")), ("up", "up", 2))
        link[0] = "down"
        module.uart.emit(b"\r\n[Link-Dxwn Event]\r\n")  # and nothing more: the UART goes quiet
        for _ in range(50):
            if module.commands.count(b"AT+WJOIN") == 3:
                break
            await asyncio.sleep(0.02)
        eq((module.commands.count(b"AT+WSTAT") > 0, module.commands.count(b"AT+WJOIN")), (True, 3))
        eq(heard.count(P.LINK_DOWN), 2)
        task.cancel()
        engine.stop()

    run(main())


def test_link_events_update_the_wifi_state():
    async def main():
        module = ok_module()
        engine, events = engine_with(module)
        module.uart.emit(b"\r\n[Link-Up Event]\r\n  IP Addr    : 10.0.0.9\r\n  Gateway    : 10.0.0.1\r\n")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        eq((engine.wifi["state"], engine.wifi["ip"], engine.wifi["gateway"]), ("up", "10.0.0.9", "10.0.0.1"))
        module.uart.emit(b"\r\n[Link-Down Event]\r\n")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        eq((engine.wifi["state"], engine.wifi["ip"]), ("down", ""))
        # Told again (a WSTAT's answer told first, say): the link changed once, so one event.
        module.uart.emit(b"\r\n[Link-Down Event]\r\n")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        eq([k for k, a in events], [P.LINK_UP, P.IP_ADDR, P.GATEWAY, P.LINK_DOWN])
        engine.stop()

    run(main())


def test_soft_ap_sets_mode_security_and_address():
    async def main():
        module = ok_module()
        engine, _ = engine_with(module)
        module.replies[b"AT+WJOIN"] = b"\r\n[Link-Up Event]\r\n  IP Addr    : 192.168.12.1\r\n  Gateway    : 192.168.12.1\r\n[OK]\r\n"
        wifi = WiFi(engine)
        eq(await wifi.soft_ap("Board", "password1"), "192.168.12.1")
        eq(module.commands, [b"AT+WSET=1,Board,,6", b"AT+WSEC=1,WPA2AES,password1",
                             b"AT+WNET=0,192.168.12.1,255.255.255.0,192.168.12.1", b"AT+WJOIN"])  # fmt: skip
        eq(wifi.mode, "ap")
        engine.stop()

    run(main())


def test_an_access_point_name_with_a_comma_goes_in_quotes_and_one_the_module_cannot_take_is_refused():
    # Unquoted, the module splits "Lab,2" at its comma: an access point named "Lab".
    async def main():
        module = ok_module()
        engine, _ = engine_with(module)
        wifi = WiFi(engine)
        await wifi.soft_ap("Lab,2", "password1")
        eq(module.commands[0], b'AT+WSET=1,"Lab,2",,6')
        module.commands.clear()
        for name in ('Lab,"2"', '"Lab"'):  # its tokenizer takes no quote inside quotes
            await fails(wifi.soft_ap(name, "password1"), ValueError)
        eq(module.commands, [])
        engine.stop()

    run(main())


def test_a_value_that_would_break_its_command_line_is_refused_before_anything_is_sent():
    # A CR ends the module's command line there, and the rest would run as a command of
    # its own; past 255 bytes the module runs the line cut short.
    async def main():
        module = ok_module()
        engine, _ = engine_with(module)
        wifi = WiFi(engine)
        for ssid, key in (("MyAP\rAT+MFDEF=FR", "k" * 8), ("MyAP", "k" * 8 + "\n"), ("My\bAP", "k" * 8),
                          ("MyAP", "k\0" * 8), ("MyAP", "k" * 250)):  # fmt: skip
            await fails(wifi.join(ssid, key), ValueError)
        eq([c for c in module.commands if not c.startswith(b"AT+WSET")], [])  # no key, no join
        eq(len(module.commands), 3)  # the WSET of each good SSID: its key's command was refused
        eq(await wifi.join("MyAP", "k" * 8), "192.168.1.23")  # the engine goes on as before
        engine.stop()

    run(main())


async def probing_supervisor():
    """A supervisor that probes a quiet module every 50 ms, once it is up."""
    module = ok_module()
    engine, _ = engine_with(module)
    sup, task = await supervising(engine, join=None, probe_ms=50)
    return module, engine, sup, task


def test_a_silent_module_is_probed_then_treated_as_reset():
    async def main():
        module, engine, sup, task = await probing_supervisor()
        sock = engine._new_socket(4, TCP)
        module.replies[b"AT"] = b""  # the module stops answering
        await asyncio.sleep(3.5)  # three 1 s probes
        assert not sock.open and sock.error == 104  # every waiter and socket failed
        eq(engine.counters["resets"], 2)  # the restart at start-up, then this
        module.replies[b"AT"] = b"[OK]\r\n"
        for _ in range(100):  # re-initialised once the module answers (after its backoff)
            if sup.state == "up":
                break
            await asyncio.sleep(0.1)
        eq(sup.state, "up")
        task.cancel()
        engine.stop()

    run(main())


def test_after_a_timeout_the_table_is_checked_even_while_the_uart_is_busy():
    # A client's SCON timed out and its [CONNECT 2] came later: the server took it for a
    # browser. The check that finds it waited for a silent UART, which a busy one never is.
    async def main():
        module, engine, sup, task = await probing_supervisor()
        sock = engine._new_socket(2, ACCEPTED)
        engine.counters["timeouts"] += 1
        module.replies[b"AT+SMGMT=?"] = b"2/TCN/10.0.0.7:5000/30001/0\r\n[OK]\r\n"
        module.replies[b"AT+SMGMT=2"] = b"[OK]\r\n\r\n[DISCONNECT 2]\r\n"
        for _ in range(20):  # the module keeps talking
            module.uart.emit(b"\r\n")
            await asyncio.sleep(0.02)
        eq((sock.open, sock.error, engine.table[2]), (False, 104, None))
        eq([c for c in module.commands if c.startswith(b"AT+SMGMT")], [b"AT+SMGMT=?", b"AT+SMGMT=2"])
        task.cancel()
        engine.stop()

    run(main())


def test_the_supervisor_ends_with_the_driver_instead_of_retrying():
    async def main():
        module, engine, sup, task = await probing_supervisor()
        engine.stop()
        await fails(asyncio.wait_for(task, 5), 103)  # its next probe finds the driver stopped: no backoff loop
        eq(sup.state, "stopped")

    run(main())

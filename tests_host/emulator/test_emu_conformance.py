"""The emulator's sans-IO module core, byte for byte against the exchanges in
../shared/docs/wizfi250-protocol.md (section numbers in the comments)."""

import pytest
from emu_support import Core, joined
from emulator.core import BANNER, RX_RING

pytestmark = pytest.mark.timeout(10)

OK = b"[OK]\r\n"
INVALID = b"[ERROR: INVALID INPUT]\r\n"
PEER = ("127.0.0.1", 50000)


# --- framing, echo, matching (1.2-1.5) ------------------------------------------


def test_echo_on_at_boot_exact_bytes():
    c = Core()
    assert c.say(b"AT\r") == bytes.fromhex("41540D0A5B4F4B5D0D0A")  # 1.4
    assert c.say(b"AT+MECHO=0\r") == b"AT+MECHO=0\r\n" + OK
    assert c.say(b"AT\r") == OK
    assert c.say(b"AT+MECHO=?\r") == b"0\r\n" + OK


def test_echo_rules_lf_backspace_and_empty_line():
    c = Core()
    assert c.say(b"AT\r\n") == b"AT\r\n" + OK  # LF discarded, not echoed
    assert c.say(b"AX\x08T\r") == b"AX\x08T\r\n" + OK  # BS echoed unchanged, deletes
    assert c.say(b"\r") == b"\r\n"  # an empty line: the echo only, no response
    c.say(b"AT+MECHO=0\r")
    assert c.say(b"\r") == b""


def test_prefix_and_case_insensitive_matching():
    c = joined()
    assert c.say(b"at+minfo\r") == b"FW version/HW version\r\n1.0.5.2/WizFi250 Rev 1.0\r\n" + OK
    assert c.say(b"at+mecho=?\r") == b"0\r\n" + OK  # a query in lower case too
    assert c.say(b"AT+WSTATUS\r").startswith(b"IF/SSID/")  # works as WSTAT
    assert c.say(b"AT+SMGMT\r") == INVALID  # '=' is part of the table entry
    assert c.say(b"AT+MECHO?\r") == INVALID  # '?' without '='
    assert c.say(b"AT+MVER\r") == INVALID  # no such command
    assert c.say(b"AT+SFORM=?\r") == INVALID  # not modelled: anything else is invalid
    assert c.say(b"HELLO\r") == INVALID
    assert c.say(b"ATX\r") == INVALID


def test_repeat_previous_line_and_line_truncation():
    c = joined()
    c.say(b"AT+MMSG=?\r")
    assert c.say(b"A/\r") == b"2\r\n" + OK
    assert c.say(b"AT" + b"X" * 300 + b"\r") == INVALID  # 255 kept, the rest dropped
    assert c.m.stats["commands"] >= 3


def test_message_level_gating():
    c = joined()
    assert c.say(b"AT+MMSG=1\r") == b""  # [OK] itself lives at level 2
    assert c.say(b"AT\r") == b""
    assert c.say(b"AT+MMSG=?\r") == b"1\r\n"  # command output lines stay
    assert c.say(b"AT+SCON=O,USN,,,5000,0\r") == b""  # [CONNECT n] and [OK] hidden
    assert c.say(b"AT+SMGMT=0\r") == b"\r\n[DISCONNECT 0]\r\n"  # [DISCONNECT n] stays (9.10)
    assert c.say(b"AT+SCON=O,USN,,,5000,0\r") == b""
    c.m.received(0, b"x", PEER)
    assert c.take() == b"{0,127.0.0.1,50000,1}x\r\n"  # frames bypass the gating
    assert c.say(b"AT+MMSG=2\r") == OK  # printed at the new level
    assert c.say(b"AT\r") == OK


def test_busy_command_task_queues_the_next_command():
    c = Core()
    c.say(b"AT+MECHO=0\r")
    out = c.say(b"AT+WJOIN\rAT\r", 1.0)
    assert out.endswith(b"[OK]\r\n[OK]\r\n") and out.count(b"[OK]") == 2


def test_receive_ring_is_bounded():
    c = Core()
    c.say(b"AT+MECHO=0\rAT+WJOIN\r")  # busy joining: nothing is read meanwhile
    assert c.m.feed(b"X" * 3000) == RX_RING
    assert len(c.m.rx) == RX_RING
    assert c.m.stats["rx_dropped"] == 3000 - RX_RING


# --- Wi-Fi (6.1-6.3) ---------------------------------------------------------------


def test_join_exchange_exact():
    c = Core(ap=("MyAP", "secret12"))
    c.say(b"AT+MECHO=0\r")
    assert c.say(b"AT+WSET=0,MyAP\r") == OK
    assert c.say(b"AT+WSEC=0,WPA2,secret12\r") == OK
    assert c.say(b"AT+WNET=0,192.168.1.23,255.255.255.0,192.168.1.1\r") == OK
    assert c.say(b"AT+WJOIN\r", 1.0) == (
        b"Joining : MyAP\r\n"
        b"Successfully joined : MyAP\r\n"
        b"\r\n[Link-Up Event]\r\n"
        b"  IP Addr    : 192.168.1.23\r\n"
        b"  Gateway    : 192.168.1.1\r\n"
        b"[OK]\r\n"
    )
    assert c.say(b"AT+WSTAT\r") == (
        b"IF/SSID/IP-Addr/Gateway/MAC/TxPower(dBm)/RSSI(-dBm)\r\n"
        b"STA/MyAP/192.168.1.23/192.168.1.1/00:08:DC:11:22:33/31/45\r\n" + OK
    )
    assert c.say(b"AT+WJOIN\r") == b"Already Associated : Station Mode\r\n" + OK


def test_join_with_dhcp_in_this_world():
    c = Core()
    c.say(b"AT+MECHO=0\r")
    assert c.say(b"AT+WJOIN\r", 1.0) == (
        b"Joining : WizFiAP\r\nSuccessfully joined : WizFiAP\r\n"
        b"\r\n[Link-Up Event]\r\n  IP Addr    : 127.0.0.1\r\n  Gateway    : 127.0.0.1\r\n" + OK
    )


@pytest.mark.parametrize("setup", [b"AT+WSEC=0,,wrongkey1\r", b"AT+WSET=0,OtherAP\r", b"AT+WSEC=0,OPEN,\r"])
def test_join_failure_three_rounds(setup):
    c = Core()
    c.say(b"AT+MECHO=0\r")
    assert c.say(setup) == OK
    ssid = c.m.prof["ssid"].encode()
    assert c.say(b"AT+WJOIN\r", 2.0) == (b"Joining : %s\r\nFailed to join: %s\r\n" % (ssid, ssid)) * 3 + b"[ERROR]\r\n"


def test_wset_and_wsec_queries_and_the_binary_ssid_quirk():
    c = Core()
    c.say(b"AT+MECHO=0\r")
    assert c.say(b"AT+WSET=0,my,ap,6\r") == OK
    assert c.say(b"AT+WSET=?\r") == b"0,my,ap,6,00:00:00:00:00:00,0\r\n" + OK  # commas swallowed (6.1)
    assert c.say(b"AT+WSEC=0,WPA2,key,with,commas\r") == OK  # the key is the rest of the line
    assert c.say(b"AT+WSEC=?\r") == b"0,WPA2,key,with,commas\r\n" + OK
    assert c.say(b"AT+WSEC=0,OPEN,\r") == OK
    assert c.say(b"AT+WSEC=?\r") == b"0,OPEN,0\r\n" + OK
    assert c.say(b"AT+WSEC=0,BOGUS,12345678\r") == INVALID
    assert c.say(b"AT+WNET=?\r") == b"1,192.168.12.101,255.255.255.0,192.168.12.1\r\n" + OK


def test_an_access_points_ssid_is_a_field_and_quotes_keep_its_commas():
    c = Core()
    c.say(b"AT+MECHO=0\r")
    assert c.say(b"AT+WSET=1,Lab,2,,11\r") == INVALID  # "2" is no BSSID
    assert c.say(b'AT+WSET=1,"Lab,2",,11\r') == OK
    assert c.say(b"AT+WSET=?\r") == b"1,Lab,2,00:00:00:00:00:00,11\r\n" + OK
    assert c.say(b'AT+WSET=1,"Lab"2",,11\r') == INVALID  # a second closing quote


def test_soft_ap_join_prints_no_joining_line():
    c = Core()
    c.say(b"AT+MECHO=0\r")
    c.say(b"AT+WSET=1,MySoftAP\r")
    c.say(b"AT+WNET=0,192.168.12.1,255.255.255.0,192.168.12.1\r")
    assert c.say(b"AT+WJOIN\r", 1.0) == (
        b"\r\n[Link-Up Event]\r\n  IP Addr    : 192.168.12.1\r\n  Gateway    : 192.168.12.1\r\n" + OK
    )
    assert c.say(b"AT+WJOIN\r") == b"Already Started : AP Mode\r\n" + OK


def test_wleave_closes_sockets_then_link_down_then_ok():
    c = joined()
    c.say(b"AT+SCON=O,USN,,,5000,0\r")
    c.say(b"AT+SCON=O,USN,,,5001,0\r")
    assert c.say(b"AT+WLEAVE\r", 1.0) == (
        b"\r\n[DISCONNECT 0]\r\n\r\n[DISCONNECT 1]\r\n\r\n[Link-Down Event]\r\n" + OK
    )
    assert c.say(b"AT+WLEAVE\r") == OK  # not joined: just [OK]
    assert c.say(b"AT+WSTAT\r") == (
        b"IF/SSID/IP-Addr/Gateway/MAC/TxPower(dBm)/RSSI(-dBm)\r\nDown////00:08:DC:11:22:33/31/0\r\n" + OK
    )


def test_wscan_rows_have_the_extra_network_type_field():
    c = joined()
    out = c.say(b"AT+WSCAN\r", 0.1)
    lines = out.split(b"\r\n")
    assert lines[0] == b"Index/SSID/BSSID/RSSI(-dBm)/MaxDataRate(Mbps)/Security/RadioBand(GHz)/Channel"
    assert lines[1] == b"001/WizFiAP/00:11:22:33:44:55/-45/72.2/Infra/WPA2-Mixed/2.4/6"
    assert len(lines[1].split(b"/")) == len(lines[0].split(b"/")) + 1
    assert out.endswith(OK)
    assert c.say(b"AT+WSCAN=WizFiAP\r", 0.1).count(b"\r\n") == 3


def test_scon_needs_wifi():
    c = Core()
    c.say(b"AT+MECHO=0\r")
    assert c.say(b"AT+SCON=O,TSN,,,80,0\r") == b"[ERROR: WiFi Status]\r\n"


# --- sockets (5.1-5.6) -------------------------------------------------------------


def test_multi_socket_exchange_lowest_free_ids():
    c = joined()
    # UDP: [CONNECT n] before [OK] (5.2).
    assert c.say(b"AT+SCON=O,UCN,127.0.0.1,9000,0,0\r") == b"\r\n[CONNECT 0]\r\n" + OK
    # TCP client: [OK] 100 ms after the CR; the connect lands meanwhile (either order).
    assert c.say(b"AT+SCON=O,TCN,192.168.12.23,5000,30412,0\r") == b""
    c.m.connected(1)
    assert c.wait(0.1) == b"\r\n[CONNECT 1]\r\n" + OK
    assert c.say(b"AT+SCON=O,TSN,,,6000,0\r") == OK
    assert c.say(b"AT+SMGMT=?\r") == (
        b"Number of Sockets : 3 (SCID/Mode/Remote/Local/DataMode)\r\n"
        b"0/UCN/127.0.0.1:9000/0/0\r\n"
        b"1/TCN/192.168.12.23:5000/30412/0\r\n"
        b"2/TSN/0.0.0.0:0/6000/0\r\n" + OK
    )
    c.m.received(1, b"Hi WizFi250", ("192.168.12.23", 5000))
    c.m.received(0, b"\r\n[OK]\r\n{", ("127.0.0.1", 9000))  # binary-safe payload
    assert c.take() == b"{1,192.168.12.23,5000,11}Hi WizFi250\r\n{0,127.0.0.1,9000,9}\r\n[OK]\r\n{\r\n"
    assert c.say(b"AT+SMGMT=1\r") == OK + b"\r\n[DISCONNECT 1]\r\n"
    assert c.say(b"AT+SCON=O,USN,,,7000,0\r") == b"\r\n[CONNECT 1]\r\n" + OK  # the freed id again
    for _ in range(5):
        c.say(b"AT+SCON=O,USN,,,7001,0\r")
    assert sorted(c.m.sockets) == list(range(8))
    assert c.say(b"AT+SCON=O,USN,,,7009,0\r") == b"[ERROR: INVALID SCID]\r\n"  # 8 sockets at most
    assert c.say(b"AT+SMGMT=ALL\r", 1.0) == b"".join(b"\r\n[DISCONNECT %d]\r\n" % i for i in range(8)) + OK


def test_failed_tcp_connect_shows_only_disconnect():
    c = joined()
    assert c.say(b"AT+SCON=O,TCN,127.0.0.1,9,0,0\r", 0.1) == OK
    c.m.connect_failed(0)
    assert c.take() == b"\r\n[DISCONNECT 0]\r\n"
    assert not c.m.sockets


def test_scon_validation():
    c = joined()
    assert c.say(b"AT+SCON=O,TCN,,5000,0,0\r") == INVALID  # remote required
    assert c.say(b"AT+SCON=O,TSN,,,0,0\r") == INVALID  # server port required
    assert c.say(b"AT+SCON=X,TSN,,,80,0\r") == INVALID
    assert c.say(b"AT+SCON=O,XYZ,,,80,0\r") == INVALID
    assert c.say(b"AT+SCON=O,USN,127.0.0.1,,80,0\r") == INVALID  # both or neither
    assert c.say(b"AT+SCON=S,TSN,,,80,0\r") == OK  # stored only
    assert not c.m.sockets
    assert c.say(b"AT+SCON=?\r") == b"S,TSN,0.0.0.0,0,80,0\r\n" + OK


def test_smgmt_rejects_an_unused_id_and_a_non_number():
    c = joined()
    c.say(b"AT+SCON=O,USN,,,5000,0\r")
    assert c.say(b"AT+SMGMT=5\r") == INVALID  # no socket 5
    assert c.say(b"AT+SMGMT=x\r") == b"[ERROR: INVALID SCID]\r\n"
    assert sorted(c.m.sockets) == [0]


def test_frames_are_at_most_1460_bytes():
    c = joined()
    c.say(b"AT+SCON=O,USN,,,5000,0\r")
    data = bytes(range(256)) * 12  # 3072 bytes, binary
    c.m.received(0, data, PEER)
    out = c.take()
    h1, h2, h3 = b"{0,127.0.0.1,50000,1460}", b"{0,127.0.0.1,50000,1460}", b"{0,127.0.0.1,50000,152}"
    assert out == h1 + data[:1460] + b"\r\n" + h2 + data[1460:2920] + b"\r\n" + h3 + data[2920:] + b"\r\n"


def test_usn_learns_its_destination_and_ssend_needs_one():
    c = joined()
    c.say(b"AT+SCON=O,USN,,,5000,0\r")
    assert c.say(b"AT+SSEND=0,,,3\r") == INVALID  # has heard nobody yet
    c.m.received(0, b"hey", ("127.0.0.1", 41000))
    c.take()
    assert c.say(b"AT+SSEND=0,,,3\r") == b"[0,,,3]\r\n"
    assert c.say(b"abc") == OK
    assert c.net.sent()[-1] == (0, b"abc", ("127.0.0.1", 41000))
    # A given destination is printed in the prompt and sticks (4.1, 4.2).
    assert c.say(b"AT+SSEND=0,127.0.0.1,42000,2\r") == b"[0,127.0.0.1,42000,2]\r\n"
    assert c.say(b"xy") == OK
    assert c.say(b"AT+SSEND=0,,,1\r") == b"[0,,,1]\r\n"
    c.say(b"z")
    assert c.net.sent()[-1] == (0, b"z", ("127.0.0.1", 42000))


# --- SSEND (4.2-4.7) ---------------------------------------------------------------


def tcp_client(echo=False):
    c = joined(echo=echo)
    c.say(b"AT+SCON=O,TCN,127.0.0.1,5000,0,0\r")
    c.m.connected(0)
    c.wait(0.1)
    return c


def test_ssend_exact_exchange_with_echo():
    c = tcp_client(echo=True)
    assert c.say(b"AT+SSEND=0,,,5\r") == b"AT+SSEND=0,,,5\r\n[0,,,5]\r\n"  # 4.2
    assert c.say(b"Hello") == OK  # the payload is not echoed
    assert c.net.sent() == [(0, b"Hello", ("127.0.0.1", 5000))]


def test_ssend_prompt_forms_and_zero_size():
    c = tcp_client()
    assert c.say(b"AT+SSEND=0,,,5,3000\r") == b"[0,,,5,3000]\r\n"
    assert c.say(b"12345") == OK
    assert c.say(b"AT+SSEND=0,1.2.3.4,99,2\r") == b"[0,,,2]\r\n"  # TCP never shows the IP
    assert c.say(b"ab") == OK
    assert c.say(b"AT+SSEND=0,,,0\r") == b"[0,,,0]\r\n" + OK  # 0 accepted, nothing sent


@pytest.mark.parametrize(
    "cmd",
    [b"AT+SSEND=3,,,5\r", b"AT+SSEND=9,,,5\r", b"AT+SSEND=,,,5\r", b"AT+SSEND=0,,,\r",
     b"AT+SSEND=0,,,x\r", b"AT+SSEND=0,,,5,abc\r", b"AT+SSEND=0\r"],
)  # fmt: skip
def test_ssend_rejections_are_invalid_input(cmd):
    c = tcp_client()
    assert c.say(cmd) == INVALID


def test_ssend_on_a_listening_server_is_invalid_and_the_payload_becomes_commands():
    c = joined()
    c.say(b"AT+SCON=O,TSN,,,80,0\r")
    out = c.say(b"AT+SSEND=0,,,4\rAT\r\r")  # the host streams without waiting for the prompt (4.3)
    assert out == INVALID + OK


def test_ssend_large_payload_goes_out_in_1400_byte_chunks():
    c = tcp_client()
    data = bytes(range(256)) * 16  # 4096 bytes
    assert c.say(b"AT+SSEND=0,,,4096\r") == b"[0,,,4096]\r\n"
    out = b""
    for i in range(0, 4096, 1000):
        out += c.say(data[i : i + 1000])
    assert out == OK
    assert [len(s[1]) for s in c.net.sent()] == [1400, 1400, 1296]
    assert b"".join(s[1] for s in c.net.sent()) == data


def test_ssend_timeout_turns_the_incomplete_piece_into_command_text():
    c = tcp_client(echo=True)
    c.say(b"AT+SSEND=0,,,10\r")
    assert c.say(b"AT\r") == b""
    assert c.wait(9.0) == b""
    assert c.wait(1.02) == b"[ERROR]\r\nAT\r\n" + OK  # deadline len + 10 s (4.1, 4.5)
    assert c.net.sent() == []


def test_ssend_timeout_discards_completed_pieces_of_the_failing_chunk():
    c = tcp_client()
    c.say(b"AT+SSEND=0,,,3000\r")
    # Chunk 1 (1400) completes and is sent; chunk 2's first 1024-byte piece completes
    # but is discarded; the 5 bytes of its incomplete second piece become commands.
    assert c.say(b"p" * 1400 + b"q" * 1024 + b"AT\r\r\r") == b""
    assert c.wait(13.1) == b"[ERROR]\r\n" + OK
    assert [len(s[1]) for s in c.net.sent()] == [1400]


def test_ssend_timeout_argument_sets_the_deadline():
    c = tcp_client()
    c.say(b"AT+SSEND=0,,,10,500\r")
    assert c.wait(0.4) == b""
    assert c.wait(0.2) == b"[ERROR]\r\n"


def test_ssend_socket_vanishing_mid_transfer():
    c = tcp_client()
    c.say(b"AT+SSEND=0,,,10\r")
    c.say(b"12345")
    c.m.peer_closed(0)
    assert c.take() == b"\r\n[DISCONNECT 0]\r\n"
    assert c.say(b"67890") == b"[ERROR: INVALID SCID]\r\n"  # the rest is read and discarded (4.6)


def test_chaos_tcp_send_error_is_the_final_line():
    c = tcp_client()
    c.m.chaos.send_error = 1.0
    c.say(b"AT+SSEND=0,,,2\r")
    assert c.say(b"hi") == b"\r\n[TCP Send Error]\r\n"  # 1.5, 4.6


def test_chaos_ok_delay_holds_the_final_line_and_the_command_task():
    c = tcp_client()
    c.m.chaos.ok_delay = 2.0
    c.say(b"AT+SSEND=0,,,2\r")
    assert c.say(b"hiAT\r", 1.0) == b""
    assert c.wait(1.1) == OK + OK


def test_chaos_injection_at_each_point_of_an_ssend():
    c = tcp_client(echo=True)
    c.m.chaos.inject = True
    for ch in b"abc":
        c.m.received(0, bytes([ch]), ("127.0.0.1", 5000))
    assert c.take() == b""  # held back for the next SSEND
    assert c.say(b"AT+SSEND=0,,,2\r") == (
        b"AT+SSEND=0,,,2\r\n"  # the echo
        b"{0,127.0.0.1,5000,1}a\r\n"  # after the echo
        b"[0,,,2{0,127.0.0.1,5000,1}b\r\n]\r\n"  # between the two halves of the prompt
    )
    assert c.say(b"hi") == b"{0,127.0.0.1,5000,1}c\r\n" + OK  # between the payload and [OK]


def test_chaos_injection_without_echo_lands_before_and_inside_the_prompt():
    c = joined()
    c.say(b"AT+SCON=O,UCN,127.0.0.1,9000,0,0\r")
    c.m.chaos.inject = True
    c.m.received(0, b"abc", ("127.0.0.1", 9000))
    c.m.received(0, b"xyz", ("127.0.0.1", 9000))
    assert c.take() == b""  # held back for the next SSEND
    assert c.say(b"AT+SSEND=0,,,2\r") == (
        b"{0,127.0.0.1,9000,3}abc\r\n"  # where the echo would end
        b"[0,,,2{0,127.0.0.1,9000,3}xyz\r\n]\r\n"
    )
    assert c.say(b"hi") == OK  # nothing left to inject


def test_chaos_injection_releases_held_output_without_an_ssend():
    c = tcp_client()
    c.m.chaos.inject = True
    c.m.received(0, b"x", ("127.0.0.1", 5000))
    c.m.received(0, b"y", ("127.0.0.1", 5000))
    assert c.wait(0.1) == b""
    assert c.wait(0.2) == b"{0,127.0.0.1,5000,1}x\r\n{0,127.0.0.1,5000,1}y\r\n"  # order kept


# --- TCP servers (5.3) -------------------------------------------------------------


def test_single_connection_server_relistens_on_the_same_id():
    c = joined()
    assert c.say(b"AT+MEVTMSG=1\r") == OK
    assert c.say(b"AT+SCON=O,TSN,,,80,0\r") == b"\r\n[LISTEN 0]\r\n" + OK
    assert c.m.accepted(PEER, 80) == 0
    c.m.received(0, b"GET / HTTP/1.0\r\n\r\n", PEER)
    assert c.take() == b"\r\n[CONNECT 0]\r\n{0,127.0.0.1,50000,18}GET / HTTP/1.0\r\n\r\n\r\n"
    assert c.m.listener_sid(80) < 0  # no second client while this one is connected
    assert c.say(b"AT+SMGMT=?\r") == (
        b"Number of Sockets : 1 (SCID/Mode/Remote/Local/DataMode)\r\n0/TSN/127.0.0.1:50000/80/0\r\n" + OK
    )
    c.m.peer_closed(0)
    assert c.take() == b"\r\n[DISCONNECT 0]\r\n\r\n[LISTEN 0]\r\n"
    assert c.wait(5.0) == b""  # no housekeeping relisten in this mode
    assert c.say(b"AT+SMGMT=0\r") == OK + b"\r\n[DISCONNECT 0]\r\n"  # stops the re-listen loop
    assert ("unlisten", 80) in c.net.calls


def test_single_connection_server_without_mevtmsg_is_silent_when_listening():
    c = joined()
    assert c.say(b"AT+SCON=O,TSN,,,80,0\r") == OK
    c.m.accepted(PEER, 80)
    c.m.peer_closed(0)
    assert c.take() == b"\r\n[CONNECT 0]\r\n\r\n[DISCONNECT 0]\r\n"


def test_multi_connection_listener_migrates_to_the_lowest_free_id():
    c = joined()
    c.say(b"AT+MEVTMSG=1\r")
    assert c.say(b"AT+FSOCK=9,1\r") == OK
    assert c.say(b"AT+FSOCK=?\r") == b"5000,5000,5,100,0,0,0,0\r\n" + OK  # option 9 not shown
    c.say(b"AT+SCON=O,UCN,127.0.0.1,9000,0,0\r")  # id 0 taken by a UDP socket
    assert c.say(b"AT+SCON=O,TSN,,,80,0\r") == b"\r\n[LISTEN 1]\r\n" + OK
    assert c.m.accepted(PEER, 80) == 1
    assert c.take() == b"\r\n[CONNECT 1]\r\n"
    assert c.m.listener_sid(80) < 0  # gone until the housekeeping task runs
    assert c.wait(1.2) == b"\r\n[LISTEN 2]\r\n"  # about 1.1 s later, lowest free id
    assert c.m.accepted(("127.0.0.1", 50001), 80) == 2
    c.m.received(1, b"a", PEER)
    c.m.received(2, b"b", ("127.0.0.1", 50001))
    assert c.take() == b"\r\n[CONNECT 2]\r\n{1,127.0.0.1,50000,1}a\r\n{2,127.0.0.1,50001,1}b\r\n"
    c.m.peer_closed(1)
    assert c.take() == b"\r\n[DISCONNECT 1]\r\n"  # the id is simply freed
    assert c.wait(1.2) == b"\r\n[LISTEN 1]\r\n"  # and the next listener takes it
    assert c.m.prof["scon"] == "O,TSN,0.0.0.0,0,80,0"  # the internal SCON's side effect


def test_multi_connection_relisten_waits_for_an_idle_command_task():
    c = joined()
    c.say(b"AT+MEVTMSG=1\r")
    c.say(b"AT+FSOCK=9,1\r")
    c.say(b"AT+SCON=O,TSN,,,80,0\r")
    c.m.accepted(PEER, 80)
    c.take()
    assert c.say(b"AT+SSEND=0,,,4\r") == b"[0,,,4]\r\n"
    assert c.wait(3.0) == b""  # the SSEND waits for its payload: no relisten meanwhile
    assert c.say(b"data") == OK
    assert c.wait(1.2) == b"\r\n[LISTEN 1]\r\n"


def test_fsock_validation():
    c = joined()
    assert c.say(b"AT+FSOCK=1,100\r") == INVALID  # 0 or 2000-20000
    assert c.say(b"AT+FSOCK=1,3000\r") == OK
    assert c.say(b"AT+FSOCK=10,1\r") == INVALID
    assert c.say(b"AT+FSOCK=9\r") == INVALID


# --- system (6.4) ------------------------------------------------------------------


def test_mreset_closes_sockets_leaves_then_prints_the_banner():
    c = joined()
    c.say(b"AT+FSOCK=9,1\r")
    c.say(b"AT+SCON=O,USN,,,5000,0\r")
    assert c.say(b"AT+MRESET\r") == OK + b"\r\n[DISCONNECT 0]\r\n\r\n[Link-Down Event]\r\n"
    assert c.say(b"AT\r", 0.4) == b""  # the reset takes 500 ms; the ring is lost with it
    assert c.wait(0.2) == BANNER + b"\r\n"
    assert c.say(b"AT\r") == b"AT\r\n" + OK  # echo on again
    assert c.m.fsock9 == 0 and not c.m.joined  # RAM settings are gone


def test_hardware_reset_closes_sockets_silently_then_prints_the_banner():
    c = joined()
    c.say(b"AT+SCON=O,USN,,,5000,0\r")
    c.m.reset()
    assert c.take() == BANNER + b"\r\n"  # no [DISCONNECT 0]
    assert ("close", 0) in c.net.calls
    assert c.m.echo and not c.m.sockets


def test_mprof_save_keeps_settings_across_reset_and_mfdef_restores_factory():
    c = joined()
    c.say(b"AT+MPROF=S\r")  # echo off saved
    c.m.reset()
    assert c.take() == BANNER + b"\r\n"
    assert c.say(b"AT\r") == OK  # still no echo
    assert c.say(b"AT+MFDEF=X\r") == INVALID
    assert c.say(b"AT+MFDEF=FR\r", 1.0) == OK + BANNER + b"\r\n"
    assert c.say(b"AT\r") == b"AT\r\n" + OK


def test_mprof_listing():
    c = Core()
    c.say(b"AT+MECHO=0\r")
    out = c.say(b"AT+MPROF=VG\r")
    assert out.startswith(b"+WSET=0,WizFiAP,") and b"\r\n+MECHO=0\r\n" in out and out.endswith(OK)
    assert c.say(b"AT+MPROF=X\r") == INVALID


def test_uset_query_and_change_resets_at_the_new_rate():
    c = Core()
    c.say(b"AT+MECHO=0\r")
    assert c.say(b"AT+USET=?\r") == b"115200,N,8,1,N\r\n" + OK
    assert c.say(b"AT+USET=921600,N,8,1,HW\r") == OK
    assert c.wait(0.2) == BANNER + b"\r\n"
    assert ("uart", 921600, True) in c.net.calls
    assert c.say(b"AT+USET=?\r") == b"AT+USET=?\r\n921600,N,8,1,HW\r\n" + OK
    assert c.say(b"AT+USET=9600,N,7,1,N\r") == b"AT+USET=9600,N,7,1,N\r\n" + INVALID  # 7 bits need parity


def test_fdns_and_fping():
    c = Core()
    c.say(b"AT+MECHO=0\r")
    assert c.say(b"AT+FDNS=example.com,1000\r") == b"[ERROR]\r\n"  # not joined
    c.say(b"AT+WJOIN\r", 1.0)
    assert c.say(b"AT+FDNS=example.com,1000\r", 0.1) == b"127.0.0.1\r\n" + OK
    assert c.say(b"AT+FDNS=example.com\r") == INVALID  # the timeout is required
    assert c.say(b"AT+FPING=2,127.0.0.1\r", 0.1) == b"Ping Reply :   1 ms\r\n" * 2 + OK
    assert c.say(b"AT+FPING=51,127.0.0.1\r") == INVALID
    assert c.say(b"AT+FPING=1,example.com\r") == INVALID  # IP literal only


def test_link_down_and_the_ap_coming_back():
    c = joined()
    c.say(b"AT+SCON=O,USN,,,5000,0\r")
    c.m.ap_present = False
    c.m.link_down()
    assert c.take() == b"\r\n[DISCONNECT 0]\r\n\r\n[Link-Down Event]\r\n"
    assert c.say(b"AT+WJOIN\r", 1.0).endswith(b"Failed to join: WizFiAP\r\n[ERROR]\r\n")
    c.m.ap_present = True
    c.m.rejoin()
    assert c.take() == (
        b"Joining : WizFiAP\r\nSuccessfully joined : WizFiAP\r\n"
        b"\r\n[Link-Up Event]\r\n  IP Addr    : 127.0.0.1\r\n  Gateway    : 127.0.0.1\r\n"
    )


# --- data mode (5.7) ---------------------------------------------------------------


def test_data_mode_client_escape_and_sdata():
    c = joined()
    assert c.say(b"AT+SDATA\r") == b"[ERROR: Mode Status]\r\n"
    assert c.say(b"AT+SCON=O,TCN,127.0.0.1,5000,0,1\r") == b""
    c.m.connected(0)  # data mode begins just before [CONNECT 0]
    assert c.wait(0.1) == b"\r\n[CONNECT 0]\r\n" + OK
    assert c.say(b"hello AT\r", 0.05) == b""  # data now, not a command; not echoed
    assert c.net.sent() == []
    assert c.wait(0.06) == b""  # flushed by the 100 ms timer (FSOCK option 4)
    assert c.net.sent() == [(0, b"hello AT\r", ("127.0.0.1", 5000))]
    c.m.received(0, b"raw", ("127.0.0.1", 5000))
    assert c.take() == b"raw"  # no header, no trailer
    assert c.say(b"++x", 0.2) == b""  # a '+' run broken by another byte is data
    assert c.net.sent()[-1][1] == b"++x"
    assert c.say(b"+++", 0.5) == b""
    assert c.wait(0.6) == OK  # 1 s of silence after +++: command mode, socket open
    assert c.say(b"AT\r") == OK
    c.m.received(0, b"framed", ("127.0.0.1", 5000))
    assert c.take() == b"{0,127.0.0.1,5000,6}framed\r\n"  # frames while in command mode
    assert c.say(b"AT+SMGMT=?\r").split(b"\r\n")[1] == b"0/TCN/127.0.0.1:5000/%d/1" % c.m.sockets[0].local_port
    assert c.say(b"AT+SCON=O,USN,,,6000,0\r") == b"[ERROR: Mode Status]\r\n"
    assert c.say(b"AT+SDATA\r") == OK
    c.m.peer_closed(0)
    assert c.take() == b"\r\n[DISCONNECT 0]\r\n"
    assert c.say(b"AT\r") == OK  # back in command mode


def test_data_mode_rules():
    c = joined()
    c.say(b"AT+SCON=O,USN,,,5000,0\r")
    assert c.say(b"AT+SCON=O,UCN,127.0.0.1,9000,0,1\r") == INVALID  # only as the only socket
    c.say(b"AT+SMGMT=0\r")
    assert c.say(b"AT+SCON=O,UCN,127.0.0.1,9000,0,1\r") == b"\r\n[CONNECT 0]\r\n" + OK
    c.say(b"x" * 3000)
    assert [len(s[1]) for s in c.net.sent()] == [1460, 1460]
    c.wait(0.2)
    assert [len(s[1]) for s in c.net.sent()] == [1460, 1460, 80]


def test_data_mode_server_discards_input_until_a_client_comes():
    c = joined()
    assert c.say(b"AT+SCON=O,TSN,,,80,1\r") == OK
    assert c.say(b"AT\r", 0.2) == OK  # still command mode while listening
    c.m.accepted(PEER, 80)
    assert c.take() == b"\r\n[CONNECT 0]\r\n"
    c.say(b"GET", 0.2)
    assert c.net.sent() == [(0, b"GET", PEER)]
    c.m.peer_closed(0)
    assert c.take() == b"\r\n[DISCONNECT 0]\r\n"
    assert c.say(b"AT\r") == OK  # command mode again, re-listening on id 0
    c.m.accepted(PEER, 80)
    c.m.received(0, b"again", PEER)
    assert c.take() == b"\r\n[CONNECT 0]\r\nagain"


# --- service sockets (2.4, 5.1) ----------------------------------------------------


def test_service_socket_opens_after_link_up_and_at_boot():
    c = Core()
    c.say(b"AT+MECHO=0\r")
    assert c.say(b"AT+SCON=S,USN,,,5000,0\r") == OK  # stored only
    assert not c.m.sockets
    assert c.say(b"AT+WJOIN\r", 1.0).endswith(b"  Gateway    : 127.0.0.1\r\n[OK]\r\n\r\n[CONNECT 0]\r\n")
    assert c.say(b"AT+MPROF=S\r") == OK
    c.m.reset()
    assert c.wait(1.0) == BANNER + b"\r\n" + (
        b"Joining : WizFiAP\r\nSuccessfully joined : WizFiAP\r\n"
        b"\r\n[Link-Up Event]\r\n  IP Addr    : 127.0.0.1\r\n  Gateway    : 127.0.0.1\r\n"
        b"\r\n[CONNECT 0]\r\n"  # no [OK]: no command was issued
    )
    assert ("udp", 0, 5000, None) in c.net.calls

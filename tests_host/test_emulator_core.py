"""The emulator's module model, byte for byte against the protocol reference's exchanges."""

import pytest
from emulator.core import BANNER, Module


class Net:
    """Records what the module asks of the network."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name,) + args)


def module(**kw):
    m = Module(Net(), **kw)
    assert bytes(m.out) == BANNER + b"\r\n"  # the banner, first output after any reset
    m.out.clear()
    return m


def say(m, text, now=None):
    m.feed(text)
    if now is not None:
        m.tick(now)
    out = bytes(m.out)
    m.out.clear()
    return out


def joined(**kw):
    m = module(**kw)
    say(m, b"AT+MECHO=0\r")
    say(m, b"AT+WJOIN\r", now=1.0)
    return m


def test_echo_at_boot_and_echo_off():
    m = module()
    assert say(m, b"AT\r") == b"AT\r\n[OK]\r\n"  # 41 54 0D 0A 5B 4F 4B 5D 0D 0A (reference 1.4)
    assert say(m, b"AT+MECHO=0\r") == b"AT+MECHO=0\r\n[OK]\r\n"
    assert say(m, b"AT\r") == b"[OK]\r\n"
    assert say(m, b"at+mecho=?\r") == b"0\r\n[OK]\r\n"  # case-insensitive


def test_prefix_matching_and_invalid_input():
    m = module()
    say(m, b"AT+MECHO=0\r")
    assert say(m, b"AT+WSTATUS\r").startswith(b"IF/SSID/")  # works as WSTAT
    assert say(m, b"AT+SMGMT\r") == b"[ERROR: INVALID INPUT]\r\n"  # '=' is part of the name
    assert say(m, b"AT+MVER\r") == b"[ERROR: INVALID INPUT]\r\n"
    assert say(m, b"HELLO\r") == b"[ERROR: INVALID INPUT]\r\n"
    assert say(m, b"\r") == b""  # an empty line: no response


def test_join_exchange():
    m = module()
    say(m, b"AT+MECHO=0\r")
    assert say(m, b"AT+WJOIN\r", now=1.0) == (
        b"Joining : WizFiAP\r\nSuccessfully joined : WizFiAP\r\n"
        b"\r\n[Link-Up Event]\r\n  IP Addr    : 127.0.0.1\r\n  Gateway    : 127.0.0.1\r\n[OK]\r\n"
    )


def test_join_with_the_wrong_key_fails_three_times():
    m = module()
    say(m, b"AT+MECHO=0\r")
    say(m, b"AT+WSEC=0,,wrongkey\r")
    out = say(m, b"AT+WJOIN\r", now=1.0)
    assert out == b"Joining : WizFiAP\r\nFailed to join: WizFiAP\r\n" * 3 + b"[ERROR]\r\n"


def test_udp_connect_comes_before_ok_and_failed_tcp_connect_shows_only_disconnect():
    m = joined()
    assert say(m, b"AT+SCON=O,UCN,127.0.0.1,9000,0,0\r") == b"\r\n[CONNECT 0]\r\n[OK]\r\n"
    assert say(m, b"AT+SCON=O,TCN,127.0.0.1,9,0,0\r", now=2.0) == b"[OK]\r\n"
    m.connect_failed(1)
    assert bytes(m.out) == b"\r\n[DISCONNECT 1]\r\n"


def test_ssend_exchange_and_rejections():
    m = joined()
    say(m, b"AT+SCON=O,TCN,127.0.0.1,5000,0,0\r", now=2.0)
    m.connected(0)
    m.out.clear()
    assert say(m, b"AT+SSEND=0,,,5\r") == b"[0,,,5]\r\n"
    assert say(m, b"Hello") == b"[OK]\r\n"
    assert ("send", 0, b"Hello", ("127.0.0.1", 5000)) in m.net.calls
    assert say(m, b"AT+SSEND=3,,,5\r") == b"[ERROR: INVALID INPUT]\r\n"  # closed id
    assert say(m, b"AT+SSEND=0,,,3,3000\r") == b"[0,,,3,3000]\r\n"


def test_frames_and_the_multi_connection_listener():
    m = joined()
    say(m, b"AT+MEVTMSG=1\r")
    say(m, b"AT+FSOCK=9,1\r")
    assert say(m, b"AT+SCON=O,TSN,,,80,0\r") == b"\r\n[LISTEN 0]\r\n[OK]\r\n"
    assert m.accepted(("127.0.0.1", 50000)) == 0
    m.received(0, b"GET", ("127.0.0.1", 50000))
    assert bytes(m.out) == b"\r\n[CONNECT 0]\r\n{0,127.0.0.1,50000,3}GET\r\n"
    m.out.clear()
    assert m.listener_sid() < 0  # gone until the housekeeping task runs
    assert say(m, b"", now=10.0) == b"\r\n[LISTEN 1]\r\n"
    m.received(0, b"x" * 3000, ("127.0.0.1", 50000))
    assert bytes(m.out).count(b"{0,127.0.0.1,50000,1460}") == 2  # frames of at most 1460 bytes


@pytest.mark.parametrize("arg,out", [(b"0", b"[OK]\r\n\r\n[DISCONNECT 0]\r\n"), (b"5", b"[ERROR: INVALID INPUT]\r\n"),
                                     (b"x", b"[ERROR: INVALID SCID]\r\n")])  # fmt: skip
def test_smgmt_close(arg, out):
    m = joined()
    say(m, b"AT+SCON=O,USN,,,5000,0\r")
    assert say(m, b"AT+SMGMT=" + arg + b"\r") == out


def test_chaos_injection_lands_inside_the_prompt():
    m = joined()
    say(m, b"AT+SCON=O,UCN,127.0.0.1,9000,0,0\r")
    m.chaos.inject = True
    m.received(0, b"abc", ("127.0.0.1", 9000))
    m.received(0, b"xyz", ("127.0.0.1", 9000))
    assert bytes(m.out) == b""  # held back for the next SSEND
    out = say(m, b"AT+SSEND=0,,,2\r")
    assert out == b"{0,127.0.0.1,9000,3}abc\r\n[0,,,2{0,127.0.0.1,9000,3}xyz\r\n]\r\n"
    assert say(m, b"hi") == b"[OK]\r\n"
    for byte in b"def":
        m.received(0, bytes([byte]), ("127.0.0.1", 9000))
    say(m, b"AT+SSEND=0,,,2\r")
    assert say(m, b"hi") == b"{0,127.0.0.1,9000,1}f\r\n[OK]\r\n"  # between the payload and [OK]


def test_reset_closes_everything_and_prints_the_banner():
    m = joined()
    say(m, b"AT+SCON=O,USN,,,5000,0\r")
    m.reset()
    assert bytes(m.out) == BANNER + b"\r\n"
    assert ("close", 0) in m.net.calls
    assert m.echo and not m.sockets

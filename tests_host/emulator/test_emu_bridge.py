"""The emulator end to end: AT over its pty, real CPython clients and servers on
127.0.0.1 through the bridge, the control port, the transcript, flow control."""

import ast
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request

import pytest
from emu_support import Running, free_port
from emulator.bridge import HOST_RX, OUT_HIGH_WATER

BANNER = b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def start(joined=True, **kw):
    kw.setdefault("baud", 0)
    r = Running(**kw)
    r.expect(BANNER)
    r.at(b"AT+MECHO=0")
    if joined:
        r.at(b"AT+WJOIN")
    return r


@pytest.fixture
def module():
    port = free_port()
    udp = {p: free_port(socket.SOCK_DGRAM) for p in (5000, 5001)}  # tests may run in parallel
    r = start(ports={80: port, **udp}, control=0)
    r.http_port = port
    yield r
    r.close()


def control(r, request):
    with socket.create_connection(("127.0.0.1", r.emu.control_port), timeout=5) as s:
        s.sendall(json.dumps(request).encode() + b"\n")
        return json.loads(s.makefile().readline())


def read_frame(r):
    """One {sid,ip,port,len} frame from the pty: (sid, ip, port, payload)."""
    r.expect(b"{")
    head = r.expect(b"}")[:-1].split(b",")
    n = int(head[3])
    while len(r.buf) < n + 2:
        r.read_some(5)
    payload, trailer, r.buf = r.buf[:n], r.buf[n : n + 2], r.buf[n + 2 :]
    assert trailer == b"\r\n"
    return int(head[0], 16), head[1].decode(), int(head[2]), payload


def ssend(r, sid, data):
    r.send(b"AT+SSEND=%d,,,%d\r" % (sid, len(data)))
    r.expect(b"[%d,,,%d]\r\n" % (sid, len(data)))
    r.send(data)
    r.expect(b"[OK]\r\n")


@pytest.mark.timeout(20)
def test_plain_client_exchanges_data_with_a_module_server(module):
    assert module.at(b"AT+SCON=O,TSN,,,80,0") == b"[OK]\r\n"
    with socket.create_connection(("127.0.0.1", module.http_port), timeout=5) as client:
        module.expect(b"\r\n[CONNECT 0]\r\n")
        client.sendall(b"ping \x00\xff{0,1,2,3}")
        sid, ip, port, payload = read_frame(module)
        assert (sid, ip, port, payload) == (0, "127.0.0.1", client.getsockname()[1], b"ping \x00\xff{0,1,2,3}")
        big = os.urandom(5000)
        client.sendall(big)
        got = b""
        while len(got) < len(big):
            sid, _, _, payload = read_frame(module)
            assert sid == 0 and len(payload) <= 1460
            got += payload
        assert got == big
        ssend(module, 0, b"pong")
        assert client.recv(10) == b"pong"
        module.at(b"AT+SMGMT=0")
        module.expect(b"[DISCONNECT 0]\r\n")
        assert client.recv(10) == b""


@pytest.mark.timeout(20)
def test_urllib_reaches_the_module_server_and_the_listener_moves(module):
    module.at(b"AT+MEVTMSG=1")
    module.at(b"AT+FSOCK=9,1")
    assert module.at(b"AT+SCON=O,TSN,,,80,0") == b"\r\n[LISTEN 0]\r\n[OK]\r\n"
    result = {}

    def fetch():
        url = "http://127.0.0.1:%d/hello" % module.http_port
        result["body"] = urllib.request.urlopen(url, timeout=10).read()

    thread = threading.Thread(target=fetch)
    thread.start()
    module.expect(b"[CONNECT 0]\r\n")
    sid, _, _, request = read_frame(module)
    assert sid == 0 and request.startswith(b"GET /hello HTTP/1.1\r\n") and request.endswith(b"\r\n\r\n")
    ssend(module, 0, b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    module.expect(b"\r\n[DISCONNECT 0]\r\n")  # urllib closes once it has the body
    thread.join(10)
    assert result["body"] == b"hello"
    module.expect(b"\r\n[LISTEN 0]\r\n", timeout=3)  # the housekeeping task re-listened


@pytest.mark.timeout(20)
def test_multi_connection_clients_get_their_own_ids(module):
    module.at(b"AT+FSOCK=9,1")
    module.at(b"AT+SCON=O,TSN,,,80,0")
    a = socket.create_connection(("127.0.0.1", module.http_port), timeout=5)
    module.expect(b"[CONNECT 0]\r\n")
    b = socket.create_connection(("127.0.0.1", module.http_port), timeout=5)  # waits in the backlog
    module.expect(b"[CONNECT 1]\r\n", timeout=3)  # once the listener has moved to id 1
    a.sendall(b"A")
    b.sendall(b"B")
    frames = {read_frame(module)[::3] for _ in range(2)}
    assert frames == {(0, b"A"), (1, b"B")}
    ssend(module, 1, b"to b")
    assert b.recv(10) == b"to b"
    a.close()
    module.expect(b"[DISCONNECT 0]\r\n")
    b.close()
    module.expect(b"[DISCONNECT 1]\r\n")


@pytest.mark.timeout(20)
def test_module_tcp_client_reaches_a_cpython_server(module):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    module.send(b"AT+SCON=O,TCN,127.0.0.1,%d,0,0\r" % port)
    conn, _ = server.accept()
    got = module.expect(b"[OK]\r\n")
    if b"[CONNECT 0]" not in got:
        module.expect(b"\r\n[CONNECT 0]\r\n")
    ssend(module, 0, b"hello server")
    assert conn.recv(100) == b"hello server"
    conn.sendall(b"hello module")
    assert read_frame(module) == (0, "127.0.0.1", port, b"hello module")
    conn.close()
    module.expect(b"\r\n[DISCONNECT 0]\r\n")
    server.close()
    # A refused connect: only [DISCONNECT n], never [CONNECT n].
    module.send(b"AT+SCON=O,TCN,127.0.0.1,%d,0,0\r" % port)
    out = module.expect(b"[DISCONNECT 0]\r\n")
    module.read_some(0.2)
    assert b"[CONNECT" not in out + module.buf


@pytest.mark.timeout(20)
def test_udp_both_ways(module):
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    port = peer.getsockname()[1]
    assert module.at(b"AT+SCON=O,UCN,127.0.0.1,%d,0,0" % port) == b"\r\n[CONNECT 0]\r\n[OK]\r\n"
    ssend(module, 0, b"datagram")
    data, addr = peer.recvfrom(100)
    assert data == b"datagram"
    peer.sendto(b"reply", addr)
    assert read_frame(module) == (0, "127.0.0.1", port, b"reply")
    peer.close()


@pytest.mark.timeout(20)
def test_control_port_reset_link_down_chaos_and_stats(module):
    reply = control(module, {"op": "stats"})
    assert reply["ok"] and reply["stats"]["sockets_open"] == 0 and reply["stats"]["commands"] >= 2
    module.at(b"AT+SCON=O,USN,,,5000,0")
    reply = control(module, {"op": "link_down", "rejoin_after": 0.5})
    module.expect(b"\r\n[DISCONNECT 0]\r\n\r\n[Link-Down Event]\r\n")
    module.send(b"AT+WJOIN\r")
    assert module.expect(b"[ERROR]\r\n").count(b"Failed to join: WizFiAP") == 3  # the AP is away
    time.sleep(0.5)
    assert module.at(b"AT+WJOIN").endswith(b"  Gateway    : 127.0.0.1\r\n[OK]\r\n")
    reply = control(module, {"op": "chaos", "send_error": 1.0})
    assert reply["ok"]
    module.at(b"AT+SCON=O,USN,127.0.0.1,9,5001,0")
    module.send(b"AT+SSEND=0,,,2\r")
    module.expect(b"[0,,,2]\r\n")
    module.send(b"hi")
    module.expect(b"\r\n[TCP Send Error]\r\n")
    control(module, {"op": "chaos", "send_error": 0, "ok_delay": 0.3})
    module.send(b"AT+SSEND=0,,,2\r")
    module.expect(b"[0,,,2]\r\n")
    t = time.monotonic()
    module.send(b"hi")
    module.expect(b"[OK]\r\n")
    assert time.monotonic() - t >= 0.25
    reply = control(module, {"op": "reset"})
    assert reply["stats"]["resets"] == 1
    module.expect(BANNER)
    module.send(b"AT\r")
    assert module.expect(b"[OK]\r\n") == b"AT\r\n[OK]\r\n"  # echo is back on after a reset
    stats = control(module, {"op": "stats"})["stats"]
    assert stats["ssend"] == 2 and stats["sockets_open"] == 0
    assert stats["bytes_host_to_module"] > 0 and stats["bytes_module_to_host"] > 0
    assert not control(module, {"op": "nonsense"})["ok"]


@pytest.mark.timeout(20)
def test_chaos_injection_and_splitting_end_to_end():
    r = start(control=0, split=True, seed=3)
    try:
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        port = peer.getsockname()[1]
        r.at(b"AT+SCON=O,UCN,127.0.0.1,%d,0,0" % port)
        control(r, {"op": "chaos", "inject": True})
        for i in range(3):
            peer.sendto(b"f%d" % i, ("127.0.0.1", r.in_loop(lambda: r.emu.net.conns[0][1].get_extra_info("sockname")[1])))
        time.sleep(0.05)  # held (for up to 0.25 s) for the next SSEND
        r.send(b"AT+SSEND=0,,,2\r")
        out = r.expect(b"]\r\n")
        r.send(b"hi")
        out += r.expect(b"[OK]\r\n")
        assert out.count(b"{0,127.0.0.1,%d,2}f" % port) == 3
        assert b"[0,,,2{0,127.0.0.1" in out  # one landed inside the prompt
        peer.close()
    finally:
        r.close()


@pytest.mark.timeout(20)
def test_transcript_is_parsable(tmp_path):
    path = tmp_path / "transcript.log"
    r = start(joined=False, transcript=str(path))
    try:
        r.at(b"AT+MINFO")
    finally:
        r.close()
    sent = {">": b"", "<": b""}
    last = 0.0
    for line in path.read_text().splitlines():
        stamp, arrow, data = line.split(" ", 2)
        assert float(stamp) >= last and arrow in sent
        last = float(stamp)
        sent[arrow] += ast.literal_eval(data)
    assert sent[">"] == b"AT+MECHO=0\rAT+MINFO\r"
    assert sent["<"] == BANNER + b"AT+MECHO=0\r\n[OK]\r\nFW version/HW version\r\n1.0.5.2/WizFi250 Rev 1.0\r\n[OK]\r\n"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("flow", [False, True])
def test_receive_ring_overflows_without_flow_control_and_holds_with_it(flow):
    r = start(joined=False, flow=flow, control=0)
    try:
        r.send(b"AT+WJOIN\r" + b"A" * 3000 + b"\rAT\r")  # the command task is busy joining
        r.expect(b"[OK]\r\n")  # the join
        stats = control(r, {"op": "stats"})["stats"]
        if flow:
            # RTS held the host back: nothing lost, the long line and AT follow.
            assert stats["rx_dropped"] == 0
            assert r.expect(b"[OK]\r\n") == b"[ERROR: INVALID INPUT]\r\n[OK]\r\n"
        else:
            # Unpaced, the whole write lands at once: the ring keeps 2048 bytes, the
            # rest (including the CR and AT) is gone.
            assert stats["rx_dropped"] == 3000 + 4 - 2048
            r.read_some(0.2)
            assert r.buf == b""
            r.send(b"\rAT\r")
            assert r.expect(b"[OK]\r\n") == b"[ERROR: INVALID INPUT]\r\n[OK]\r\n"
    finally:
        r.close()


@pytest.mark.timeout(30)
def test_with_flow_a_host_that_stops_reading_holds_the_module_and_its_peer():
    # RTS both ways: the module writes no more while the host leaves HOST_RX bytes unread,
    # and reads no more from its peers while OUT_HIGH_WATER bytes wait for the UART (its
    # TCP window), so a fast peer waits in TCP. The pty alone took 20 KB and more.
    r = start(flow=True, baud=921600)
    server = socket.create_server(("127.0.0.1", 0))
    try:
        r.send(b"AT+SCON=O,TCN,127.0.0.1,%d,0,0\r" % server.getsockname()[1])
        conn, _ = server.accept()
        if b"[CONNECT 0]" not in r.expect(b"[OK]\r\n"):
            r.expect(b"\r\n[CONNECT 0]\r\n")
        data = os.urandom(64000)
        sender = threading.Thread(target=conn.sendall, args=(data,))
        sender.start()
        time.sleep(0.5)  # the host reads nothing: 46 KB of line time
        unread = struct.unpack("i", fcntl.ioctl(r.fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        assert len(r.buf) + unread <= HOST_RX + 64, unread  # a pass's worth may be under way
        assert r.in_loop(r.emu.backlog) <= OUT_HIGH_WATER + 1460 + 64
        got = b""
        while len(got) < len(data):  # then everything comes, in order
            got += read_frame(r)[3]
        assert got == data
        sender.join(5)
        conn.close()
    finally:
        server.close()
        r.close()


@pytest.mark.timeout(20)
def test_tcp_serial_port():
    r = start(joined=False, tcp_serial=0)
    try:
        with socket.create_connection(("127.0.0.1", r.emu.tcp_serial_port), timeout=5) as s:
            time.sleep(0.05)
            s.sendall(b"AT+MINFO\r")
            got = b""
            while not got.endswith(b"[OK]\r\n"):
                got += s.recv(100)
            assert got == b"FW version/HW version\r\n1.0.5.2/WizFi250 Rev 1.0\r\n[OK]\r\n"
    finally:
        r.close()


@pytest.mark.timeout(20)
def test_pacing_at_115200_is_within_5_percent():
    r = start(joined=False, baud=115200)
    try:
        n = 5760  # half a second at 11520 bytes/s
        t = time.monotonic()
        r.send(b"X" * n + b"\r")
        r.expect(b"[ERROR: INVALID INPUT]\r\n")
        rate = (n + 1) / (time.monotonic() - t - 24 / 11520)
        assert abs(rate / 11520 - 1) < 0.05, rate / 11520
    finally:
        r.close()


@pytest.mark.timeout(20)
def test_command_line_wrapper(tmp_path):
    link = tmp_path / "tty"
    proc = subprocess.Popen([os.path.join(ROOT, "tools", "emulate"), "--baud", "0", "--control", "0",
                             "--link", str(link)], stdout=subprocess.PIPE)  # fmt: skip
    try:
        lines = [proc.stdout.readline().decode().split() for _ in range(3)]
        assert lines[0][0] == "serial" and lines[0][1].startswith("/dev/pts/")
        assert lines[1][0] == "control" and int(lines[1][1]) > 0
        assert lines[2] == ["ready"]
        assert os.path.realpath(link) == lines[0][1]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(5) == 0
        assert not os.path.lexists(link)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(20)
def test_pacing_module_to_host_at_115200_is_within_5_percent():
    port = free_port(socket.SOCK_DGRAM)
    r = start(baud=115200, ports={5000: port})
    try:
        r.at(b"AT+SCON=O,USN,,,5000,0")
        time.sleep(0.05)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(4):
                s.sendto(b"Y" * 1400, ("127.0.0.1", port))
        total = 4 * (len(b"{0,127.0.0.1,00000,1400}") + 1402)
        r.read_some(2)
        first, got0 = time.monotonic(), len(r.buf)
        while len(r.buf) < total:
            r.read_some(2)
        rate = (len(r.buf) - got0) / (time.monotonic() - first)
        assert abs(rate / 11520 - 1) < 0.05, rate / 11520
    finally:
        r.close()


def test_command_line_options_map_onto_the_config():
    from emulator.__main__ import config_from, parse_args

    cfg = config_from(parse_args(["--baud", "921600", "--flow", "--map", "80:8080", "--map", "5000:15000",
                                  "--ap", "Lab:secret123", "--chaos-inject", "--chaos-ok-delay", "1.5",
                                  "--chaos-send-error", "0.25", "--chaos-split", "--seed", "7",
                                  "--tcp-serial", "0", "--control", "0"]))  # fmt: skip
    assert (cfg.baud, cfg.flow, cfg.ports, cfg.ap) == (921600, True, {80: 8080, 5000: 15000}, ("Lab", "secret123"))
    assert (cfg.inject, cfg.ok_delay, cfg.send_error, cfg.split, cfg.seed) == (True, 1.5, 0.25, True, 7)
    assert (cfg.tcp_serial, cfg.control) == (0, 0)
    default = config_from(parse_args([]))
    assert (default.baud, default.ap, default.control, default.flow) == (115200, ("WizFiAP", "12345678"), None, False)


@pytest.mark.timeout(30)
def test_transcript_keeps_the_wifi_key_out_even_split_over_writes(tmp_path):
    log = tmp_path / "transcript.log"
    running = Running(baud=0, transcript=str(log))
    try:
        running.expect(b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n")
        running.at(b"AT+WSEC=0,WPA2,sekrit-one")
        for piece in (b"AT+WSEC=0,WP", b"A2,sek", b"rit-two\r"):  # the host's writes can split it anywhere
            running.send(piece)
            running.in_loop(lambda: None)
        running.expect(b"[OK]\r\n")
        running.at(b"AT+WSET=0,sekrit-ssid")
    finally:
        running.close()
    text = log.read_text()
    assert "sekrit-one" not in text and "rit-two" not in text and "sek'" not in text
    assert "AT+WSEC=0,WPA2,**********" in text  # the rest of the line is kept, byte for byte
    assert "sekrit-ssid" in text  # only the key is masked


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
def test_emulate_refuses_a_host_port_another_program_holds(kind):
    # Else the module's listen failed and retried for ever while the URL tools/run
    # printed reached the other program (or the UDP echo went silent).
    other = socket.socket(socket.AF_INET, kind)
    other.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        other.listen()
    port = other.getsockname()[1]
    try:
        tools = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")
        run = subprocess.run([sys.executable, "-m", "emulator", "--map", "7:%d" % port], cwd=tools,
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    finally:
        other.close()
    assert run.returncode == 1 and "127.0.0.1:%d (for module port 7) is in use" % port in run.stderr

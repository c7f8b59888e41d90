"""The emulator end to end: AT over its pty, real clients on 127.0.0.1 through the bridge."""

import json
import os
import socket
import threading
import urllib.request

import pytest
from emu_support import Running, free_port


@pytest.fixture
def module():
    port = free_port()
    running = Running(baud=0, ports={80: port}, control=0)
    running.http_port = port
    running.expect(b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n")
    running.at(b"AT+MECHO=0")
    running.at(b"AT+MEVTMSG=1")
    running.at(b"AT+FSOCK=9,1")
    running.at(b"AT+WJOIN")
    yield running
    running.close()


@pytest.mark.timeout(30)
def test_plain_client_exchanges_data_with_a_module_server(module):
    module.at(b"AT+SCON=O,TSN,,,80,0")
    with socket.create_connection(("127.0.0.1", module.http_port), timeout=5) as client:
        module.expect(b"[CONNECT 0]\r\n")
        client.sendall(b"ping")
        assert module.expect(b"{0,127.0.0.1,").endswith(b"{0,127.0.0.1,")
        header = module.expect(b"}")
        assert header.endswith(b",4}")
        assert module.expect(b"ping\r\n") == b"ping\r\n"
        module.send(b"AT+SSEND=0,,,4\r")
        module.expect(b"[0,,,4]\r\n")
        module.send(b"pong")
        module.expect(b"[OK]\r\n")
        assert client.recv(10) == b"pong"
        module.at(b"AT+SMGMT=0")
        module.expect(b"[DISCONNECT 0]\r\n")
        assert client.recv(10) == b""


@pytest.mark.timeout(30)
def test_urllib_reaches_the_module_server_and_the_listener_moves(module):
    module.at(b"AT+SCON=O,TSN,,,80,0")
    result = {}

    def fetch():
        url = "http://127.0.0.1:%d/hello" % module.http_port
        result["body"] = urllib.request.urlopen(url, timeout=10).read()

    thread = threading.Thread(target=fetch)
    thread.start()
    module.expect(b"[CONNECT 0]\r\n")
    module.expect(b"\r\n\r\n\r\n")  # the request's blank line, then the frame trailer
    body = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    module.send(b"AT+SSEND=0,,,%d\r" % len(body))
    module.expect(b"]\r\n")
    module.send(body)
    module.at(b"AT+SMGMT=0")
    thread.join(10)
    assert result["body"] == b"hello"
    module.expect(b"[LISTEN ", timeout=3)  # the housekeeping task re-listened


@pytest.mark.timeout(30)
def test_control_port_resets_the_module(module):
    with socket.create_connection(("127.0.0.1", module.emu.control_port), timeout=5) as control:
        control.sendall(b'{"op": "reset"}\n')
        reply = json.loads(control.makefile().readline())
    assert reply["ok"] and reply["stats"]["resets"] == 1
    module.expect(b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n")
    module.send(b"AT\r")
    assert module.expect(b"[OK]\r\n") == b"AT\r\n[OK]\r\n"  # echo is back on after a reset


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
    import subprocess
    import sys

    other = socket.socket(socket.AF_INET, kind)
    other.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        other.listen()
    port = other.getsockname()[1]
    try:
        tools = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
        run = subprocess.run([sys.executable, "-m", "emulator", "--map", "7:%d" % port], cwd=tools,
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    finally:
        other.close()
    assert run.returncode == 1 and "127.0.0.1:%d (for module port 7) is in use" % port in run.stderr

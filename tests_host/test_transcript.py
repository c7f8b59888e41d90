"""Field debugging: the firmware's UART transcript and tools/replay.

A user with a field problem gets the log with one request and the vendor
replays it: the recording must be faithful (the same bytes the emulator saw
on its side of the UART), off unless configured, and the replay must show
what the driver saw when those bytes arrived.
"""

import asyncio
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from check import errors
from fakeuart import Module, settle
from test_firmware import Firmware

import main
import replay
from wizfi250.engine import Engine
from wizfi250.transcript import Recording, Transcript

pytestmark = pytest.mark.timeout(120)


def streams(chunks):
    """Both directions joined: (host to module, module to host)."""
    return tuple(b"".join(d for _, arrow, d in chunks if arrow == a) for a in ">< ")[:2]


def test_replay_of_a_recorded_session_reproduces_what_the_engine_saw():
    """Round trip: an engine session recorded, written out, read back, replayed."""
    output = (
        b"\r\n[CONNECT 0]\r\n{0,10.0.0.2,50000,12}GET / HTTP\r\n\r\n[CONNECT 1]\r\n"
        b"{1,10.0.0.3,50001,5}\r\n[OK\r\n{9,bad}\r\n"
        b"{0,10.0.0.2,50000,8}\x00\xff{}[OK]\r\n" + b"x" * 300 + b"\r\n"
        b"\r\n[DISCONNECT 1]\r\n\r\n[CONNECT 2]\r\n{2,10.0.0.4,7,3}abc\r\n"
    )  # fmt: skip

    async def session():
        module = Module(cut=lambda n: 7)  # the module's output in 7-byte reads
        module.replies[b"AT"] = b"[OK]\r\n"
        transcript = Transcript(4096)
        engine = Engine(Recording(module.uart, transcript), rx_size=1024, socket_rx=512)
        events = []
        engine.on_event = lambda kind, arg: events.append((replay.KIND_NAMES[kind], arg))
        engine.start()
        await engine.command(b"AT")
        module.uart.emit(output)
        while module.uart.pending():
            await settle()
        await settle()
        payloads = {sid: sock.rx.read() for sid, sock in enumerate(engine.table) if sock is not None and sock.rx}
        engine.stop()
        return list(transcript.lines()), events, payloads, errors(engine.parser)

    lines, events, payloads, rejected = asyncio.run(session())
    chunks = replay.read_transcript(lines)
    assert streams(chunks) == (b"AT\r", b"[OK]\r\n" + output)
    seen = replay.replay(chunks)
    assert [e for e in seen.events if e[0] in ("CONNECT", "DISCONNECT")] == events
    assert {sid: bytes(p) for sid, (_, p) in seen.frames.items() if sid in payloads} == payloads
    assert bytes(seen.frames[1][1]) == b"\r\n[OK"  # protocol text inside a payload stays payload
    assert errors(seen.parser) == rejected and rejected["overlong"] == 1 and rejected["bad_header"] >= 1
    assert seen.responses == {"OK": 1}


def test_replay_reads_emulator_transcripts_and_refuses_other_text(tmp_path):
    path = tmp_path / "t.log"
    path.write_text("0.001000 < b'WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\\r\\n'\n0.002000 > b'AT\\r'\n\n")
    out = subprocess.run([sys.executable, replay.__file__, str(path)], capture_output=True, text=True, check=True)
    assert "BANNER" in out.stdout and "> " in out.stdout and "parser: bad_header 0" in out.stdout
    path.write_text("hello there\n")
    bad = subprocess.run([sys.executable, replay.__file__, str(path)], capture_output=True, text=True)
    assert bad.returncode != 0 and "line 1" in bad.stderr


def test_no_transcript_unless_configured():
    transport = object()
    assert main.record_transcript({}, transport) == (None, transport)
    assert main.record_transcript({"debug": {"transcript_kb": 0, "endpoint": True}}, transport) == (None, transport)
    transcript, recording = main.record_transcript({"debug": {"transcript_kb": 2}}, transport)
    assert len(transcript.buf) == 2048 and recording.transport is transport


@pytest.fixture(scope="module")
def debugging(tmp_path_factory):
    """The shipped firmware (MicroPython) with the transcript and its endpoint on."""
    tmp = tmp_path_factory.mktemp("debug")
    debug = {"transcript_kb": 16, "endpoint": True, "save_on_reset": True, "save_to": str(tmp / "saved.log")}
    fw = Firmware(tmp, debug=debug, transcript=str(tmp / "emulator.log"))
    fw.saved = tmp / "saved.log"
    fw.emulator_log = tmp / "emulator.log"
    yield fw
    fw.stop()


def test_endpoint_serves_a_faithful_transcript_that_replays(debugging):
    fw = debugging
    assert fw.get("/index.html")[2] == b"<h1>hello</h1>"
    status, headers, body = fw.get("/debug/transcript")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    chunks = replay.read_transcript(body.decode().splitlines())
    time.sleep(0.2)  # the emulator's log is flushed per line; let the last ones land
    with open(fw.emulator_log) as f:
        emulated = streams(replay.read_transcript(f))
    sent, heard = streams(chunks)
    assert len(heard) > 500 and heard in emulated[1]  # the same bytes, in the same order
    assert b"12345678" not in body and b"AT+WSEC=0,,***\r" in sent  # the Wi-Fi key stays on the board
    assert len(sent) > 100 and sent.replace(b",,***", b",,********") in emulated[0]  # the emulator masks it too
    seen = replay.replay(chunks)
    requests = [bytes(p) for _, p in seen.frames.values()]
    assert any(b"GET /index.html HTTP/1.1" in p for p in requests)
    assert b"<h1>hello</h1>" in sent  # the response went out in an SSEND payload
    assert seen.responses["OK"] > 5 and ("LINK_UP", None) in seen.events


def test_saved_to_flash_on_request(debugging):
    fw = debugging
    request = urllib.request.Request(fw.url("/debug/transcript/save"), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    with open(fw.saved) as f:
        seen = replay.replay(replay.read_transcript(f))
    assert any(b"POST /debug/transcript/save" in p for _, p in seen.frames.values())


def test_saved_on_a_module_reset(debugging):
    fw = debugging
    if os.path.exists(fw.saved):
        os.remove(fw.saved)
    assert fw.control(op="reset")["ok"]
    deadline = time.monotonic() + 10
    while not os.path.exists(fw.saved):
        assert time.monotonic() < deadline, "no transcript saved after the reset"
        time.sleep(0.1)
    fw.wait_serving(10)
    with open(fw.saved) as f:
        seen = replay.replay(replay.read_transcript(f))
    assert seen.events[-1][0] in ("RESET", "BANNER")  # saved when the reset came: what led up to it

"""Hostile module output: garbage, truncated and malformed frames, unknown and overlong lines.

Whatever comes before, a well-formed frame and [OK] that follow a line break
must still be delivered, nothing may raise or hang, and each rejection is counted.
"""

import asyncio
import re

from cases_parser import parse_all
from fakeuart import Module, engine_with, run
from hypothesis import example, given, settings
from hypothesis import strategies as st
from wizfi250 import parser as P

HOSTILE = st.one_of(
    st.binary(max_size=300),  # garbage
    st.builds(lambda sid, n, body: b"{%d,10.0.0.1,80,%d}" % (sid, n) + body,  # truncated frames
              st.integers(0, 7), st.integers(1, 400), st.binary(max_size=50)),
    st.builds(lambda length: b"{1,10.0.0.1,80," + length + b"}",  # bad len fields
              st.sampled_from([b"99999999", b"-5", b"abc", b"", b"123456", b"1e3", b"16385"])),
    st.builds(lambda sid: b"{" + sid + b",10.0.0.1,80,3}abc\r\n",  # ids out of range
              st.sampled_from([b"8", b"9", b"f", b"-1", b"10", b""])),
    st.builds(lambda text: b"[" + text + b"]\r\n", st.binary(max_size=40).filter(lambda t: b"\n" not in t)),
    st.builds(lambda n: b"X" * n, st.integers(250, 2000)),  # overlong lines
)

VALID = b"{3,10.0.0.9,5000,6}\x00[OK]\n\r\n[OK]\r\n"


def padding(pieces):
    """Line breaks enough to finish any frame the pieces announce (garbage can hold
    a valid header too, which then swallows its length in bytes)."""
    lengths = [int(n) for n in re.findall(rb"\{[0-7],[0-9.]{7,15},[0-9]{1,5},([0-9]{1,5})\}", b"".join(pieces))]
    return b"\n" * max([500] + [n + 2 for n in lengths])


# Bytes per UART read: a few, or a buffer's worth and more.
READS = st.one_of(st.integers(1, 64), st.integers(64, 1024))


@settings(max_examples=1000, deadline=None)
@given(st.lists(HOSTILE, max_size=6), READS)
def test_valid_output_after_hostile_output_is_delivered(pieces, size):
    # A truncated frame swallows what follows as payload, as the module's count says;
    # after a line break and enough bytes to finish any frame, parsing is back in step.
    data = b"".join(pieces) + b"\r\n" + padding(pieces) + b"\r\n" + VALID
    # The smallest UART buffer the parser accepts for its lines: any byte it keeps
    # that it did not need would fill it, and the feed would stop short.
    rec, parser = parse_all(data, lambda n: size, max_line=256, size=256 + 34)
    assert bytes(rec.payload.get(3, b"")).endswith(b"\x00[OK]\n")
    assert rec.lines[-1][0] == P.OK
    parser.feed(b"[OK]\r\n")  # in step: the next line is a line, not payload
    assert len(rec.lines) >= 2 and rec.lines[-1] == rec.lines[-2] == (P.OK, None, b"[OK]")


def test_each_kind_of_rejection_is_counted():
    data = (
        b"{1,10.0.0.1,80,99999999}\r\n{9,10.0.0.1,80,3}abc\r\n"
        + b"Y" * 300 + b"\r\n[Who knows]\r\n{0,10.0.0.1,80,2}xyZZ\r\n" + VALID
    )  # fmt: skip
    rec, parser = parse_all(data)
    assert parser.errors == [2, 1, 1, 1, 0, 0]  # bad headers, overlong, bad trailer, unknown line, no memory, cut frames
    assert bytes(rec.payload[3]) == b"\x00[OK]\n" and bytes(rec.payload[0]) == b"xy"


@settings(max_examples=300, deadline=None)
@given(st.lists(HOSTILE, max_size=6), READS)
@example(pieces=[b"WizFi Version "], size=1)  # found by CI: a banner, so a restart
def test_the_driver_outlives_hostile_output(pieces, size):
    """The same through the engine, whose handling of frames and events (adopting
    sockets, reading a frame's address) must not raise either: after it all the
    reader is alive and the next command gets its answer (after init, if what came
    reads as a restart)."""

    async def main():
        module = Module(lambda n: size)
        module.replies[b"AT"] = b"[OK]\r\n"
        engine, _ = engine_with(module, socket_rx=4096, stall_ms=50)
        module.uart.emit(b"".join(pieces) + b"\r\n" + padding(pieces) + b"\r\n" + VALID)
        while module.uart.pending():
            await asyncio.sleep(0.001)
        if engine.restarting:
            # The garbage held a banner or a [Reset Event] (hypothesis draws them from the
            # parser's own constants): a restart, as the module says. Commands wait for init.
            assert engine.counters["resets"]
            await engine.init()
        assert await engine.command(b"AT") == []
        engine.stop()

    # A hang must fail (and shrink), not hold the run: one such example, a long line
    # whose header the full 256-byte UART buffer could not complete, hung it.
    run(asyncio.wait_for(main(), 20))

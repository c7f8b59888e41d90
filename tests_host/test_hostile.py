"""Hostile module output: garbage, truncated and malformed frames, unknown and overlong lines.

Whatever comes before, a well-formed frame and [OK] that follow a line break
must still be delivered, nothing may raise or hang, and each rejection is counted.
"""

from cases_parser import parse_all
from hypothesis import given, settings
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


@settings(max_examples=1000, deadline=None)
@given(st.lists(HOSTILE, max_size=6), st.integers(1, 64))
def test_valid_output_after_hostile_output_is_delivered(pieces, size):
    # A truncated frame swallows what follows as payload, as the module's count says;
    # after a line break and enough bytes to finish any frame, parsing is back in step.
    data = b"".join(pieces) + b"\r\n" + b"\n" * 500 + b"\r\n" + VALID
    rec, parser = parse_all(data, lambda n: size, max_line=256)
    assert bytes(rec.payload.get(3, b"")).endswith(b"\x00[OK]\n")
    assert rec.lines[-1][0] == P.OK
    assert not parser.in_frame()


def test_each_kind_of_rejection_is_counted():
    data = (
        b"{1,10.0.0.1,80,99999999}\r\n{9,10.0.0.1,80,3}abc\r\n"
        + b"Y" * 300 + b"\r\n[Who knows]\r\n{0,10.0.0.1,80,2}xyZZ\r\n" + VALID
    )  # fmt: skip
    rec, parser = parse_all(data)
    assert parser.errors == [2, 1, 1, 1]  # bad headers, overlong, bad trailer, unknown line
    assert bytes(rec.payload[3]) == b"\x00[OK]\n" and bytes(rec.payload[0]) == b"xy"

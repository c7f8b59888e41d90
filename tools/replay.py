"""Replay a saved UART transcript into the driver's parser: what did the driver see?

tools/replay TRANSCRIPT [--summary]

TRANSCRIPT is a firmware transcript (``/debug/transcript``, or the file the
board saved) or an emulator one (``tools/emulate --transcript``): one chunk a
line, ``SECONDS ARROW BYTES`` with ``>`` host to module, ``<`` module to host
and the bytes as a Python literal. The module's bytes go through the real
``wizfi250.parser.Parser`` in the chunks they arrived in; the host's commands
are shown between them for context. Printed: a timeline (commands, responses,
events, frames), then frames and bytes per socket, events, responses and the
parser's rejection counters (garbage headers, overlong lines, bad trailers).
"""

import ast
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from wizfi250 import parser as P  # noqa: E402

# The parser's line kinds by name: the driver itself never needs the names, and
# on a board they would be heap for nothing.
KIND_NAMES = {getattr(P, name): name for name in (
    "INFO", "OK", "ERROR", "SEND_ERROR", "PROMPT", "CONNECT", "DISCONNECT", "LISTEN",
    "LINK_UP", "LINK_DOWN", "RESET", "BANNER", "JOIN", "IP_ADDR", "GATEWAY", "UNKNOWN",
)}  # fmt: skip

RESPONSES = (P.OK, P.ERROR, P.SEND_ERROR, P.PROMPT)


def read_transcript(lines):
    """``(seconds, arrow, bytes)`` per chunk; blank lines skipped."""
    chunks = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            stamp, arrow, data = line.rstrip("\n").split(" ", 2)
            chunks.append((float(stamp), arrow, ast.literal_eval(data)))
        except (ValueError, SyntaxError) as e:
            raise ValueError("line %d is not SECONDS ARROW BYTES: %s" % (number, e))
        if arrow not in "<>" or not isinstance(chunks[-1][2], bytes):
            raise ValueError("line %d: arrow must be < or > and the data bytes" % number)
    return chunks


class _Payload:
    """Takes one frame's payload for its socket."""

    def __init__(self, into):
        self.into = into

    def write(self, mv, start, end):
        self.into += mv[start:end]
        return end - start


class Seen:
    """The parser's sink: everything it reported, in order, and per socket."""

    def __init__(self):
        self.parser = P.Parser(self)
        self.timeline = []  # (seconds, text)
        self.frames = {}  # sid -> [frame count, payload bytearray]
        self.events = []  # (kind name, arg) of socket, Wi-Fi and module events
        self.responses = {}  # kind name -> count
        self.now = 0.0

    def line(self, kind, arg, text):
        name = KIND_NAMES[kind]
        if kind in RESPONSES:
            self.responses[name] = self.responses.get(name, 0) + 1
        elif kind != P.INFO:
            self.events.append((name, arg))
        self.timeline.append((self.now, "%-10s %s" % (name, text.decode("utf-8", "replace"))))

    def frame(self, sid, length):
        peer = self.parser.frame_peer()
        entry = self.frames.setdefault(sid, [0, bytearray()])
        entry[0] += 1
        self.timeline.append((self.now, "FRAME      socket %d from %s:%d, %d bytes" % (sid, peer[0], peer[1], length)))
        return _Payload(entry[1])

    def error(self, code, text):
        self.timeline.append((self.now, "REJECTED   %s: %r" % (P.ERROR_NAMES[code], text[:60])))


def replay(chunks):
    """Feed the module's chunks to a parser; returns the ``Seen`` with what it reported."""
    seen = Seen()
    for stamp, arrow, data in chunks:
        seen.now = stamp
        if arrow == ">":
            seen.timeline.append((stamp, ">          " + _host_text(data)))
        else:
            seen.parser.feed(data)
    return seen


def _host_text(data):
    if data.startswith(b"AT"):
        return data.rstrip(b"\r\n").decode("utf-8", "replace")
    return "payload, %d bytes" % len(data)


def report(chunks, seen, timeline=True):
    to_module = sum(1 for c in chunks if c[1] == ">")
    span = "%.3f-%.3f s" % (chunks[0][0], chunks[-1][0]) if chunks else "empty"
    out = ["%d chunks (%d to the module, %d from it), %s" % (len(chunks), to_module, len(chunks) - to_module, span)]
    if timeline:
        out += ["%10.3f  %s" % item for item in seen.timeline]
    out.append("frames per socket:")
    for sid in sorted(seen.frames):
        count, payload = seen.frames[sid]
        out.append("  socket %d: %d frames, %d bytes" % (sid, count, len(payload)))
    names = {}
    for name, _ in seen.events:
        names[name] = names.get(name, 0) + 1
    out.append("events: " + (", ".join("%s %d" % kv for kv in sorted(names.items())) or "none"))
    out.append("responses: " + (", ".join("%s %d" % kv for kv in sorted(seen.responses.items())) or "none"))
    out.append("parser: " + ", ".join("%s %d" % kv for kv in zip(P.ERROR_NAMES, seen.parser.errors)))
    return out


def main(argv):
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    if not argv or argv[0].startswith("-") or len(argv) > 2 or argv[1:] not in ([], ["--summary"]):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        with open(argv[0], encoding="utf-8") as f:
            chunks = read_transcript(f)
    except (OSError, ValueError) as e:  # no such file; HTML from a disabled endpoint; binary
        print("replay: %s is not a transcript: %s" % (argv[0], e), file=sys.stderr)
        return 2
    for line in report(chunks, replay(chunks), timeline="--summary" not in argv):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

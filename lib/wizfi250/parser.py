"""Sans-IO parser for WizFi250 output: bytes in, lines and data frames out.

The module interleaves three things on one UART (protocol reference 1.3-4.7):
CRLF-terminated lines (responses, events, command output), and data frames
``{sid,ip,port,len}`` + ``len`` raw bytes + CRLF. A frame can start at any
byte position, even in the middle of another line or between the two halves
of the SSEND prompt, so this parser looks for ``{`` before it looks for the
end of a line. A payload is consumed by count and handed straight to the
socket's buffer: the line machinery never sees it, so a payload may contain
anything (``[OK]``, ``{``, CR, NUL).

The parser never drops input unreported. A ``{`` that does not start a valid
header is kept as line text; an overlong line is cut, reported and skipped
up to its end; a frame without its CRLF trailer is reported and parsing
resumes at the next byte. Every such case is counted in ``errors``.

The sink receives (all calls synchronous, from ``parse``):

``sink.line(kind, arg, text)``
    one complete line: ``kind`` is one of the constants below, ``text`` the
    line as ``bytes`` (without CR LF); ``arg`` is the socket id for socket
    events, ``(sid, len)`` for PROMPT, the address (``str``) for
    IP_ADDR/GATEWAY and ``None`` otherwise.
``sink.frame(sid, length)``
    a frame header; returns the object that takes the payload through
    ``write(mv, start, end) -> accepted``, or None if the sink knows it is no
    frame (a TCP socket's frames come from its one peer): its ``{`` is then line
    text. Accepting fewer bytes than offered pauses parsing (``parse`` returns
    False) until the caller makes room and calls ``parse`` again: that is the
    back-pressure path. During this call ``frame_peer()`` gives the header's
    address.
``sink.error(code, text)``
    something malformed was seen (already counted).
"""

from .compat import const
from .ring import Ring

from .header import HDR_MAX, new_seen, scan as _scan

# Line kinds.
INFO = const(0)  # command output: WSTAT/SMGMT rows, FDNS result, echo, ...
OK = const(1)
ERROR = const(2)  # every [ERROR...] form; the text tells which
SEND_ERROR = const(3)  # [TCP Send Error]: SSEND's final line, or an event
PROMPT = const(4)  # SSEND prompt [sid,,,len]: the module waits for the payload
CONNECT = const(5)
DISCONNECT = const(6)
LISTEN = const(7)
LINK_UP = const(8)
LINK_DOWN = const(9)
RESET = const(10)  # [Reset Event]
BANNER = const(11)  # WizFi250 Version ... : the module has just (re)started
JOIN = const(12)  # Joining / Successfully joined / Failed to join
IP_ADDR = const(13)
GATEWAY = const(14)
UNKNOWN = const(15)  # a bracketed line this driver does not know

# Error codes, indexes into Parser.errors (named by ERROR_NAMES; private, so no names on a board).
_BAD_HEADER = const(0)  # a '{' that looked like a frame header but was not one
_OVERLONG = const(1)  # a line longer than max_line
_BAD_TRAILER = const(2)  # a payload not followed by CR LF
_UNKNOWN_LINE = const(3)  # an unknown bracketed line (delivered as UNKNOWN too)
_NO_MEMORY = const(4)  # the heap ran out handling a line or frame: that one is lost, parsing goes on
_CUT_FRAME = const(5)  # the module stopped sending a payload (it restarted): ended by ``cut``

ERROR_NAMES = ("bad_header", "overlong", "bad_trailer", "unknown_line", "no_memory", "cut_frame")


# Socket events by their length: the id is one digit, 0-7, before the ']'.
_EVENTS = {
    11: (b"[CONNECT ", CONNECT),
    14: (b"[DISCONNECT ", DISCONNECT),
    10: (b"[LISTEN ", LISTEN),
}
_FIXED = {
    b"[OK]": OK,
    b"[TCP Send Error]": SEND_ERROR,
    b"[Link-Up Event]": LINK_UP,
    b"[Link-Down Event]": LINK_DOWN,
    b"[Reset Event]": RESET,
}
_JOIN_PREFIXES = (b"Joining", b"Successfully joined", b"Failed to join")


class _Discard:
    """Payload sink for frames nobody claims: take everything (counted by the caller)."""

    @staticmethod
    def write(mv, start, end):
        return end - start


DISCARD = _Discard()


class Parser:
    def __init__(self, sink, size=4096, max_line=256):
        if size < max_line + HDR_MAX + 2:
            # A line waits in the buffer until its end or max_line, with maybe a
            # frame header cut short after it: a smaller buffer could fill with
            # neither, and the reader would wait forever for room.
            raise ValueError("UART buffer of %d bytes: lines of %d need %d" % (size, max_line, max_line + HDR_MAX + 2))
        self.rx = Ring(size)  # the UART receive buffer: fill it with rx.space()/rx.commit()
        self.sink = sink
        self.max_line = max_line
        self.errors = [0, 0, 0, 0, 0, 0]
        self.part = b""  # start of a line that a frame interrupted (rare; sink.frame may look)
        self._skip = False  # dropping the rest of an overlong line
        self._left = 0  # payload bytes still to come
        self._target = DISCARD  # where they go
        self._trailer = 0  # trailer bytes still to come (2: CR LF, 1: LF)
        self._prompt_tail = False  # a prompt was split by an event; its ']' is pending
        self._hs = 0  # where the header of the frame being announced starts, for frame_peer()
        # During sink.frame: the header interrupts a line (so does one at a line start while
        # part holds the line's start). In a scan such a header may be a network's name.
        self.inline = False
        # The header check's memory: each id's last valid header (``seen[sid]``, a new object
        # for each header the check passed, the same for one equal to the last at a line start).
        self.seen = new_seen()

    def abandon(self, target):
        """Route the rest of ``target``'s payload nowhere; returns the bytes it will lose."""
        if self._target is not target:
            return 0
        self._target = DISCARD
        return self._left

    def cut(self):
        """End the frame being received if it is waiting for bytes that are not in the
        UART ring; return how many it missed (0: no frame, or its bytes are here and
        a full target holds them). For when the module has stopped sending it (see
        ``Engine._cut_frame``): from here on its output is read as lines again."""
        left = self._left
        if not left or self.rx.head != self.rx.tail:
            return 0
        self._left = 0
        self._target = DISCARD
        self.errors[_CUT_FRAME] += 1
        if self.part:
            # The line the frame interrupted is all there will be of it: glued to what
            # comes next, it would hide that line ("001/" of a scan row, then "[OK]").
            self._end_part()
        return left

    def feed(self, data):
        """Copy ``data`` in and parse it (tests, replay). Returns bytes taken."""
        taken = 0
        n = len(data)
        while taken < n:
            space = self.rx.space()
            k = min(len(space), n - taken)
            if not k:
                break
            space[:k] = data[taken : taken + k]
            self.rx.commit(k)
            taken += k
            if not self.parse():
                break
        return taken

    def parse(self):
        """Consume the buffered bytes. Returns False if a payload target is full."""
        rx = self.rx
        buf = rx.buf
        mv = rx.mv
        head = rx.head
        tail = rx.tail
        seen = self.seen
        while head < tail:
            left = self._left
            if left:
                n = tail - head
                if n > left:
                    n = left
                took = self._target.write(mv, head, head + n)
                head += took
                left -= took
                self._left = left
                if not left:
                    if tail - head >= 2 and buf[head] == 13 and buf[head + 1] == 10:
                        head += 2  # the trailer came with the payload: the usual case
                    else:
                        self._trailer = 2
                elif took < n:
                    rx.head = head
                    return False
                continue
            if self._trailer:
                if tail - head >= 2 and buf[head] == 13 and buf[head + 1] == 10:
                    head += 2
                    self._trailer = 0
                    continue
                c = buf[head]
                if c == 13 and self._trailer == 2:
                    self._trailer = 1
                    head += 1
                    continue
                self._trailer = 0
                if c != 10:
                    self._error(_BAD_TRAILER, buf, head, min(tail, head + 16))
                    continue
                head += 1
                continue
            # Line mode. A frame can start anywhere, so look for '{' first.
            c = buf[head]
            if c == 123:  # '{' at a line start, or right where a frame cut one
                # Most headers equal their socket's last one (see header.scan): one
                # find takes them, here and not in a call, as this runs for every frame.
                # The last header ends at its only '}', so equal bytes are that header.
                h = -1
                if tail - head > 2:  # buf[head + 1] is a received byte
                    sid = buf[head + 1] - 48
                    if 0 <= sid < 8:
                        h = seen[sid + 8]  # 0 while the socket has no header yet
                        end = head + (h & 63)
                        if not h or end > tail or buf.find(seen[sid], head, end) != head:
                            h = -1
                if h < 0:
                    h = _scan(buf, head, tail, seen)
                if h >= 0:
                    # A whole header, the usual case: announce the frame and take the
                    # payload that is here now, not on further turns of the loop
                    # (each turn reloads the state, and _header was one more call).
                    left = h >> 6  # the whole payload is still to come
                    self._hs = head
                    try:  # as in _header, without its call: this runs for every frame
                        target = self.sink.frame(buf[head + 1] - 48, left)
                    except MemoryError:
                        self.errors[_NO_MEMORY] += 1
                        target = DISCARD
                    if target is not None:  # None: no frame, the sink says; its '{' is text
                        head += h & 63
                        if left:
                            n = tail - head
                            if n > left:
                                n = left
                            took = target.write(mv, head, head + n)
                            head += took
                            if took < left:
                                self._target = target
                                self._left = left - took
                                if took < n:
                                    rx.head = head
                                    return False
                                continue
                        if tail - head >= 2 and buf[head] == 13 and buf[head + 1] == 10:
                            head += 2
                        else:
                            self._trailer = 2
                        continue
                elif self._header(head, tail) == 0:  # not a header: say why
                    break
            elif c == 13 and tail - head >= 2 and buf[head + 1] == 10 and not self.part:
                head += 2  # an empty line (every event starts with one): no finds
                self._skip = False
                continue
            nl = buf.find(b"\n", head, tail)
            end = tail if nl < 0 else nl
            br = buf.find(b"{", head, end)
            if br >= 0:
                h = self._header(br, tail) if br > head else -1  # at head: tried above
                if h == 0:
                    # Keep the partial line in the buffer until the header is complete,
                    # unless the line is too long already (or being dropped as such):
                    # the buffer holds a line of max_line and a header after it, no
                    # more, and a full buffer that parses to nothing would stop the
                    # reader for good. Then only the header stays.
                    if self._skip or len(self.part) + br - head - (buf[br - 1] == 13) > self.max_line:
                        if not self._skip:
                            self._overlong(mv, head, br)
                        head = br
                        continue
                    break
                self._keep(mv, head, br if h > 0 else br + 1)
                head = br + h if h > 0 else br + 1
                continue
            if nl < 0:
                if self._skip:
                    head = tail
                elif len(self.part) + tail - head - (buf[tail - 1] == 13) > self.max_line:  # a CR is no text
                    self._overlong(mv, head, tail)
                    head = tail
                break
            end = nl - 1 if nl > head and buf[nl - 1] == 13 else nl  # without the CR
            if self._skip:
                pass
            elif self.part:
                if self._keep(mv, head, end):
                    self._end_part()
            elif end - head > self.max_line:
                self._overlong(mv, head, end)
            elif end > head:
                try:  # not through a method: a line costs enough calls already
                    self._line(bytes(mv[head:end]))
                except MemoryError:
                    self.errors[_NO_MEMORY] += 1
            self._skip = False
            head = nl + 1
        rx.head = head
        return True

    def _keep(self, mv, start, end):
        """Add line text to the interrupted-line store; False if it overflowed."""
        if self._skip:
            return False
        if start < end:
            if len(self.part) + end - start - (mv[end - 1] == 13) > self.max_line:  # a CR before a frame is no text
                self._overlong(mv, start, end)
                return False
            try:
                self.part += bytes(mv[start:end])
            except MemoryError:
                self.part = b""
                self._skip = True  # the line is lost: drop the rest of it
                self.errors[_NO_MEMORY] += 1
                return False
        return True

    def _end_part(self):
        line = self.part
        self.part = b""
        if line[-1] == 13:  # the CR came before a frame, the LF after it
            line = line[:-1]
        if line:
            try:
                self._line(line)
            except MemoryError:
                self.errors[_NO_MEMORY] += 1

    def _overlong(self, mv, start, end):
        part = self.part
        self.part = b""
        self._skip = True
        if part:
            self._error(_OVERLONG, part, 0, 16)
        else:
            self._error(_OVERLONG, mv, start, min(end, start + 16))

    def _error(self, code, src, start, end):
        """Count a rejection and report ``src[start:end]``, the start of what was rejected."""
        self.errors[code] += 1
        try:
            self.sink.error(code, bytes(src[start:end]))
        except MemoryError:
            pass  # counted already; the text was only for the report

    # The sink is called inside a try (here, in _end_part, in _header, and inline in parse
    # for every frame and line), because its handling (or ours) can run out of heap. That
    # line or frame is then lost, counted, and parsing goes on after it: a frame's
    # payload is skipped by its length, never read as lines. Letting the MemoryError
    # out would stop the reader, and the driver with it.

    def _header(self, i, tail):
        """Parse the header at ``buf[i] == '{'``: its size, 0 if incomplete, -1 if bad (reported)."""
        buf = self.rx.buf
        h = _scan(buf, i, tail, self.seen)
        if h >= 0:
            length = h >> 6
            self._hs = i
            self.inline = True  # parse takes a header at a line start itself: this one is inside
            try:
                target = self.sink.frame(buf[i + 1] - 48, length)
            except MemoryError:
                self.errors[_NO_MEMORY] += 1
                target = DISCARD
            self.inline = False
            if target is None:
                return -1  # no frame, the sink says: text, as a bad header is (counted by the sink)
            self._target = target
            if length:
                self._left = length
            else:
                self._trailer = 2
            return h & 63
        end = buf.find(b"}", i + 1, min(tail, i + HDR_MAX)) + 1  # report up to its '}'
        if not end:
            end = tail
            # No '}' yet: it may still grow into a header if it is an id, ',' then digits, dots, commas.
            if tail - i < HDR_MAX and (i + 1 >= tail or 48 <= buf[i + 1] <= 55) and (i + 2 >= tail or buf[i + 2] == 44):
                for k in range(i + 3, tail):
                    c = buf[k]
                    if not (48 <= c <= 57 or c == 46 or c == 44):
                        break
                else:
                    return 0
        self._error(_BAD_HEADER, buf, i, end)
        return -1

    def frame_peer(self):
        """(ip, port) of the frame being announced; call from ``sink.frame``."""
        buf = self.rx.buf
        c2 = buf.find(b",", self._hs + 3)  # the header is valid: both commas are in it
        c3 = buf.find(b",", c2 + 1)
        return bytes(buf[self._hs + 3 : c2]).decode(), int(buf[c2 + 1 : c3])

    def _line(self, line):
        """Classify one complete, non-empty line and hand it to the sink."""
        arg = None
        if line[0] == 91:  # '['
            kind = _FIXED.get(line)
            if kind is None:
                kind, arg = self._bracketed(line)
            if kind == OK or kind == ERROR:
                self._prompt_tail = False
        elif line == b"]" and self._prompt_tail:
            self._prompt_tail = False  # the second half of a split prompt
            return
        elif _banner(line):
            kind = BANNER
        elif line.startswith(_JOIN_PREFIXES):
            kind = JOIN
        else:
            kind = INFO
            s = line.strip()
            if s.startswith(b"IP Addr") or s.startswith(b"Gateway"):
                value = s[s.find(b":") + 1 :].strip()
                if not value or value.replace(b".", b"").isdigit():  # else it is no address: INFO
                    kind = IP_ADDR if s[0] == 73 else GATEWAY
                    arg = value.decode()
        self.sink.line(kind, arg, line)

    def _bracketed(self, line):
        if line.startswith(b"[ERROR"):
            return ERROR, None
        closed = line[-1] == 93  # ']'
        event = _EVENTS.get(len(line))
        if event and closed and 48 <= line[-2] <= 55 and line.startswith(event[0]):
            return event[1], line[-2] - 48
        # The SSEND prompt: [sid,,,len], [sid,ip,port,len] or [sid,,,len,timeout].
        # An event can split it before its ']'; the ']' then follows on its own line.
        fields = line[1 : -1 if closed else len(line)].split(b",")
        if 4 <= len(fields) <= 5:
            sid = _hex_id(fields[0])
            size = _decimal(fields[3])
            if sid >= 0 and size >= 0:
                self._prompt_tail = not closed
                return PROMPT, (sid, size)
        if _banner(line):  # behind the half of a prompt the restart cut short
            self._prompt_tail = False
            return BANNER, None
        self._error(_UNKNOWN_LINE, line, 0, 32)
        return UNKNOWN, None


def _banner(line):
    """``WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)``, also behind what the restart cut short
    (a line, a stray byte, a prompt half) and with its head taken by a frame the restart
    cut short: missed, the restart would go unnoticed, sockets and all. No other line
    the module prints ends so (scan and status rows end in numbers), but a scan row cut
    by a line end in its SSID may: the engine reads the rows of a scan back (``_air``)."""
    return line.endswith(b"(WIZnet Co.Ltd)") or (line.startswith(b"WizFi") and b" Version " in line)


def _hex_id(text):
    """A socket id printed with %x (0-7), or -1."""
    if len(text) == 1 and 48 <= text[0] <= 55:
        return text[0] - 48
    return -1


def _decimal(text):
    if not text or len(text) > 9 or not text.isdigit():
        return -1
    return int(text)

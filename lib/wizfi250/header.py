"""Is there a whole, valid frame header ``{sid,ip,port,len}`` at ``buf[i]``?

The parser asks this of every frame: the one check that decides whether a
'{' starts a frame whose length is then taken on trust, so it is strict.
"""

from .compat import const

# '{7,255.255.255.255,65535,16384}' is 31 bytes: a '}' must come within 32.
HDR_MAX = const(32)
# No frame is longer than a TLS record; a bigger len means a corrupt header.
MAX_FRAME = const(16384)


def scan(buf, i, tail, seen):
    """``len << 6 | size`` of the header at ``buf[i] == '{'`` if whole and valid, else -1.

    One int, not a tuple: nothing is allocated per frame but a new header's copy.
    Within ``buf[i:tail]`` a '}' must come within ``HDR_MAX`` bytes, after a
    socket id 0-7, an IPv4 address in dotted decimal (7-15 bytes), a port of 1-5 digits
    and 1-5 digits of length up to ``MAX_FRAME``. ``Parser._header`` tells an
    incomplete header from a bad one, which is rare and may be slow.

    ``seen`` is the caller's memory, ``new_seen()``: a valid header is remembered as
    its socket's last (``seen[sid]``, its value in ``seen[sid + 8]``). A socket's
    frames come from one peer and mostly have one length (a bulk transfer's are all
    full), so ``Parser.parse`` takes a header equal to the last one after one find at a
    line start, and calls this for a new one (and for any header inside a line).
    """
    end = i + HDR_MAX
    if end > tail:
        end = tail
    end = buf.find(b"}", i + 1, end) + 1
    if not end or not 48 <= buf[i + 1] <= 55:
        return -1
    h = _check(buf, i, end - 1)
    if h >= 0:
        sid = buf[i + 1] - 48
        try:
            last = bytes(buf[i:end])
        except MemoryError:
            # Checked, just not remembered: the next header is checked again. Forgotten, not
            # left as it was, which may be the last connection's: read as this one's, it would
            # tie a new connection to another's peer.
            seen[sid] = b""
            seen[sid + 8] = 0
            return h
        seen[sid] = last  # the copy is made: neither store can fail between the two
        seen[sid + 8] = h
    return h


def new_seen():  # type: () -> list
    """Empty memory for ``scan``, one per parser: a memory shared by every parser
    would tie them together, and parsers in two threads could see half an update."""
    return [b""] * 8 + [0] * 8


def _check(buf, i, end):
    """``scan``'s value for the header ``buf[i:end + 1]`` (``buf[end] == '}'``), or -1.

    The module prints "%d.%d.%d.%d,%d,%d": anything else in there is not a header
    (garbage that would swallow what follows as payload), and whoever reads the
    address and port later (frame_peer) may trust them.
    """
    if buf[i + 2] != 44:
        return -1
    c2 = buf.find(b",", i + 3, end)  # ends the address
    c3 = buf.find(b",", c2 + 1, end)  # ends the port
    if not 7 <= c2 - i - 3 <= 15 or not 1 <= c3 - c2 - 1 <= 5 or not 1 <= end - c3 - 1 <= 5:
        return -1
    dots = run = 0  # in the address, and the digits since the last dot
    for k in range(i + 3, c2):
        c = buf[k]
        if c == 46 and run:
            dots += 1
            run = 0
        elif 48 <= c <= 57 and run < 3:
            run += 1
        else:
            return -1
    if dots != 3 or not run:
        return -1
    for k in range(c2 + 1, c3):
        c = buf[k]
        if c < 48 or c > 57:
            return -1
    length = 0
    for k in range(c3 + 1, end):
        c = buf[k] - 48
        if c < 0 or c > 9:
            return -1
        length = length * 10 + c
    if length > MAX_FRAME:
        return -1
    return length << 6 | (end - i + 1)  # a header is at most 32 bytes: 6 bits

"""Hypothesis: WiFi.scan against a module whose neighbours name themselves like its own lines,
while its sockets print frames and events into the listing. CPython only.

Modelled. A listener and one to three sockets: TCP connections (clients and browsers, each
with its one peer; some have had a frame before the scan, so their peer is known) and UDP
clients, whose datagrams come from their remote or from anyone else. AT+WSCAN lists
one to six networks whose SSIDs are up to 32 bytes of hostile pieces: line ends, the
module's final lines and events, its banner's ends, frame headers, '/', bytes >= 0x80.
Real frames and events land where another thread's output can: between the module's own
prints (anywhere in the head line, which is one piece to a reader of lines). It prints a row's
index with its '/', then the SSID a byte at a time (reference 4.7), then the rest of the
row; so an event comes before a row, right after its index, between two bytes of its SSID,
right after the SSID or after the row (that the rest is one print is an assumption: were
the BSSID or RSSI printed in pieces, an event there would cut the row where no SSID can
explain it). Events: a connection ends ([DISCONNECT n]), a browser takes the listener's id
([CONNECT n]), the module relistens on its lowest free id ([LISTEN n], only while it has
none). The module's list (AT+SMGMT=?) is its truth after them. The UART
hands over 1 byte up to everything.

Checked, after the scan and one more command: every network is listed, with its fields and
its SSID (line ends may come back as a lone LF, and a real event that landed in it may be
read as its text: nothing tells it from text there); no restart is seen; no command goes
out but the scan, the check of the socket table and the link that follows SSID text read
as an event, and AT+MINFO, which gets its own answer; every frame's payload reaches its connection's
socket exactly once, in order (a datagram's too, whoever sent it: read as text, its payload
was the module's lines), and no SSID text reaches one; the socket table ends as the
module is, and a connection the module kept keeps its socket; the application hears only
real events.

Not generated, as no driver could tell them from the truth (the check stays whole):
* a header in an SSID naming a connection's own peer, or an id whose peer is not known
  (nothing has come from it yet, it is free, or it closes during the scan), or a UDP
  socket's id: it reads as that socket's frame;
* a browser taking an id whose connection ended during the scan: if both events are read
  as SSID text, its frames read as a header in an SSID, naming another peer;
* an event inside the final [OK]: the scan has no end line left.

``WIZFI_FUZZ_SCAN=2000`` runs that many examples.
"""

import asyncio
import itertools
import os
import re

from fakeuart import Module, engine_with, run, settle
from gen import TRICKY
from hypothesis import given, settings
from hypothesis import strategies as st
from smgmt import listing
from wizfi250 import parser as P
from wizfi250.compat import text
from wizfi250.engine import Engine
from wizfi250.sockets import ACCEPTED, LISTENER, TCP, UDP, Socket
from wizfi250.wifi import WiFi

EXAMPLES = int(os.environ.get("WIZFI_FUZZ_SCAN", "1000"))

SCAN_HEAD = b"Index/SSID/BSSID/RSSI(-dBm)/MaxDataRate(Mbps)/Security/RadioBand(GHz)/Channel\r\n"
MINFO = b"FW version/HW version\r\n1.0.5.2/WizFi250 Rev 1.0\r\n[OK]\r\n"
WSTAT = b"IF/SSID/IP-Addr/Gateway/MAC/TxPower(dBm)/RSSI(-dBm)\r\nSTA/MyAP/10.0.0.5/10.0.0.1/00:08:DC:11:22:33/31/45\r\n[OK]\r\n"
BANNER = b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)"
LISTENING = "listener"  # what the module has on the listener's id
SOCKET_EVENTS = {b"CONNECT": P.CONNECT, b"DISCONNECT": P.DISCONNECT, b"LISTEN": P.LISTEN}


def peer(uid):
    """Connection ``uid``'s peer: each has its own."""
    return "10.0.0.%d" % (10 + uid), 40000 + uid


def header(sid, address, length):
    return b"{%d,%s,%d,%d}" % (sid, address[0].encode(), address[1], length)


def row(index, ssid):
    """Network ``index``'s row; its fields after the SSID say which network it is (see ``check``)."""
    return b"%03d/%s/00:11:22:33:44:%02X/-%d/72.2/Infra/WPA2-Mixed/2.4/%d\r\n" % (index + 1, ssid, index, 40 + index, index + 1)


def between_prints(at, ssid, end, size):
    """Where output meant for byte ``at`` of a row lands: between the module's prints of it
    (its index and '/', each byte of the SSID ``[ssid, end)``, the rest of the row of
    ``size`` bytes)."""
    if at < ssid:
        return 0 if at < ssid // 2 else ssid
    if at <= end:
        return at
    return end if at - end < size - at else size


def lone_lf(ssid):
    """``ssid`` with each run of line ends (CR LF, LF, and CRs before them) as one LF: how a
    listing read as lines may give it back."""
    return re.sub("[\r\n]*\n", "\n", ssid)


def names(ssid, events):
    """Each name a listing may give a network: ``ssid`` with any of the real events printed
    inside it (``(offset, text)``) read as its text, which no reader can tell from it."""
    found = set()
    for taken in itertools.product((False, True), repeat=len(events)):
        name = ssid
        for (at, printed), take in reversed(list(zip(events, taken))):
            if take:
                name = name[:at] + printed + name[at:]
        found.add(lone_lf(text(name)))
    return found


class Conn:
    """One socket on the module, and the payload its frames carried."""

    def __init__(self, uid, sid, kind):
        self.uid, self.sid, self.kind = uid, sid, kind  # TCP (a client), ACCEPTED (a browser) or UDP (a client)
        self.peer = peer(uid)
        self.senders = [self.peer, ("6.6.6.6", 6), ("10.0.0.99", 9)] if kind == UDP else [self.peer]
        self.sent = bytearray()

    def frame(self, payload, pick=0):
        self.sent += payload
        return header(self.sid, self.senders[pick % len(self.senders)], len(payload)) + payload + b"\r\n"

    def smgmt_row(self):
        mode, local = {TCP: (b"TCN", 30000 + self.sid), ACCEPTED: (b"TSN", 80), UDP: (b"UCN", 5000)}[self.kind]
        return b"%d/%s/%s:%d/%d/0" % (self.sid, mode, self.peer[0].encode(), self.peer[1], local)


class Model:
    """The module: its 8 ids, the scan it prints with what lands in it, its socket list."""

    def __init__(self, listener, conns, named):
        self.slots = [None] * 8
        self.slots[listener] = LISTENING
        self.conns = []  # every connection, by uid
        for sid, kind in conns:
            self.new(sid, kind)
        self.first = list(self.slots)  # the ids before the scan
        self.named = named  # ids a header in an SSID names (with another peer): they stay
        self.ended = set()  # ids whose connection ended during the scan
        self.events = set()  # (kind, sid) of every event printed

    def new(self, sid, kind):
        self.slots[sid] = Conn(len(self.conns), sid, kind)
        self.conns.append(self.slots[sid])

    def open(self):
        return [sid for sid, c in enumerate(self.slots) if isinstance(c, Conn)]

    def happen(self, what, pick, payload):
        """Apply one happening; return what the module prints for it (nothing if it cannot happen)."""
        if what == "frame":
            sids = self.open()
            return self.slots[sids[pick % len(sids)]].frame(payload, pick // 8) if sids else b""
        # An event: what the socket threads print between any two bytes of the scan.
        if what == "disconnect":
            sids = [sid for sid in self.open() if sid not in self.named]
            if not sids:
                return b""
            sid = sids[pick % len(sids)]
            self.slots[sid] = None
            self.ended.add(sid)
        elif what == "connect":  # a browser takes the listener's id
            sid = self.slots.index(LISTENING) if LISTENING in self.slots else -1
            if sid < 0 or sid in self.ended:
                return b""
            self.new(sid, ACCEPTED)
        else:  # the module relistens on its lowest free id
            if LISTENING in self.slots or None not in self.slots:
                return b""
            sid = self.slots.index(None)
            self.slots[sid] = LISTENING
        self.events.add((SOCKET_EVENTS[what.upper().encode()], sid))
        return b"\r\n[%s %d]\r\n" % (what.upper().encode(), sid)

    def scan(self, ssids, script):
        """AT+WSCAN's output, with the script's happenings where their line and offset put
        them; sets ``names``: the names each network may be listed with."""
        lines = [SCAN_HEAD] + [row(i, ssid) for i, ssid in enumerate(ssids)] + [b"[OK]\r\n"]
        last = len(lines) - 1
        out = []
        self.names = []
        for n, line in enumerate(lines):
            done = 0
            start = line.find(b"/") + 1  # where a row's SSID begins
            inside = []  # (offset in the SSID, event) for this row
            landing = []
            for _, offset, what, pick, payload in (h for h in script if min(h[0], last) == n):
                at = min(offset, len(line))
                if n == last and what != "frame" and at:
                    at = len(line)  # not inside the final [OK]
                elif 0 < n < last:  # frames and events alike come between the module's prints
                    at = between_prints(at, start, start + len(ssids[n - 1]), len(line))
                landing.append((at, what, pick, payload))
            for at, what, pick, payload in sorted(landing, key=lambda h: h[0]):
                printed = self.happen(what, pick, payload)
                out += [line[done:at], printed]
                done = at
                if 0 < n < last and what != "frame" and printed and start <= at <= start + len(ssids[n - 1]):
                    inside.append((at - start, printed))
            out.append(line[done:])
            if 0 < n < last:
                self.names.append(names(ssids[n - 1], inside))
        return b"".join(out)

    def smgmt(self, cmd):
        """AT+SMGMT=?: the module's own list, as it is after the scan."""
        rows = []
        for sid, c in enumerate(self.slots):
            if c == LISTENING:
                rows.append(b"%d/TSN/0.0.0.0:0/80/0" % sid)
            elif c is not None:
                rows.append(c.smgmt_row())
        return listing(rows)


# SSID pieces: what the module prints of its own, and what a parser might take for it.
PIECES = st.one_of(
    st.sampled_from([b"\r", b"\n", b"\r\n", b"[OK]", b"[ERROR]", b"[Reset Event]", b"[Link-Down Event]", b"/"]),
    st.sampled_from([b"MyAP", b"x", b"0", b"12", b" "]),
    st.builds(lambda word, sid: b"[%s %d]" % (word, sid), st.sampled_from(sorted(SOCKET_EVENTS)), st.integers(0, 7)),
    st.integers(5, 32).map(lambda k: BANNER[:k]),
    st.just(BANNER[-15:]),  # "(WIZnet Co.Ltd)": a line that ends so is a banner
    st.lists(st.integers(0x80, 0xFF), min_size=1, max_size=3).map(bytes),  # Latin-1, GBK, broken UTF-8
    st.tuples(st.just("header"), st.integers(0, 7), st.integers(0, 7), st.integers(0, 20)),
)
PAYLOAD = st.lists(st.sampled_from(TRICKY) | st.binary(min_size=1, max_size=12), min_size=1, max_size=3).map(b"".join)
# (line: 0 the scan's head, then the rows, then its [OK], which takes any number past them;
#  offset in that line; what; which socket; payload)
HAPPENING = st.tuples(
    st.integers(0, 7), st.integers(0, 90), st.sampled_from(["frame", "frame", "disconnect", "connect", "listen"]),
    st.integers(0, 31), PAYLOAD,
)  # fmt: skip


@st.composite
def scans(draw):
    """(the listener's id, (id, kind) of each connection, the ids of those that had a frame
    before the scan, the SSIDs, the happenings)."""
    ids = draw(st.lists(st.integers(0, 7), min_size=2, max_size=4, unique=True))
    conns = [(sid, draw(st.sampled_from([TCP, ACCEPTED, UDP]))) for sid in ids[1:]]
    primed = [sid for sid, kind in conns if kind != UDP and draw(st.booleans())]
    ssids = []
    for _ in range(draw(st.integers(1, 6))):
        pieces = []
        for piece in draw(st.lists(PIECES, max_size=8)):
            if isinstance(piece, tuple):  # a header naming a TCP connection whose peer is known
                if not primed:
                    continue
                _, pick, other, length = piece
                sid = primed[pick % len(primed)]
                uid = ids.index(sid) - 1  # its place among the connections
                piece = header(sid, peer(other) if other != uid else ("6.6.6.6", 6), length)
            pieces.append(piece)
        ssids.append(b"".join(pieces)[:32])
    return ids[0], conns, primed, ssids, draw(st.lists(HAPPENING, max_size=8))


# Bytes per UART read, in turn: all that is there, or a cycle of sizes.
READS = st.none() | st.lists(st.integers(1, 64), min_size=1, max_size=6)


async def answer(coro, module):
    """``coro``'s result, or AssertionError if it still waits once the module said all it had to."""
    task = asyncio.ensure_future(coro)
    quiet = 0
    while not task.done() and quiet < 5:
        await settle()
        quiet = 0 if module.uart.pending() else quiet + 1
    if not task.done():
        task.cancel()
        raise AssertionError("no end: a command took another's final line, or none came", module.commands)
    try:
        return task.result()
    except OSError as e:
        raise AssertionError("failed", e, module.commands)


async def scan_then_minfo(listener, conns, primed, ssids, script, reads):
    model = Model(listener, conns, {int(sid) for sid in re.findall(rb"\{([0-7]),", b"".join(ssids))})
    sizes = reads and itertools.cycle(reads)
    module = Module(cut=sizes and (lambda n: next(sizes)))
    engine, events = engine_with(module, socket_rx=4096)
    engine.wifi["state"] = "up"
    engine.server_port = 80
    held = {}  # sid -> the socket each connection had before the scan
    for sid, c in enumerate(model.first):
        if c == LISTENING:
            engine._listen(sid)
        elif c is None:
            continue
        elif c.kind == UDP:  # opened as an application opens one: it knows its remote
            module.replies[b"AT+SCON=O,UCN"] = b"\r\n[CONNECT %d]\r\n[OK]\r\n" % sid
            held[sid] = await engine.open_socket(UDP, c.peer[0], c.peer[1], 5000)
        else:
            held[sid] = engine._new_socket(sid, c.kind, 30000 + sid if c.kind == TCP else 80)
    del module.commands[:]

    # Which connection's frame each socket took its payload from (None: no real frame's).
    announced = [None]
    got = {}  # Socket -> [(Conn or None, bytes)]

    def frame(sid, length):
        address = engine.parser.frame_peer()
        announced[0] = next((c for c in model.conns if c.sid == sid and address in c.senders), None)
        return Engine.frame(engine, sid, length)

    def recording(sock, mv, start, end):
        n = write(sock, mv, start, end)
        got.setdefault(sock, []).append((announced[0], bytes(mv[start : start + n])))
        return n

    engine.frame = frame
    write = Socket.write
    Socket.write = recording
    try:
        module.uart.emit(b"".join(model.slots[sid].frame(b"hello %d" % sid) for sid in primed))
        await settle()
        module.replies.update({b"AT+WSCAN": model.scan(ssids, script), b"AT+SMGMT=?": model.smgmt, b"AT+WSTAT": WSTAT, b"AT+MINFO": MINFO})
        module.replies[b"AT+SMGMT="] = lambda cmd: b"[OK]\r\n\r\n[DISCONNECT %s]\r\n" % cmd[9:]
        found = await answer(WiFi(engine).scan(), module)
        info = await answer(engine.command(b"AT+MINFO"), module)
        while module.uart.pending():
            await settle()
        await settle()
    finally:
        Socket.write = write
        engine.stop()
    check(engine, model, found, info, module.commands, events, held, got)


def check(engine, model, found, info, commands, events, held, got):
    assert engine.counters["resets"] == 0 and not engine.restarting, "a restart was seen"
    assert engine.wifi["state"] == "up", "the link went down"
    # Every frame's payload reached its connection's socket, once, in order; no SSID text did.
    for sock, pieces in got.items():
        conns = {c for c, _ in pieces}
        assert None not in conns, ("SSID text reached a socket", sock, pieces)
        assert len(conns) == 1, ("two connections' payload in one socket", sock)
    for c in model.conns:
        socks = [sock for sock, pieces in got.items() if pieces[0][0] is c]
        assert len(socks) <= 1 and b"".join(b for s in socks for _, b in got[s]) == c.sent, ("payload", c.uid)
    # Every network, in order, named as it named itself (or with a real event in its name
    # read as its text: the check of the socket table after the scan then finds it out).
    rows = [(n["bssid"], n["rssi"], n["security"], n["channel"]) for n in found]
    assert rows == [("00:11:22:33:44:%02X" % i, -40 - i, "WPA2-Mixed", i + 1) for i in range(len(model.names))], (
        "networks", found)
    for n, may in zip(found, model.names):
        assert lone_lf(n["ssid"]) in may, ("name", n["ssid"], may)
    # The scan ended on its own [OK], and the next command got its own answer.
    table_checked = [b"AT+SMGMT=?", b"AT+WSTAT"] if engine.counters["air"] else []
    assert commands == [b"AT+WSCAN"] + table_checked + [b"AT+MINFO"], ("commands", commands)
    assert info == MINFO.split(b"\r\n")[:2], ("AT+MINFO", info)
    # The table is as the module is; a connection it kept keeps its socket.
    for sid, (sock, c) in enumerate(zip(engine.table, model.slots)):
        if c is None:
            assert sock is None, ("not on the module", sid, sock)
        elif c == LISTENING:
            assert sock is not None and sock.kind == LISTENER, ("listener", sid, sock)
        else:
            assert sock is not None and sock.open and not sock.closing and sock.kind == c.kind, ("lost", sid, sock)
    for sid, sock in held.items():
        kept = model.slots[sid] is model.first[sid]
        assert engine.table[sid] is sock if kept else not sock.open, ("socket", sid, sock)
    # The application hears real events only.
    assert all(event in model.events for event in events), ("events", events, model.events)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(scans(), READS)
def test_a_scan_lists_hostile_ssids_while_sockets_print_frames_and_events_into_it(scan, reads):
    run(scan_then_minfo(*scan, reads))

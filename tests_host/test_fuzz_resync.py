"""Hypothesis: resync_table against a model of the module that prints ``AT+SMGMT=?`` while
its sockets come and go. CPython only; shrunk findings go to test_resync_races.py.

Modelled. Each id has a role (``ROLES``): what the module has on it and what the table
holds: a browser the driver knows, a client or UDP socket it opened, an orphan client or
UDP row nobody opened (or a late client the server took for a browser), a stale socket
whose end was missed, a browser whose [CONNECT n] was missed, a stale client whose id a
browser got, a free id; and the listener, on the module and in the table, on one id, two,
or none. A script lands at any byte of the list, inside rows too (a row is printed in
several writes, reference 5.5), after its [OK], or in the answer to the next command: a
browser or a client's peer leaves ([DISCONNECT n]), a browser takes the listener ([CONNECT
n] on its id, which the table may hold as free; 5.3), the module relistens on its lowest
free id ([LISTEN n], only while it has none), and frames for its sockets, their payload
made to look like module output. A row shows its id as it was when the row began. The
module answers resync_table's closes ([OK], then [DISCONNECT n]) and the server's
relisten (AT+SCON=O,TSN) from its state then. The UART hands over 1, 7, 64 or all bytes.

Not modelled: the [CONNECT n] of a late client's SCON on a free id during the list (taken
for a browser until the next resync, by design), restarts, lost bytes, timeouts and
SSENDs racing the resync (see test_resync_races.py), output inside a row's CRLF or the
header line (one write each, as far as the reference tells).

Weakened: a stale socket on an id the module reused gets that id's frames until the list
is read (nothing tells the driver sooner), so "no connection's payload goes to another
socket" is checked as "no socket gets two connections' payload", and as "exactly its own
payload" for each socket that is what the module has on its id.

``WIZFI_FUZZ_RESYNC=3000`` runs that many examples.
"""

import asyncio
import os

from cases_resync import _SERVING, _done, _server_after
from fakeuart import Module, eq, run, settle
from gen import TRICKY
from hypothesis import given, settings
from hypothesis import strategies as st
from wizfi250.engine import Engine
from wizfi250.sockets import ACCEPTED, LISTENER, TCP, UDP, Socket

EXAMPLES = int(os.environ.get("WIZFI_FUZZ_RESYNC", "200"))

BROWSER, LISTENING, CLIENT, DATAGRAM = "browser", "listener", "TCN", "USN"  # what the module has on an id
SAME = {BROWSER: ACCEPTED, LISTENING: LISTENER, CLIENT: TCP, DATAGRAM: UDP}  # the table's word for it
ROLES = {  # an id's role: (module, table)
    "free": (None, None),
    "browser": (BROWSER, ACCEPTED),
    "client": (CLIENT, TCP),
    "udp": (DATAGRAM, UDP),
    "orphan client": (CLIENT, None),
    "orphan udp": (DATAGRAM, None),
    "late client": (CLIENT, ACCEPTED),  # its SCON gave up; the server took its [CONNECT n]
    "stale browser": (None, ACCEPTED),
    "stale client": (None, TCP),
    "stale udp": (None, UDP),
    "missed browser": (BROWSER, None),
    "reused": (BROWSER, TCP),  # the client's end was missed; a browser got its id
}


class Conn:
    """One socket on the module, and the payload its frames carried."""

    def __init__(self, uid, kind, owned):
        self.uid, self.kind, self.owned = uid, kind, owned  # owned: the table holds it as what it is
        self.sent = bytearray()

    def peer(self):
        if self.kind == BROWSER:
            return b"10.0.0.%d" % (10 + self.uid), 40000 + self.uid
        return (b"10.0.0.7", 5000) if self.kind == CLIENT else (b"10.0.0.5", 9999)

    def row(self, sid):
        remote = b"%s:%d" % self.peer() if self.kind in (BROWSER, CLIENT) else b"0.0.0.0:0"
        mode = b"TSN" if self.kind in (BROWSER, LISTENING) else self.kind.encode()
        local = {CLIENT: 30001, DATAGRAM: 7000}.get(self.kind, 80)
        return b"%d/%s/%s/%d/0" % (sid, mode, remote, local)


class Model:
    """The module: its 8 ids, the list it prints, its answers to closes and relistens."""

    def __init__(self, kinds, table):
        self.table = table  # the driver's table before the list
        self.uids = 0
        self.slots = [None] * 8
        for sid, kind in enumerate(kinds):
            if kind is not None:
                self.new(sid, kind, SAME[kind] == table[sid])
        self.frames = []  # the Conn of each frame, in order
        self.touched = set()  # ids an event changed
        self.later = []  # happenings in the answer to the next command
        self.wrong = []  # closes of an id someone uses

    def new(self, sid, kind, owned=False):
        self.slots[sid] = Conn(self.uids, kind, owned)
        self.uids += 1

    def lowest_free(self):
        return self.slots.index(None) if None in self.slots else -1

    def listener(self):
        return next((sid for sid, c in enumerate(self.slots) if c and c.kind == LISTENING), -1)

    def happen(self, what, pick, payload):
        """Apply one happening; return what the module prints for it (nothing if it cannot happen)."""
        if what == "frame":
            sids = [sid for sid, c in enumerate(self.slots) if c and c.kind != LISTENING]
            if not sids:
                return b""
            sid = sids[pick % len(sids)]
            conn = self.slots[sid]
            conn.sent += payload
            self.frames.append(conn)
            return b"{%d,%s,%d,%d}" % ((sid,) + conn.peer() + (len(payload),)) + payload + b"\r\n"
        if what == "disconnect":  # a browser or a client's peer leaves (UDP never does)
            sids = [sid for sid, c in enumerate(self.slots) if c and c.kind in (BROWSER, CLIENT)]
            if not sids:
                return b""
            sid = sids[pick % len(sids)]
            self.slots[sid] = None
        elif what == "connect":  # a browser takes the listener's id
            sid = self.listener()
            if sid < 0:
                return b""
            self.new(sid, BROWSER)
        else:  # the module's own relisten, on its lowest free id
            sid = self.lowest_free()
            if sid < 0 or self.listener() >= 0:
                return b""
            self.new(sid, LISTENING)
        self.touched.add(sid)
        return b"\r\n[%s %d]\r\n" % (what.upper().encode(), sid)

    def listing(self, script):
        """AT+SMGMT=?, with the script's happenings where their slot and offset put them."""
        count = sum(c is not None for c in self.slots)
        out = [b"Number of Sockets : %d (SCID/Mode/Remote/Local/DataMode)\r\n" % count]
        self.later = sorted((a for a in script if a[0] == 10), key=lambda a: a[1])
        for slot in range(10):  # 0-7: in or before that id's row; 8: after the rows; 9: after the [OK]
            out.append(b"[OK]\r\n" if slot == 9 else b"")
            conn = self.slots[slot] if slot < 8 else None
            row = conn.row(slot) if conn else b""
            done = 0
            for _, offset, what, pick, payload in sorted((a for a in script if a[0] == slot), key=lambda a: a[1]):
                at = min(offset, len(row))
                out += [row[done:at], self.happen(what, pick, payload)]
                done = at
            out.append(row[done:] + b"\r\n" if row else b"")
        return b"".join(out)

    def meanwhile(self):
        """What happens while the first command after the list is on the wire (slot 10)."""
        out = b"".join(self.happen(what, pick, payload) for _, _, what, pick, payload in self.later)
        self.later = []
        return out

    def close(self, cmd):  # AT+SMGMT=<sid>
        out = self.meanwhile()
        sid = int(cmd[9:])
        conn = self.slots[sid]
        if conn is None:
            return out + b"[ERROR: INVALID INPUT]\r\n"
        if conn.kind in (BROWSER, LISTENING) or conn.owned:
            self.wrong.append((sid, conn.kind))
        self.slots[sid] = None
        return out + b"[OK]\r\n\r\n[DISCONNECT %d]\r\n" % sid

    def relisten(self, cmd):  # AT+SCON=O,TSN,,,80,0: the server's, after an accept
        out = self.meanwhile()
        sid = self.lowest_free()
        if sid < 0:
            return out + b"[ERROR: INVALID SCID]\r\n"
        if self.listener() >= 0:  # port 80 listens already: a listen error on the new id
            return out + b"[OK]\r\n\r\n[DISCONNECT %d]\r\n" % sid
        self.new(sid, LISTENING)
        return out + b"[OK]\r\n\r\n[LISTEN %d]\r\n" % sid


@st.composite
def states(draw):
    """(module kinds, table kinds) for ids 0-7."""
    roles = [ROLES[name] for name in draw(st.lists(st.sampled_from(sorted(ROLES)), min_size=8, max_size=8))]
    kinds, table = [m for m, _ in roles], [t for _, t in roles]
    on_module = draw(st.none() | st.integers(0, 7))
    in_table = draw(st.sampled_from([on_module, None]) | st.integers(0, 7))
    if on_module is not None:
        kinds[on_module] = LISTENING
    if in_table is not None:
        table[in_table] = LISTENER
    return kinds, table


PAYLOAD = st.lists(st.sampled_from(TRICKY) | st.binary(min_size=1, max_size=12), min_size=1, max_size=3).map(b"".join)
# (slot: 0-7 that row, 8 after the rows, 9 after the [OK], 10 in the next answer; offset in the row; what; which; payload)
HAPPENING = st.tuples(
    st.integers(0, 10), st.integers(0, 30), st.sampled_from(["frame", "disconnect", "connect", "listen"]),
    st.integers(0, 7), PAYLOAD,
)  # fmt: skip


async def quiet(module, server, done=lambda: True):
    """Until ``done()``, the module's output is read and parsed, and the server's relistens are over."""
    for _ in range(1000):
        await settle()
        if done() and not module.uart.pending() and not server._relistening:
            await settle()  # the last bytes read are parsed a turn later
            return


async def resync(kinds, table, script, read_size):
    module = Module(cut=read_size and (lambda n: read_size))
    net, engine, _, held = await _server_after(module, b"")  # its listener on 0
    server = net.servers[0]
    try:
        module.replies[b"AT+SCON=O,TSN"] = b"[ERROR]\r\n"  # the setup's relistens change nothing
        browsers = [sid for sid, kind in enumerate(table) if kind == ACCEPTED]
        module.uart.emit(b"".join(b"\r\n[CONNECT %d]\r\n" % sid for sid in browsers))
        await quiet(module, server, lambda: all(engine.table[sid] for sid in browsers))
        for sid, kind in enumerate(table):  # the rest of the table, as the roles say
            if kind is None:
                engine.table[sid] = None  # the listener of start_server
            elif kind == LISTENER:
                engine._listen(sid)
            elif kind != ACCEPTED:
                engine._new_socket(sid, kind)
        assert [s and s.kind for s in engine.table] == table, "setup"
        model = Model(kinds, table)
        module.replies.update({b"AT": b"[OK]\r\n", b"AT+SMGMT=": model.close, b"AT+SCON=O,TSN": model.relisten})
        module.replies[b"AT+SMGMT=?"] = lambda cmd: model.listing(script)
        before = {sock: model.slots[sock.sid] for sock in engine.table if sock is not None}
        orphans = [sid for sid, c in enumerate(model.slots) if c and c.kind in (CLIENT, DATAGRAM) and not c.owned]

        # Which frame's payload each socket took, as the parser hands it over.
        announced = []
        got = {}  # Socket -> [(frame number, bytes)]
        engine.frame = lambda sid, length: announced.append(sid) or Engine.frame(engine, sid, length)
        write = Socket.write

        def recording(sock, mv, start, end):
            closing = sock.closing  # (a closing socket drops what comes)
            n = write(sock, mv, start, end)
            if not closing:
                got.setdefault(sock, []).append((len(announced) - 1, bytes(mv[start : start + n])))
            return n

        Socket.write = recording
        try:
            await asyncio.wait_for(engine.resync_table(), 10)
            await quiet(module, server)
        finally:
            Socket.write = write
        check(engine, model, before, got, orphans, module.commands)
    finally:
        await _done(engine, held)


def check(engine, model, before, got, orphans, commands):
    # 1. The reader lives (and resync_table raised nothing, or we would not be here).
    assert engine._task is not None and not engine._task.done(), "reader died"
    for sock, conn in before.items():
        same = conn is not None and SAME[conn.kind] == sock.kind  # the table was right about it
        if same and model.slots[sock.sid] is conn:
            # 2. What the module still has stays in the table, the same object, open.
            assert engine.table[sock.sid] is sock and sock.open and not sock.closing, ("lost", sock)
        elif sock.kind != LISTENER:  # (a listener has no reader: where it is is checked below)
            # 3. What the module no longer has, or never had, is ended: its reader is told.
            assert not sock.open, ("not ended", sock, conn and conn.kind)
        if same:  # 2. ... and got exactly its payload.
            assert b"".join(b for _, b in got.get(sock, [])) == conn.sent, ("payload", sock)
    # 5. No socket gets two connections' payload.
    for sock, pieces in got.items():
        assert len({model.frames[i].uid for i, _ in pieces}) == 1, ("mixed payload", sock)
    # 3. The table and the module agree: an open socket in the table is there, and the
    #    listener and every browser there are in the table.
    for sid, (sock, conn) in enumerate(zip(engine.table, model.slots)):
        if sock is not None and sock.open and not sock.closing:
            assert conn is not None and SAME[conn.kind] == sock.kind, ("not on the module", sid, sock)
        if conn is not None and conn.kind in (BROWSER, LISTENING):
            assert sock is not None and sock.kind == SAME[conn.kind], ("not in the table", sid, conn.kind)
    # 4. Every orphan whose id no event changed is closed, and nothing anyone uses is.
    for sid in orphans:
        assert sid in model.touched or b"AT+SMGMT=%d" % sid in commands, ("orphan not closed", sid)
    assert not model.wrong, ("closed", model.wrong)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(states(), st.lists(HAPPENING, max_size=8), st.sampled_from([None, 1, 7, 64]))
def test_resync_table_keeps_the_table_true_to_a_module_that_changes_while_listing(state, script, read_size):
    run(resync(state[0], state[1], script, read_size))


"""The AT engine: one reader task owns the UART, one command is in flight.

The module never stops talking: frames and events for any socket can land
between a command and its final line, even inside the SSEND prompt (protocol
reference 4.7). So nothing here waits for "the next line". The reader task
feeds every byte to the parser; the parser calls back ``line``, ``frame``
and ``error``; the engine routes each to where it belongs:

* payload goes straight into its socket's ring (``frame``);
* socket events change the socket table at once, and their delivery to the
  application (``on_event``) is parked while a transaction is open, then
  replayed in arrival order when it ends;
* the final line of the open transaction (``[OK]``, ``[ERROR...]``, and for
  SSEND ``[TCP Send Error]``) ends it; nothing else does.

A command caller waits on an ``asyncio.Event`` that the reader sets when its
transaction moves, and a ticker every ``_TICK_MS``, for the command's own timeout.
"""

import asyncio

from . import parser as P
from .compat import EventWaiter, const, sleep_ms, text, ticks_add, ticks_diff, ticks_ms
from .ring import Ring
from .sockets import ACCEPTED, ECONNRESET, ENOBUFS, LISTENER, TCP, UDP, Socket

SSEND_MAX = 1400  # payload per SSEND: what the module reads in one piece (reference 4.4)
# Private consts, folded into the code: a public name is one more qstr (see README, the qstr cliff).
_QUIET_MS = const(100)  # after a restart or a resync, stale answers pass for this long
_CUT_QUIET_MS = const(500)  # a frame whose bytes stopped this long ago was cut (see _cut_frame)
_CUT_LATE_MS = const(2000)  # ... or this long, for one begun after the command on the wire
_BANNER_MS = const(3000)  # after AT+MRESET's [OK], wait this long for the banner before asking (reference 2.4)
_RESTART_MS = const(20000)  # ... and this long in all for the module to answer again
_LEND_MS = const(10)  # a full socket unread this long while a command waits is lent a ring (see _lend)
_LENT_MAX = const(8)  # ... up to this many
_POLL_MS = const(5)  # how often a command's answer is looked for when there is no heap to wait for it
_TICK_MS = const(100)  # how often a waiting command looks at its deadline (see _tick)
_LINE_MAX = const(255)  # a command line's bytes the module keeps; it runs the line cut there (reference 1.2)

EIO = 5
EINVAL = 22
ETIMEDOUT = 110
ECONNREFUSED = 111
ECONNABORTED = 103

_SOCKET_EVENTS = (P.CONNECT, P.DISCONNECT, P.LISTEN)
_WIFI_EVENTS = (P.LINK_UP, P.LINK_DOWN, P.JOIN, P.IP_ADDR, P.GATEWAY)


class _Transaction:
    """One AT command on the wire, and what has come back for it so far."""

    def __init__(self, cmd, prompt=None, claim=False):
        self.cmd = cmd  # the command line without CR (its echo is ignored)
        self.lines = []  # information lines: WSTAT/SMGMT/FDNS output
        self.final = -1  # the kind of the terminal line, once seen
        self.text = b""  # the terminal line itself
        self.prompt = prompt  # SSEND: the (sid, len) prompt awaited; True once seen
        self.claim = claim  # SCON client: the first [CONNECT n]/[DISCONNECT n] of a free id is ours
        self.claimed = None  # type: tuple | None  # (kind, sid) once claimed
        self.sock = None  # type: Socket | None  # SCON: the client's socket; its [CONNECT n] gives it an id
        self.closing = -1  # SMGMT: the sid whose [DISCONNECT n] belongs to this command
        self.listened = False  # a [LISTEN n] came while this command was open
        self.error = None  # OSError to raise in the waiter (module reset)
        self.whole = None  # a listing of what came over the air (WSCAN): tells a whole row (see _air)


class Engine:
    """Drives one module over ``transport`` (``async readinto(buf)``, ``async write(buf)``)."""

    def __init__(self, transport, rx_size=2048, max_line=256, socket_rx=2048, stall_ms=5000, rings=0):
        self.transport = transport
        self.parser = P.Parser(self, rx_size, max_line)
        self.table = [None] * 8  # type: list[Socket | None]  # sid -> Socket, as the module sees it now
        self.socket_rx = socket_rx
        self.stall_ms = stall_ms  # a full socket ring may hold the UART this long
        self.on_event = None  # callable(kind, arg): app-visible events, in order
        self.on_accept = None  # callable(sock): each connection a server took, in order with them
        self.server_port = 0  # local port of the last TSN; the listener migrates with it
        self.wifi = {"state": "down", "ip": "", "gateway": "", "ssid": ""}
        self.counters = {
            "commands": 0, "timeouts": 0, "frames": 0, "rx_bytes": 0, "tx_bytes": 0,
            "ssend": 0, "send_errors": 0, "stray": 0, "resets": 0, "overflow": 0,
            "discarded": 0, "adopted": 0, "no_memory_reads": 0, "udp_dropped": 0, "air": 0,
        }  # fmt: skip
        self.tx = None
        self._row = None  # a row of the listing in flight whose SSID may go on (see _air)
        self._reach = 0  # ... and how many of its SSID's 32 bytes it has taken
        self.pending = []
        # One command at a time. Taken with acquire() and let go in a ``finally``, never with
        # ``async with``: its exit makes a coroutine, and one that found no heap left the
        # lock taken for good, and every later command waiting for it (seen with the heap
        # locked under MicroPython 1.29).
        self._lock = asyncio.Lock()
        # Where ssend_from copies each chunk. A firmware (``rings``) makes it now: made at
        # its first send, on a heap fragmented by then, it failed at 160K (measured).
        self._payload = memoryview(bytearray(SSEND_MAX)) if rings else None
        # The open transaction made progress, or _tick came. Only the lock's holder waits on
        # it, so an EventWaiter serves: a wait allocates nothing.
        self._moved = EventWaiter(asyncio.Event())
        # Spare receive rings: a new socket takes its ring from here, a released one gives
        # its rings back, and rings lent to a full socket (``_lend``) come back once read.
        # A firmware makes them up front (``rings``): on a busy, fragmented heap a 2 KB ring
        # for a new connection can fail, and that connection is then lost (see _new_socket).
        self.rings = [Ring(socket_rx) for _ in range(rings)]
        self._resync = False
        # A prompt came after its SSEND had timed out: until this deadline (or the final
        # line that ends it), the module takes every byte as that SSEND's payload.
        self._absorbing = None  # the deadline, in ticks_ms
        self._frames_at = 0  # frames received when the command on the wire was sent
        self._touched = None  # during resync_table: the ids whose state changed meanwhile
        self._orphans = 0  # bit sid: a connection open on the module that found no heap here
        self._echo_off = False  # init turned echo off: an echo now means the module restarted
        # From a module restart until init() has set it up again, only init speaks (see _run).
        self.restarting = False
        self._init_task = None
        self._task = None
        self.last_rx = ticks_ms()  # when the module last said anything (liveness)

    # --- life cycle ---------------------------------------------------------

    def start(self):
        if self._task is None:
            self._task = asyncio.create_task(self._reader())
        return self._task

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _reader(self):
        parser = self.parser
        rx = parser.rx
        transport = self.transport
        readinto = transport.readinto
        # A transport may also read without waiting: while the module streams,
        # that skips a coroutine (and its heap block) for every UART read.
        ready = getattr(transport, "readinto_now", None)
        since = None  # when a full socket ring began to hold the UART, or last let the parser on
        held = 0  # where the parser stood then: an app that reads, however slowly, is no stall
        ticker = None
        try:
            ticker = asyncio.create_task(_tick(self))
            while True:
                if parser.parse():  # lines and frames whose handling finds no heap are lost there, not here
                    since = None
                    try:
                        space = rx.space()
                        n = ready(space) if ready is not None else 0
                        rx.commit(n or await readinto(space))
                    except MemoryError:
                        # No heap for the read itself (a memoryview, a coroutine): nothing
                        # was taken from the UART. The connections holding the heap end
                        # or fail on their own; the driver must not end with them.
                        self.counters["no_memory_reads"] += 1
                        await sleep_ms(10)
                        continue
                    self.last_rx = ticks_ms()
                    continue
                # A socket ring is full mid-frame: hold the UART (RTS) until the app reads.
                # Polled every millisecond, here and not in a coroutine of its own (a heap
                # block per stall, so per frame when the app reads slower than the wire):
                # ``sleep_ms`` allocates nothing where an Event wait (and worse,
                # ``wait_for``) allocates every time.
                if since is None or rx.head != held:
                    since = ticks_ms()
                    held = rx.head
                else:
                    waited = ticks_diff(ticks_ms(), since)
                    if waited > self.stall_ms:
                        since = None
                        self._drop_stalled()
                        continue
                    if waited >= _LEND_MS and self.tx is not None and self._lend(parser._target):
                        continue
                await sleep_ms(1)
        except BaseException as e:  # stopped, cancelled with the program, transport failed, heap ran out
            if ticker is not None:
                ticker.cancel()
            if self._task is asyncio.current_task():
                self._task = None  # commands now fail at once instead of timing out
            if isinstance(e, asyncio.CancelledError):
                self._fail_all(ECONNABORTED, "driver stopped")
            else:
                self._fail_all(e.args[0] if isinstance(e, OSError) and e.args else EIO, repr(e))
            raise

    def _lend(self, sock):
        """Lend the full ``sock`` a spare ring behind its own, while a command waits; True if lent.

        The command's answer is behind the frame the full ring holds, and the task
        that would read the socket may be the one waiting for it: an echo's send of
        what it read waits for its prompt while the rest of the peer's message, ahead
        of that prompt, fills the ring. Held, the UART stood still until the stall
        limit dropped the socket. Lent rings come from the spare ones (else the heap)
        and go back once read (``Socket.advance``). A socket takes at most
        ``_LENT_MAX``, then the UART is held as before: a peer that keeps sending
        faster than the app reads must be held back, and only the UART can do that."""
        assert isinstance(sock, Socket)  # only a socket's ring refuses payload
        ring = sock.rx
        lent = 0
        while ring.next is not None:
            ring = ring.next
            lent += 1
        if lent == _LENT_MAX:
            return False
        try:
            ring.next = self.rings.pop() if self.rings else Ring(self.socket_rx)
        except MemoryError:
            return False
        ring.next.clear()
        return True

    def _drop_stalled(self):
        """The app stopped reading the socket whose full ring holds the UART.

        Better one socket lost with a reported error than every socket, and
        every transaction, stuck behind it."""
        sock = self.parser._target
        assert isinstance(sock, Socket)  # only a socket's ring refuses payload
        self.counters["overflow"] += 1
        self.drop(sock)

    def drop(self, sock):
        """Give ``sock`` up from where nothing may wait (the reader, an accept). Its reader
        gets ENOBUFS (after what its rings hold, until the close clears them), never a clean
        end of a stream that lost bytes. It is closed on the module too, and stays in the
        table until then, dropping what still comes: forgotten while open there, its next
        frame would look like a new connection (adopted, and handed to the server)."""
        self.counters["discarded"] += self.parser.abandon(sock)
        sock.closing = True
        sock.error = ENOBUFS
        sock.changed.set()
        try:
            asyncio.create_task(self._close_dropped(sock))
        except MemoryError:
            self._end_socket(sock, ENOBUFS)  # no heap for the close: forgotten, as a last resort

    async def _close_dropped(self, sock):
        while True:
            try:
                await self.close_socket(sock)
            except OSError:
                pass  # a restart ended it anyway
            except MemoryError:
                if self.table[sock.sid] is sock:
                    await sleep_ms(_TICK_MS)  # no heap before its SMGMT went out: again
                    continue
            return

    # --- commands -----------------------------------------------------------

    async def init(self, restart=False):
        """Bring a (re)started module to what this driver relies on.

        Echo off (an echoed byte can land inside a frame, reference 1.4), message
        level 2 (``[OK]`` and ``[CONNECT n]`` live there), ``[LISTEN n]`` events (the
        only word of where the server's listener went) and the multi-connection
        server (one socket id per client).

        ``restart`` first restarts the module (``AT+MRESET``) and waits for its
        banner: for a driver that starts while the module kept running (the board
        was reset, or deployed to). It knows neither the module's Wi-Fi state nor
        the previous run's sockets, which would hold ids and whose data would be
        taken for new connections (a UDP socket's datagrams served as HTTP).
        """
        self._init_task = asyncio.current_task()
        try:
            if restart:
                resets = self.counters["resets"]
                try:
                    await self.command(b"AT+MRESET")
                except OSError:  # unless the banner came before the [OK] was seen (it fails every waiter)
                    if self.counters["resets"] == resets:
                        raise
                await self._restarted(resets)
            if self.restarting:
                # A command sent just before the restart may still be answered after
                # the banner: let those stale lines pass before the first command, or
                # its final line could be theirs.
                await sleep_ms(_QUIET_MS)
            for cmd in (b"AT", b"AT+MECHO=0", b"AT+MMSG=2", b"AT+MEVTMSG=1", b"AT+FSOCK=9,1"):
                await self.command(cmd)
            self.restarting = False
            self._echo_off = True
        finally:
            self._init_task = None

    async def _restarted(self, resets):
        """Wait until the module AT+MRESET restarts is back: its banner, or an answer to AT.

        The banner comes once the module has closed its sockets (1.2 s each with
        FSOCK option 9, which this driver sets), waited 500 ms and booted; a module
        set not to print one (AT+MEVTFORM) never sends it. So after ``_BANNER_MS``
        it is asked with AT, which it cannot answer before it is back.
        """
        started = ticks_ms()
        while self.counters["resets"] == resets:
            waited = ticks_diff(ticks_ms(), started)
            if waited < _BANNER_MS:
                await sleep_ms(20)
                continue
            if waited > _RESTART_MS:
                raise OSError(ETIMEDOUT, "no answer after AT+MRESET")
            try:
                await self.command(b"AT", 1000)
                return
            except OSError as e:  # still closing its sockets; or the banner came meanwhile
                if e.args[0] == ECONNABORTED:
                    raise

    async def command(self, cmd, timeout_ms=5000, whole=None):
        """Run one AT command; return its information lines; raise OSError on error.

        ``whole(line)`` is for a command that lists what came over the air (WSCAN):
        True for a whole row. A row cut short by a line end goes on (see ``_air``)."""
        await self._lock.acquire()
        try:
            tx = _Transaction(cmd)
            tx.whole = whole
            await self._run(tx, timeout_ms)
            return tx.lines
        finally:
            self._lock.release()

    async def open_socket(self, kind, host="", port=0, local_port=0, timeout_ms=8000):
        """AT+SCON: a TCP client, a UDP socket or a TCP server. Returns its ``Socket``
        (for a server: None if a waiting client took the new listener at once)."""
        if kind == LISTENER:
            args = b"O,TSN,,,%d,0" % local_port
        else:
            typ = b"TCN" if kind == TCP else (b"UCN" if host else b"USN")
            args = b"O,%s,%s,%s,%d,0" % (typ, host.encode(), (b"%d" % port) if port else b"", local_port)
        await self._lock.acquire()
        try:
            if kind == LISTENER:
                sock = self.listener()
                if sock is not None and sock.local_port == local_port:
                    return sock  # one listener per port: the module moves it, never doubles it
            tx = _Transaction(b"AT+SCON=" + args, claim=kind != LISTENER)
            if kind == LISTENER:
                self.server_port = local_port
            else:
                # Made before the command: with no heap for it once the module has
                # connected, the connection would stay open there with nobody here.
                tx.sock = Socket(self, 0, kind, local_port)
            await self._run(tx, timeout_ms)
            if kind == LISTENER:
                sock = self.listener()
                if sock is not None or tx.listened:
                    # Its [LISTEN n] came already, perhaps with a [CONNECT n] that took it:
                    # then a guessed listener would stop the next relisten.
                    return sock
                # Not yet: the module took the lowest free id; [LISTEN n] corrects us if not.
                sid = self._lowest_free()
                if sid < 0:
                    raise OSError(EIO, "no free socket")
                self._listen(sid)
                return self.table[sid]
            claimed = tx.claimed
            assert claimed  # _run ends a claiming SCON only once its id is claimed
            if claimed[0] != P.CONNECT:
                raise OSError(ECONNREFUSED, "connect failed")
            # Not self.table[sid]: the peer may have spoken and closed already. The
            # socket is then returned ended, with what it said still to read.
            sock = tx.sock
            if port and sock.head is None:  # else its first frame named the peer, as the module spells it
                sock.peer = (host, port)
            return sock
        finally:
            self._lock.release()

    async def close_socket(self, sock, timeout_ms=3000):
        """AT+SMGMT=sid, waiting for the module's [DISCONNECT n] too (either order).

        Whatever the module answers, the socket is ended here: if it was
        already gone on the module, closing it again changes nothing. If it
        ended while the close waited for its turn, nothing is sent: its id may
        already be a new connection's.

        What arrives for it from now on is dropped: a full ring would hold the
        UART, and with it this very command's answer, until the stall limit.

        With no heap for the close before its command goes out, ``MemoryError``
        is raised and the socket stays open, in the table, for the caller to close
        again (``Stream.wait_closed`` does until it can): forgotten here but open
        on the module, it would keep its peer waiting for the rest of a response
        until the peer gave up.
        """
        sock.closing = True
        ring = sock.rx
        while ring is not None:  # its own ring, and any lent to it
            self.counters["discarded"] += len(ring)
            ring.clear()
            ring = ring.next
        await self._lock.acquire()
        try:
            try:
                if self._resync:  # before the check: events come in while it runs
                    await self._settle()
            except OSError:
                pass  # the close's own command finds out whether the module answers
            if self.table[sock.sid] is not sock:
                sock.ended(0)
                return
            tx = _Transaction(b"AT+SMGMT=%d" % sock.sid)
            tx.closing = sock.sid
            commands = self.counters["commands"]  # _run counts the command just before it goes out
            kept = False
            try:
                await self._run(tx, timeout_ms)
            except OSError as e:
                if tx.error is not None:
                    raise  # a module reset: the caller must know
                if e.args[0] == ETIMEDOUT and tx.final == P.OK:
                    self._resync = False  # [OK] came; only the DISCONNECT did not
            except MemoryError:
                kept = self.counters["commands"] == commands  # nothing went out
                raise
            finally:
                if not kept:
                    self._end_socket(sock, 0)
        finally:
            self._lock.release()

    async def resync_table(self):
        """Make the socket table match the module's own list (``AT+SMGMT=?``).

        For when the driver may have missed events (a timeout, a restart of
        the driver alone): sockets the module no longer has are ended, a
        listener or connection it has that the table lacks is adopted (the
        connection goes to the server), and a client or UDP socket that nobody
        here opened is closed: its SCON gave up before its ``[CONNECT n]``, or an
        earlier run opened it. Nobody would read it, and the module has 8 ids.
        """
        listed = {}
        # The list is a snapshot from when it was printed: an id an event changed after
        # it (a client left, the listener moved) is already right here. Data that came
        # (``sid + 8`` in the list) changes nothing on the module: its row still holds.
        self._touched = touched = []
        try:
            lines = await self.command(b"AT+SMGMT=?")
        finally:
            self._touched = None
        part = ""  # a row an event split: the module prints one in pieces (reference 5.5)
        whole = True  # no row was left in pieces: which ids the list names is known
        for line in lines:
            line = text(line)
            # A row alone, or the rest of ``part`` (events are not in ``lines``): never
            # both, as an id is one digit.
            for alone in (False, True):
                row = (line if alone else part + line).split("/")  # sid/TSN/ip:port/local/datamode
                if len(row) == 5 and len(row[0]) == 1 and row[0].isdigit() and row[3].isdigit() and row[4].isdigit():
                    listed[int(row[0])] = (row[1], row[2].endswith(":0"), int(row[3]))
                    if alone and part:
                        whole = False  # ``part`` began a row whose rest was lost
                    part = ""
                    break
            else:
                line = part + line
                if line.split("/")[0].isdigit():
                    part = line  # it may begin a row: an id and then '/'
                else:
                    whole = whole and not part
                    part = ""  # not a row (a late answer such as an FDNS address)
        for sid, sock in enumerate(self.table):
            # Not listed: gone, unless a row is left in pieces (it may be this one's) or
            # the id changed since.
            if sock is not None and whole and not part and sid not in listed and sid not in touched and sid + 8 not in touched:
                self._end_socket(sock, ECONNRESET)
        orphans = []
        for sid, (kind, no_peer, local_port) in listed.items():
            if sid >= 8 or sid in touched:
                continue
            sock = self.table[sid]
            if kind == "TSN":
                # The listener or a browser's connection: a table socket of another kind
                # on its id is stale (its end was missed, and the module reused the id).
                want = LISTENER if no_peer else ACCEPTED
                if sock is not None and sock.kind == want:
                    continue
                if sock is not None:
                    self._end_socket(sock, ECONNRESET)
                self.counters["adopted"] += 1
                if no_peer:
                    self.server_port = local_port
                    self._listen(sid)
                else:  # a connection whose [CONNECT n] was missed: the server's
                    self._deliver(P.CONNECT, sid, self._new_socket(sid, ACCEPTED, local_port))
            elif sock is None or sock.kind == ACCEPTED or sock.kind == LISTENER:
                # A client or UDP socket nobody here opened: a late client the server took
                # for a browser (its reader fails), under a listener guessed on its id, or
                # unknown. In the table, closing, until its close: what comes for it is
                # dropped, not taken for a new connection, and if it leaves and a browser
                # gets its id meanwhile, close_socket leaves the browser alone.
                if sock is not None:
                    self._end_socket(sock, ECONNRESET)
                sock = self.table[sid] = Socket(self, sid, UDP if kind[0] == "U" else TCP)
                sock.closing = True
                orphans.append(sock)
        for sock in orphans:
            try:
                await self.close_socket(sock)
            except OSError:
                pass  # a reset: every socket ends anyway

    async def ssend(self, sock, data, ip="", port=0):
        """AT+SSEND: send ``data`` (at most ``SSEND_MAX`` bytes) on ``sock``, the whole transaction.

        Raises ``OSError(ECONNRESET)`` if ``sock`` ended while the send waited
        for its turn: its id may already belong to a new connection, which
        must never receive another connection's bytes.
        """
        await self._lock.acquire()
        try:
            if self._resync:  # tested here: a coroutine per send otherwise
                await self._settle()
            self._check_owner(sock)
            await self._ssend(sock, data, len(data), ip, port)
        finally:
            self._lock.release()

    async def ssend_from(self, sock, queue, n, source=None):
        """Send the first ``n`` bytes of the bytearray ``queue`` and remove them from it,
        followed in the same SSEND by what ``source.readinto`` puts in the rest of
        its ``SSEND_MAX`` bytes; return how many bytes came from ``source`` (0 at its end).

        The bytes are taken once the send has its turn, so two senders of one
        stream (a writer and its flush timer) keep their order, and they are
        copied into one buffer the engine keeps for every send: a stream
        streaming a file allocates nothing per chunk that could fragment the
        heap, and needs no buffer of its own for it, however many stream at once.

        A ``MemoryError`` means nothing was taken: the queue is as it was, and
        ``source`` is back where it was (``seek``), so the caller may try again
        once the heap has room. Bytes lost to a send that may have gone out
        raise ``OSError(ENOBUFS)``, and every later send of ``sock`` fails.
        """
        await self._lock.acquire()
        try:
            if self._resync:  # nothing taken yet: a failure here leaves the queue whole
                await self._settle()
            self._check_owner(sock)  # before taking a byte of the queue
            if sock.send_error:
                # An earlier send failed, maybe while this one waited for the lock:
                # its bytes are gone, and these must not reach the peer without them.
                raise OSError(sock.send_error)
            n = min(n, len(queue))
            payload = self._payload
            if payload is None:
                payload = self._payload = memoryview(bytearray(SSEND_MAX))
            if n:
                payload[:n] = memoryview(queue)[:n]  # copied: the queue loses them once they are out
            more = 0
            commands = self.counters["commands"]  # _run counts the command just before it goes out
            try:
                if source is not None:
                    more = source.readinto(payload[n:]) or 0
                if n + more:
                    await self._ssend(sock, payload[: n + more], n + more, "", 0)
            except OSError as e:
                sock.send_error = e.args[0] if e.args else EIO
                raise
            except MemoryError:
                kept = self.counters["commands"] == commands  # nothing went out
                if kept and more:
                    try:
                        source.seek(-more, 1)  # what was read goes back
                    except Exception:  # no seek (or no heap for it): those bytes are gone
                        kept = False
                if kept:
                    raise  # nothing is lost: worth another try
                sock.send_error = ENOBUFS
                raise OSError(ENOBUFS, "no heap for the send")
            finally:
                if sock.send_error or self.counters["commands"] != commands:
                    queue[:n] = b""  # sent, or lost with the stream
            return more
        finally:
            self._lock.release()

    def _check_owner(self, sock):
        """Raise unless ``sock`` still holds its id (the lock is held): a reused id
        must never get another connection's bytes."""
        if self.table[sock.sid] is not sock:
            raise OSError(ECONNRESET, "socket closed")

    async def _ssend(self, sock, data, n, ip, port):
        """The SSEND transaction for ``data`` (``n`` bytes); the lock is held, the owner checked."""
        sid = sock.sid
        if ip:
            cmd = b"AT+SSEND=%d,%s,%d,%d" % (sid, ip.encode(), port, n)
        else:
            cmd = b"AT+SSEND=%d,,,%d" % (sid, n)
        tx = _Transaction(cmd, prompt=(sid, n))
        # The prompt may sit behind a frame for a socket whose reader is slow:
        # outlast the stall limit, which frees the UART by dropping that socket.
        await self._run(tx, self.stall_ms + 2000, data)
        self.counters["ssend"] += 1
        self.counters["tx_bytes"] += n
        sock.tx_bytes += n

    async def _run(self, tx, timeout_ms, payload=None):
        """Put ``tx`` on the wire and wait for its end. The lock is held."""
        cmd = tx.cmd
        if breaks_line(cmd):
            # An SSID, a key or a host name made it so. The text stays out of the
            # message: it may hold a Wi-Fi key.
            raise ValueError("not one AT command line: over 255 bytes, or a CR, LF, BS or NUL in it")
        if self._task is None:
            raise OSError(ECONNABORTED, "driver stopped")  # no reader: the answer would never come
        if self.restarting and asyncio.current_task() is not self._init_task:
            # The module restarted and init() has not set it up yet: it echoes, and may
            # still answer a command sent before the restart. A command now could take
            # another's final line (seen in the chaos test: a relisten took a stale [OK],
            # its guessed listener then took a client's [CONNECT 0], and the client's SCON
            # waited 8 s). The supervisor re-opens what is needed once init is done.
            raise OSError(EIO, "module restarting")
        if self._resync:
            await self._settle()
        # Every step is made before the command goes out. With no heap for one then, nothing
        # is sent; after it, the transaction would end halfway: the module still waiting for
        # an SSEND's payload took the next command as that, and sent it to the peer.
        sending = self.transport.write(cmd + b"\r")
        answered = self._wait(tx, timeout_ms, payload is not None)
        writing = ended = None  # an SSEND's: its payload, then its final line
        if payload is not None:
            writing = self.transport.write(payload)
            ended = self._wait(tx, len(payload) + 10000)
        self.tx = tx
        self.counters["commands"] += 1
        self._frames_at = self.counters["frames"]
        try:
            try:
                await sending
            except MemoryError:
                pass  # in the write's own steps: the line may be out, so its answer is awaited
            await answered
            # Never send the payload unless the module asked for it: after a
            # rejection it would be parsed as command text (reference 4.3).
            if writing is not None and ended is not None and tx.final < 0:
                try:
                    await writing
                except MemoryError:
                    pass  # part of it may be out: the module ends the SSEND when its time is up
                await ended
            if tx.final != P.OK:
                if tx.final == P.SEND_ERROR:
                    self.counters["send_errors"] += 1
                elif tx.text.upper() == b"[ERROR: WIFI STATUS]":
                    # The module is not on a network (an SCON's answer): if the link was up
                    # here, its Link-Down was lost (to line noise, or read as an SSID's
                    # text). wifi_event delivers only a change; the supervisor rejoins.
                    self.wifi_event(P.LINK_DOWN, None, tx.text)
                raise OSError(_errno(tx), text(tx.text))
        finally:
            answered.close()  # the steps not taken: closed, as a coroutine never run should be
            if writing is not None and ended is not None:
                writing.close()
                ended.close()
            self.tx = None
            self._row = None
            self._flush()

    async def _settle(self):
        """After a timeout (``_resync``), ``AT`` before the next command (the lock is held):
        the command that timed out may still be answered, and its final line would end the
        next one. Late answers that come meanwhile pass as strays. Events come in too: a
        socket's owner is checked after this, never before (its id may be another's by then).
        Callers test ``_resync`` first: a coroutine per command otherwise."""
        self._resync = False
        while self._absorbing is not None:
            # Not even the AT goes out: it would reach the peer as payload.
            if ticks_diff(self._absorbing, ticks_ms()) <= 0:
                self._absorbing = None
                break
            self._moved.clear()
            await self._moved.wait()  # pyright: ignore[reportGeneralTypeIssues]  (at the latest, the next tick)
        await self._run(_Transaction(b"AT"), 1000)
        await sleep_ms(_QUIET_MS)

    async def _wait(self, tx, timeout_ms, prompt=False):
        """Until ``tx`` ends (with ``prompt``, until the module asks for its payload)."""
        deadline = ticks_add(ticks_ms(), timeout_ms)
        while True:
            if tx.error is not None:
                raise tx.error
            if tx.final >= 0 and (tx.claimed or tx.final != P.OK or (not tx.claim and tx.closing < 0)):
                return
            if prompt and tx.prompt is True:
                return
            now = ticks_ms()
            left = ticks_diff(deadline, now)
            if left <= 0:
                self.counters["timeouts"] += 1
                self._resync = True
                if await self._cut_frame():
                    raise tx.error  # type: ignore  (set by lost)
                raise OSError(ETIMEDOUT, tx.cmd.decode())
            rx = self.parser.rx
            if self.parser._left and rx.head == rx.tail and ticks_diff(now, self.last_rx) >= _CUT_QUIET_MS:
                # A frame the module stopped sending (it restarted mid-frame) holds back its
                # banner and every answer, this command's too.
                try:
                    if await self._cut_frame():
                        continue  # tx.error is set
                except MemoryError:
                    pass  # looked for again at the next tick
            self._moved.clear()
            try:
                if left < _TICK_MS:
                    await sleep_ms(left)  # the last stretch, finer than the ticks
                else:
                    await self._moved.wait()  # pyright: ignore[reportGeneralTypeIssues]  (what the module says, or the next tick)
            except MemoryError:
                # No heap for the wait (an Event.wait off MicroPython): the command is out,
                # so its answer is still awaited, by looking every few milliseconds.
                await sleep_ms(_POLL_MS)

    # --- parser sink --------------------------------------------------------

    def line(self, kind, arg, text):
        tx = self.tx
        if tx is not None and tx.whole is not None and self._air(tx, kind, text):
            return
        if kind == P.INFO:
            if tx is None:
                return
            if text != tx.cmd:
                tx.lines.append(text)
            elif self._echo_off:
                # The command echoed after init turned echo off: the module restarted
                # and its banner went unseen (into a frame the restart cut short).
                self._module_reset(P.RESET, b"echo is on again")
            return
        if kind == P.SEND_ERROR:  # a final line only of an SSEND past its prompt, or of a late one
            final = tx is not None and tx.prompt is True or self._absorbing is not None
        else:
            final = kind == P.OK or kind == P.ERROR
        if final:
            # An SSEND is never answered [OK] before its prompt: such an [OK] is a late
            # answer to an earlier command that timed out. Taken as the SSEND's, the send
            # would "succeed" unsent, and the module would read the next command as payload.
            if tx is not None and tx.final < 0 and not (kind == P.OK and tx.prompt is not None and tx.prompt is not True):
                if self._row is not None:
                    tx.lines.append(self._row)  # a row cut short for good: whoever lists it says so
                    self._row = None
                tx.final = kind
                tx.text = text
                self._moved.set()
            else:
                self.counters["stray"] += 1
                if self._absorbing is not None:
                    self._absorbing = None  # the late SSEND ended: commands may go out again
                    self._moved.set()
            return
        if kind == P.PROMPT:
            if tx is not None and tx.prompt == arg:
                tx.prompt = True
                self._moved.set()
            else:
                # An SSEND that timed out before its prompt was accepted after all: the module
                # now reads ``len`` bytes of payload, or waits for them for len + 10 s
                # (reference 4.5). What was written since went to it as payload, so the
                # command on the wire gets no answer of its own; and nothing more is written
                # until that SSEND ends (its final line, or that deadline): the next command
                # would reach the peer.
                self.counters["stray"] += 1
                self._absorbing = ticks_add(ticks_ms(), arg[1] + 11000)
                self._resync = True
                if tx is not None:
                    self.tx = None  # the late SSEND's final line is not its
                    tx.error = OSError(EIO, "taken as the payload of a late SSEND")
                    self._moved.set()
            return
        if kind in _SOCKET_EVENTS:
            self._socket_event(kind, arg)
        elif kind in _WIFI_EVENTS:
            self.wifi_event(kind, arg, text)
        elif kind == P.RESET or kind == P.BANNER:
            self._module_reset(kind, text)
        else:  # an unknown bracketed line or [TCP Send Error] outside an SSEND
            self._deliver(kind, text)

    def _air(self, tx, kind, text):
        """True if ``text`` is SSID text: a scan prints each SSID as it came over the air,
        line ends and all, and a network may name itself "\r\n[Reset Event]\r\n" or
        "\r\n[OK]\r\n" (any 32 bytes). So a row of ``tx`` that a line end cut short takes
        the lines after it, whatever they look like, until it is whole or its text is past
        where an SSID could reach (32 bytes after its index). A real event that lands there
        (the module prints an SSID a byte at a time) is taken too, and counted in ``air``:
        ``WiFi.scan`` then has the socket table checked. An event line does not count toward
        the reach: it may be a real event's, which takes none of the SSID's bytes, so a row
        still reaches its end. Any other line does: a module prints no "[OK]" in a row."""
        row = self._row
        if row is not None:
            self._row = None
            if self._reach <= 32:  # the SSID may go on past this line end
                row += b"\n" + text
                if kind in _SOCKET_EVENTS or kind == P.LINK_UP or kind == P.LINK_DOWN or kind == P.RESET:
                    self.counters["air"] += 1
                else:
                    self._reach += len(text)
                if tx.whole(row):
                    tx.lines.append(row)
                else:
                    self._row = row
                return True
            tx.lines.append(row)  # the SSID ended before this line end: not its
        i = text.find(b"/")
        if i <= 0 or not text[:i].isdigit():
            return False  # not a row: the header, say
        if tx.whole(text):
            tx.lines.append(text)  # a row, whatever kind of line the parser took it for
        else:
            self._row = text  # "001/(WIZnet Co.Ltd)" is a banner to the parser, a row here
            self._reach = len(text) - i - 1  # the SSID's bytes so far
        return True

    def frame(self, sid, length):
        counters = self.counters
        sock = self.table[sid]
        if sock is not None and sock.head is not None and not self.parser.seen[sid].startswith(sock.head):
            # A TCP connection's frames all come from its one peer: this is not its data.
            # (A UDP socket has no head: any sender's datagram is one, during a scan too.
            # Taken for text, a datagram would be read as the module's lines.)
            if self._in_row():
                # A scan prints names as they came over the air: an SSID that reads
                # as a frame header ("{0,1.2.3.4,5,4}EVIL") is the row's text. Outside
                # a row no name can be: read as text, a real frame's payload was read
                # as the module's lines.
                counters["air"] += 1
                return None
            # Its id changed hands unseen (the [DISCONNECT n] and [CONNECT n] taken for
            # an SSID's text): a new connection's, as a frame on a free id is.
            self._end_socket(sock, ECONNRESET)
            sock = None
        counters["frames"] += 1
        counters["rx_bytes"] += length
        if sock is None or sock.kind == LISTENER:
            # Data proves the socket is open although we never saw it connect
            # (the driver started after the module). Adopt it as a connection.
            if self._touched is not None:
                self._touched.append(sid + 8)  # data came: see resync_table
            self.counters["adopted"] += 1
            try:
                sock = self._new_socket(sid, ACCEPTED, self.server_port)
            except MemoryError:
                # This frame is lost (its [CONNECT n] was too, or it would be adopted
                # already): its client would wait for an answer until it gave up (seen at
                # a 152K heap: 30 s). An orphan, which the tick closes once there is heap.
                self._orphans |= 1 << sid
                raise
            self._deliver(P.CONNECT, sid, sock)
        if sock.datagrams is None:
            # Its first frame names its peer, as the module spells it (a client's host may
            # be spelled otherwise); every later header must begin as this one does. Not
            # one inside a scan's row: a name that reads as a header would pin it to a peer
            # of the name's choosing, and its real frames, read as the row's text then,
            # would be read as the module's lines ("[Reset Event]" in a request).
            if sock.head is None and not self._in_row():
                parser = self.parser
                try:
                    head = parser.seen[sid]
                    sock.peer = parser.frame_peer()
                    sock.head = head[: head.rfind(b",") + 1]  # "{sid,ip,port,"
                except MemoryError:
                    head = b""
                if not head:
                    # No heap for its header, here or in the check (which then keeps
                    # none): its reader fails rather than read a stream without its start.
                    self.drop(sock)
        elif not sock.closing:  # UDP: a datagram from anyone
            if length > sock.rx.free():
                # recvfrom takes a datagram whole: one the ring has no room for now is
                # dropped, as a network stack drops what a socket's buffer cannot take,
                # rather than holding the UART, every other socket with it, until the
                # app reads (a datagram bigger than the ring would never fit).
                counters["udp_dropped"] += 1
                counters["discarded"] += length
                return P.DISCARD
            sock.datagram(length, self.parser.frame_peer())
        return sock

    def error(self, code, text):
        pass  # counted by the parser (parser.errors); nothing to undo here

    def _in_row(self):
        """Is the header being announced inside a scan's row, where a network's name may
        hold one? Only there: a line under way (the parser's), or a row a line end cut."""
        tx = self.tx
        parser = self.parser
        return tx is not None and tx.whole is not None and (self._row is not None or parser.inline or parser.part != b"")

    # --- state --------------------------------------------------------------

    def _socket_event(self, kind, sid):
        tx = self.tx
        sock = self.table[sid]
        if kind == P.CONNECT and sock is not None and sock.kind != LISTENER:
            # The module gives an id out again only once its socket has closed: this
            # one's end was missed. Its reader is told, and the id is the new socket's.
            self._end_socket(sock, ECONNRESET)
            sock = None
        if tx is not None and tx.claim and tx.claimed is None and kind != P.LISTEN and sock is None:
            # The SCON in flight opened this id: the result is the command's, not an event.
            tx.claimed = (kind, sid)
            if kind == P.CONNECT:
                sock = tx.sock
                assert sock is not None  # made by open_socket with the command
                self._new_socket(sid, sock.kind, 0, sock)
            self._moved.set()
            return
        if kind == P.DISCONNECT and tx is not None and tx.closing == sid and sock is not None:
            # The close we asked for: the app knows, so it is not an event.
            tx.claimed = (kind, sid)
            self._end_socket(sock, 0)
            self._moved.set()
            return
        if self._touched is not None:
            # resync_table leaves this id alone: its row may predate the event. (The
            # claim and the close above never come during its command.)
            self._touched.append(sid)
        if kind == P.CONNECT:
            self._deliver(kind, sid, self._new_socket(sid, ACCEPTED, self.server_port))
            return
        if kind == P.DISCONNECT:
            if sock is None:
                if self._orphans >> sid & 1:
                    self._orphans &= ~(1 << sid)  # its client gave up: nothing left to close
                else:
                    self.counters["stray"] += 1  # one we never knew, left: its row is stale
                return
            self._end_socket(sock, 0)
        else:
            if tx is not None:
                tx.listened = True
            self._listen(sid)
        self._deliver(kind, sid)

    def _listen(self, sid):
        for i, sock in enumerate(self.table):
            if sock is not None and sock.kind == LISTENER and i != sid:
                self.table[i] = None  # the one listener has moved
        sock = self.table[sid]
        if sock is None or sock.kind != LISTENER:
            if sock is not None:  # the module listens there: that socket's end was missed
                self._end_socket(sock, ECONNRESET)
            self.table[sid] = Socket(self, sid, LISTENER, self.server_port)

    def wifi_event(self, kind, arg, text):
        """The module's word on its link and address: its own event lines, or what a
        command's answer says of them (WiFi.status, an SCON refused for the link).
        Listeners hear a link event only when the state changes."""
        wifi = self.wifi
        if kind == P.LINK_UP or kind == P.LINK_DOWN:
            state = "up" if kind == P.LINK_UP else "down"
            if wifi["state"] == state:
                # Heard already: WSTAT or an SCON's error told of it before the module's
                # own event came, or the module had not been set up. One change, one event.
                return
            wifi["state"] = state
            if kind == P.LINK_DOWN:
                wifi["ip"] = wifi["gateway"] = ""
        elif kind == P.IP_ADDR:
            wifi["ip"] = arg
        elif kind == P.GATEWAY:
            wifi["gateway"] = arg
        if self.tx is not None and kind == P.JOIN:
            self.tx.lines.append(text)
        self._deliver(kind, arg)

    async def _cut_frame(self):
        """While a command waits: end a frame the module stopped sending; True if there was one.

        A module that restarts mid-frame never sends the rest of it, and the
        parser would take its banner and every answer after it as payload, up
        to the header's length: every command would time out until then. A
        frame still short of bytes, with none waiting in the UART ring (so not
        held by a full socket ring), with the UART silent for ``_CUT_QUIET_MS``,
        was cut: a frame on the wire is never silent that long (at 9600 baud a
        byte takes 1 ms), however long it takes in all. For a frame begun after
        the command went out, the silence must last ``_CUT_LATE_MS``: a margin
        for what this driver cannot see of the module's own pauses, at the cost
        of 1.5 s more to notice such a restart (before, it waited for the next
        command's timeout: 9.5 s at 115200). What came after the cut may have
        been a banner, so the module is taken as restarted, and the supervisor
        sets it up again (in a scan, not at once: see below).
        """
        quiet = _CUT_QUIET_MS if self.counters["frames"] == self._frames_at else _CUT_LATE_MS
        if ticks_diff(ticks_ms(), self.last_rx) < quiet:
            return False
        await sleep_ms(20)  # the reader takes what the UART holds first
        if ticks_diff(ticks_ms(), self.last_rx) < quiet or not self.parser.cut():
            return False
        tx = self.tx
        if tx is not None and tx.whole is not None:
            # In a scan, likelier a name that reads as a header for a UDP socket's id (a
            # datagram, as any sender's may be) claiming more than the listing had left:
            # that fails the scan, not every socket. The AT that goes before the next
            # command (_settle) tells a restart by its echo.
            self._resync = True
            tx.error = OSError(EIO, "frame cut short")
            return True
        self._module_reset(P.RESET, b"frame cut short")
        return True

    def _module_reset(self, kind, text):
        """The module restarted (a banner, [Reset Event], or a sign of one): every socket
        is gone and every waiter fails; the application (the supervisor) hears ``kind``."""
        self.lost("module reset")
        self._deliver(kind, text)

    def lost(self, why):
        """The module restarted or stopped answering: fail everything now, and
        send nothing more until init() has set it up again."""
        self.counters["resets"] += 1
        self.restarting = True
        self._orphans = 0  # the restart closed them
        self._absorbing = None  # a restarted module reads commands
        self._echo_off = False
        self.wifi["state"] = "down"
        self.wifi["ip"] = self.wifi["gateway"] = ""
        self._fail_all(ECONNRESET, why)

    def _fail_all(self, errno, why):
        for sock in self.table:
            if sock is not None:
                self._end_socket(sock, errno)
        tx = self.tx
        if tx is not None and tx.error is None:
            tx.error = OSError(errno, why)
            self._moved.set()

    def _new_socket(self, sid, kind, local_port=0, sock=None):
        """Put a socket with a receive ring on ``sid``: a new one, or ``sock``, a client's
        made before its SCON."""
        if sock is None:
            # Made before its ring is taken: with no heap for it, a ring taken already went
            # with it, and a connection was lost for want of a few hundred bytes while a
            # spare ring held 1.2 KB. A connection is worth more than a spare ring: one is
            # let go to the heap and it is tried again. (The reader runs this, from
            # the parser, which counts a MemoryError that gets out as one lost line or frame.)
            try:
                sock = Socket(self, sid, kind, local_port)
            except MemoryError:
                if not self.rings:
                    raise
                self.rings.pop()
                sock = Socket(self, sid, kind, local_port)
        else:
            sock.sid = sid
        try:
            ring = None  # a listener never receives: data on its id is a new connection
            if kind != LISTENER:
                ring = self.rings.pop() if self.rings else Ring(self.socket_rx)
                ring.clear()
        except MemoryError:
            # The reader runs this: it must not die of a full heap. The socket
            # exists on the module, so keep it, drop its input and fail its reader.
            ring = None
        sock.rx = ring
        if ring is None and kind != LISTENER:
            self.counters["overflow"] += 1
            sock.closing = True  # input dropped; a read fails, and the close still reaches the module
            sock.error = ENOBUFS
        self.table[sid] = sock
        self._orphans &= ~(1 << sid)  # a socket stands for the id now
        return sock

    def _end_socket(self, sock, errno):
        if self.table[sock.sid] is sock:
            self.table[sock.sid] = None
        sock.ended(errno)

    def forget(self, sock):
        """The app released ``sock``: stop writing into its ring and keep the ring (and any
        lent to it) for reuse."""
        self.counters["discarded"] += self.parser.abandon(sock)
        if self.table[sock.sid] is sock:
            self.table[sock.sid] = None
        ring = sock.rx
        while ring is not None:
            self.rings.append(ring)
            lent = ring.next
            ring.next = None
            ring = lent

    def listener(self):
        """The server's listening socket, on whichever id the module moved it to, or None."""
        for sock in self.table:
            if sock is not None and sock.kind == LISTENER:
                return sock
        return None

    def _lowest_free(self):
        for sid, sock in enumerate(self.table):
            if sock is None:
                return sid
        return -1

    # --- delivery -----------------------------------------------------------

    def _deliver(self, kind, arg, accepted=None):
        """Hand an event to the application, or park it while a transaction is open.

        ``accepted``: the socket a server's ``[CONNECT n]`` made, handed to the
        server at once, event or not: its handler is its only reader, and its
        request may be bigger than its ring. Parked until the transaction's
        ``[OK]``, which comes after the rest of that request, nobody could make
        room: the UART would be held until the stall limit dropped the
        connection. (``on_accept`` only queues it; no command goes out from here.)
        """
        if accepted is not None and self.on_accept is not None:
            self.on_accept(accepted)
        if self.tx is not None:
            self.pending.append((kind, arg))
        elif self.on_event is not None:
            self.on_event(kind, arg)

    def _flush(self):
        pending = self.pending
        while pending:
            kind, arg = pending.pop(0)
            if self.on_event is not None:
                self.on_event(kind, arg)

    def counts(self):
        """(name, count) of every counter, the engine's and the parser's rejections, one at
        a time: the status page sends them so, with no dict of them all to find room for."""
        yield from self.counters.items()
        yield from zip(P.ERROR_NAMES, self.parser.errors)


async def _tick(engine):
    """Set ``engine._moved`` every ``_TICK_MS``, while the reader runs: a command that waits
    for its answer then looks at its deadline, and for a frame cut short, even when the
    module is silent. So does a socket's waiting reader while it has a deadline
    (``Stream.deadline``). Their waits are plain Event waits, which allocate nothing
    (``EventWaiter``): through ``asyncio.wait_for`` each made a task and a closure,
    about 1 KB, two per SSEND, more than a third of what sending a file allocated.
    And the orphans (``Engine.frame``) are closed here once there is heap: the reader,
    which finds them, must never wait for heap."""
    table = engine.table
    while True:
        await sleep_ms(_TICK_MS)
        engine._moved.set()
        for sock in table:
            if sock is not None and sock.deadline is not None:
                sock.changed.set()
        if not engine._orphans:
            continue
        for sid in range(8):  # each orphan: a socket made for it and dropped, while there is heap
            if engine._orphans >> sid & 1:
                try:
                    sock = engine._new_socket(sid, ACCEPTED, engine.server_port)
                except MemoryError:
                    break  # no heap yet: the next tick
                engine.drop(sock)
                if table[sid] is not sock:
                    engine._orphans |= 1 << sid  # no heap for its close either: forgotten, so again


def breaks_line(data):
    """True if ``data`` cannot go to the module as (part of) one command line: the module
    runs a line cut at 255 bytes or at a NUL, drops an LF, edits at a BS, and runs what
    follows a CR as a command of its own (reference 1.2)."""
    return len(data) > _LINE_MAX or b"\r" in data or b"\n" in data or b"\b" in data or b"\0" in data


def _errno(tx):
    """An OSError number for a failed transaction, from its terminal line."""
    text = tx.text
    if tx.final == P.ERROR and tx.prompt is not None and tx.prompt is not True:
        return ECONNRESET  # SSEND refused before the prompt: the socket is closed
    if b"INVALID" in text:
        return EINVAL
    return EIO

"""Sockets for applications: a TCP server, TCP clients and UDP, over one Engine.

``Net`` owns the engine's event callback and hands each ``[CONNECT n]`` of
a server's connection to that server, which runs the application's
callback in its own task with a ``Stream``. The module's multi-connection
server moves its listener to the lowest free id after every accept, so a
server is known by its port, never by an id.
"""

import asyncio

from .compat import text, ticks_diff, ticks_ms
from .engine import ETIMEDOUT
from .sockets import LISTENER, TCP, UDP
from .stream import Stream, new_queue

SLOT_WAIT_MS = 1000  # how long a connection beyond max_handlers waits for a handler to end


class Server:
    """A module TCP server (``AT+FSOCK=9,1``): one task per accepted connection."""

    def __init__(self, net, callback, port, max_handlers, idle_ms):
        self.net = net
        self.callback = callback
        self.port = port
        self.max_handlers = max_handlers
        self.idle_ms = idle_ms  # close a connection that sends nothing for this long
        self.active = 0
        self.accepted = 0
        self.refused = 0
        self._relistening = False
        self._relisten_again = False  # an accept came while a relisten was on the wire
        self._waiting = []  # sockets waiting for a handler; their ``changed`` is set when one ends
        self._parked = [None] * 8  # by id: connections that found no heap for a handler (see accept)
        self.parked = 0  # how many were, in all

    def accept(self, sock):
        self.accepted += 1
        old = self._parked[sock.sid]
        if old is not None:
            # Parked, it ended before a handler's heap came back (the module reuses an id
            # only once its connection has closed): never served, its ring goes back.
            self._parked[sock.sid] = None
            self.refused += 1
            old.release()
        if not self.start(sock):
            if self.active:
                # No heap for its handler now: the heap of a running one comes back when it
                # ends, which starts this one then (_serve). Closed at once, the browser
                # got no answer: about one request in 10,000 at a 128K heap.
                self._parked[sock.sid] = sock
                self.parked += 1
            else:
                self.drop(sock)
        self._relisten_soon()

    def start(self, sock):
        """Run a handler for ``sock``; False if there is no heap for it."""
        try:
            asyncio.create_task(self._serve(Stream(self.net.engine, sock, pool=self.net.queues)))
        except MemoryError:
            return False
        return True

    def drop(self, sock):
        """Refuse ``sock``: closed on the module, or nobody would ever read or close it
        (the reader runs accept: an error must not reach it)."""
        self.refused += 1
        self.net.engine.drop(sock)

    async def _slot(self, stream):
        """True once a handler slot is free, False if none frees up within SLOT_WAIT_MS.

        A browser opens its next connection as soon as it has read a response,
        and that [CONNECT n] is often delivered before the handler that sent it
        has finished closing: refusing at once failed ~1% of requests from six
        clients. Every id is precious (8 in all), so the wait is short: better a
        refused browser than a stuck one.

        A connection whose request fills its ring while it waits (a head with
        big cookies) is refused at once: the rest of its frame holds the UART,
        and with it the [OK]s the busy handlers need to finish, so no slot could
        free up, and the whole server would stand still until the wait ran out.
        """
        sock = stream.sock
        stream.deadline(SLOT_WAIT_MS)  # the engine's tick wakes the wait to look at it
        try:
            while self.active >= self.max_handlers:
                if ticks_diff(sock.deadline, ticks_ms()) <= 0 or (sock.rx is not None and not sock.rx.free()):
                    return False
                sock.changed.clear()  # set by its data, its end, a handler's end, or the tick
                self._waiting.append(sock)
                try:
                    await stream._changed.wait()  # pyright: ignore[reportGeneralTypeIssues]  (MicroPython awaits __iter__)
                finally:
                    self._waiting.remove(sock)
            return True
        finally:
            stream.deadline(None)

    def _relisten_soon(self):
        """Put a listener back now rather than on the module's next tick.

        The module re-creates its listener from a housekeeping task that runs
        about every 1.1 s (reference 5.3), so a browser's burst of connections
        would be accepted one a second. Issuing the same ``AT+SCON`` that task
        issues internally brings the next accept down to one command's time.
        It fails harmlessly while every id is taken: the module's own task
        brings the listener back once one is free. An accept that lands while
        a relisten is on the wire (the new listener taken at once) gets one
        more, or the burst would wait for the module's tick after all.
        """
        self._relisten_again = True
        if not self._relistening:
            self._relistening = True
            asyncio.create_task(self._relisten())

    async def _relisten(self):
        try:
            while self._relisten_again:
                self._relisten_again = False
                try:
                    await self.reopen()
                except (OSError, MemoryError):
                    pass  # the module's own tick (or the supervisor) brings the listener back
        finally:
            self._relistening = False

    async def _serve(self, stream):
        try:
            slot = await self._slot(stream)
        except MemoryError:
            # No heap even to wait for a handler (for its coroutine): refused like one
            # that waited in vain. Let out, it ended this task before the close below, and
            # the module kept the connection open for good.
            slot = False
        if not slot:
            self.refused += 1
            await stream.aclose()
            self._freed()
            return
        self.active += 1
        try:
            if self.idle_ms and not await self._first_byte(stream):
                return  # a preconnect that never asked for anything
            await self.callback(stream, stream)
        except Exception as e:  # one handler's failure must not stop the server
            if not isinstance(e, OSError):
                print("wizfi250: handler failed:", repr(e))
        finally:
            try:
                # Always: a handler may have failed (no ring), or called close() alone, as
                # CPython's asyncio allows, and the module socket, ring and queue would stay
                # taken for good. After a whole aclose this finds nothing left to do.
                await stream.aclose()
                self._freed()
            finally:
                stream = None  # its heap, for a parked connection's handler
                self.active -= 1  # only now, after the close has given its queue back
                for waiting in self._waiting:
                    waiting.changed.set()
                # Start the parked connections its heap makes room for; with no handler
                # left to end, one that still finds none is refused.
                parked = self._parked
                for sid in range(8):
                    sock = parked[sid]
                    if sock is not None:
                        if self.start(sock):
                            parked[sid] = None
                        elif not self.active:
                            parked[sid] = None
                            self.drop(sock)

    def _freed(self):
        """An id came free. With every id taken the listener could not come back;
        bring it back now rather than on the module's next tick (about 1.1 s),
        so a browser queued behind idle sockets is accepted at once."""
        if self.net.engine.listener() is None:
            self._relisten_soon()

    async def _first_byte(self, stream):
        stream.deadline(self.idle_ms)
        try:
            await stream._fill()
            return True
        except asyncio.TimeoutError:
            self.net.counters["idle_closed"] += 1
            await stream.aclose()
            return False
        finally:
            stream.deadline(None)

    async def reopen(self):
        await self.net.engine.open_socket(LISTENER, local_port=self.port)

    async def close(self):
        self.net.servers.remove(self)
        sock = self.net.engine.listener()
        if sock is not None and sock.local_port == self.port:
            await self.net.engine.close_socket(sock)


class Datagram:
    """A UDP socket: ``sendto`` and ``recvfrom`` with the peer from each frame header."""

    def __init__(self, engine, sock):
        self.engine = engine
        self.sock = sock

    async def sendto(self, data, addr):
        await self.engine.ssend(self.sock, data, addr[0], addr[1])

    async def recvfrom(self):
        """The next datagram and its sender; OSError once the socket has ended."""
        sock = self.sock
        while not sock.datagrams:
            _check(sock)
            sock.changed.clear()
            await sock.changed.wait()
        length, peer = sock.datagrams[0]
        while len(sock.rx) < length:  # the frame's payload is still arriving
            _check(sock)  # a reset can cut it short
            sock.changed.clear()
            await sock.changed.wait()
        sock.datagrams.pop(0)
        return sock.rx.read(length), peer

    async def close(self):
        if self.sock.open:
            await self.engine.close_socket(self.sock)
        self.sock.release()


def _check(sock):
    """Raise unless ``sock`` can still receive: released, no heap for its ring, ended."""
    if sock.rx is None or sock.error or not sock.open:
        raise OSError(sock.error or 104)


class Net:
    def __init__(self, engine, max_handlers=6, idle_ms=5000, queues=0):
        self.engine = engine
        self.max_handlers = max_handlers
        self.idle_ms = idle_ms
        # Output queues for server handlers, reused from one connection to the next.
        # A firmware makes them up front (``queues``), while the heap is still whole.
        self.queues = [new_queue() for _ in range(queues)]
        self.servers = []
        self.listeners = []  # callables(kind, arg) for every delivered event
        self.counters = {"idle_closed": 0}
        engine.on_event = self._event
        engine.on_accept = self._accept

    def _accept(self, sock):
        for server in self.servers:
            if server.port == sock.local_port:
                server.accept(sock)
                return

    def _event(self, kind, arg):
        for listener in self.listeners:
            listener(kind, arg)

    async def start_server(self, callback, port, max_handlers=None, idle_ms=None):
        server = Server(
            self, callback, port,
            self.max_handlers if max_handlers is None else max_handlers,
            self.idle_ms if idle_ms is None else idle_ms,
        )  # fmt: skip
        self.servers.append(server)
        await server.reopen()
        return server

    async def resolve(self, host, timeout_ms=5000):
        """An IPv4 address for ``host``: literals as they are, names through AT+FDNS."""
        if _is_ip(host):
            return host
        lines = await self.engine.command(b"AT+FDNS=%s,%d" % (host.encode(), timeout_ms), timeout_ms + 2000)
        for line in lines:
            addr = text(line).strip()
            if _is_ip(addr):
                return addr
        raise OSError(ETIMEDOUT, "no address for " + host)

    async def open_connection(self, host, port):
        """A TCP client: returns ``(stream, stream)`` like asyncio.open_connection."""
        sock = await self.engine.open_socket(TCP, await self.resolve(host), port)
        try:
            stream = Stream(self.engine, sock)
        except MemoryError:
            self.engine.drop(sock)  # open on the module, with nobody here to close it
            raise
        return stream, stream

    async def open_udp(self, local_port=0, remote=None):
        """A UDP socket: a server on ``local_port``, or a client of ``remote`` (host, port)."""
        if remote is None:
            sock = await self.engine.open_socket(UDP, local_port=local_port)
        else:
            ip = await self.resolve(remote[0])
            sock = await self.engine.open_socket(UDP, ip, remote[1], local_port)
        try:
            return Datagram(self.engine, sock)
        except MemoryError:
            self.engine.drop(sock)  # as a client's Stream
            raise


def _is_ip(text):
    parts = text.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not part.isdigit() or int(part) > 255:
            return False
    return True

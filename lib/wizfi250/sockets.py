"""The socket table's entries: what the driver knows about one module socket.

A ``Socket`` lives from the ``[CONNECT n]`` (or the SCON that opened it) to
the moment the application has read everything after ``[DISCONNECT n]``.
It is the parser's payload target for its id, so received bytes go from the
UART buffer straight into its receive ring. The module reuses ids at once,
so the table forgets a socket as soon as it closes, while the application
may still hold it and read what is left.
"""

import asyncio

from .compat import const

# Kinds.
LISTENER = const(0)  # a TCP server waiting for a client (the multi-connection listener)
ACCEPTED = const(1)  # a connection a TCP server accepted
TCP = const(2)  # a TCP client
UDP = const(3)

KIND_NAMES = ("listener", "tcp-server", "tcp-client", "udp")

# OSError numbers, as MicroPython's errno module spells them.
ECONNRESET = const(104)
ENOBUFS = const(105)


class Socket:
    def __init__(self, engine, sid, kind, local_port=0):
        self.engine = engine
        self.sid = sid
        self.kind = kind
        self.local_port = local_port
        self.peer = None  # type: tuple | None  # (ip, port) of the first frame, or given at SCON
        # TCP: "{sid,ip,port," from its first frame, which every later one repeats (see
        # Engine.frame). None for UDP: a datagram may come from anyone.
        self.head = None  # type: bytes | None
        self.rx = None  # Ring of received payload (the engine gives it one); None for listeners
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.open = True  # False after [DISCONNECT n], a reset or a local close
        self.error = 0  # errno that ended it abnormally, 0 if none
        self.send_error = 0  # errno of a stream send that lost bytes: no later one may go out
        self.closing = False  # the application is closing it: incoming payload is dropped
        self.changed = asyncio.Event()  # set when data arrives or the socket ends
        # ticks_ms by which a wait for its data gives up (Stream.deadline), or None. The
        # engine's tick sets ``changed`` while there is one, so the wait looks at it.
        self.deadline = None
        # UDP only: (length, ip, port) for each datagram still in ``rx``.
        self.datagrams = [] if kind == UDP else None

    def write(self, mv, start, end):
        """Parser payload target: keep what fits, the parser waits for the rest."""
        if self.closing:  # nobody will read it, and waiting for room would hold the UART
            self.engine.counters["discarded"] += end - start
            return end - start
        ring = self.rx
        while ring.next is not None:  # rings lent while a command waited: what comes goes last
            ring = ring.next
        n = ring.write(mv, start, end)
        if n:
            self.rx_bytes += n
            self.changed.set()
        return n

    def datagram(self, length, peer):
        self.datagrams.append((length, peer))

    def ended(self, error=0):
        """The module closed it (``[DISCONNECT n]``, reset): readers get EOF or ``error``."""
        self.open = False
        if error and not self.error:
            self.error = error
        self.changed.set()

    def advance(self):
        """``rx`` is read empty: the ring lent behind it (``Engine._lend``), if any, is read
        next, and the empty one goes back to the engine's spare rings."""
        rx = self.rx
        while rx.next is not None and rx.head == rx.tail:
            lent = rx.next
            rx.next = None
            self.engine.rings.append(rx)
            self.rx = rx = lent

    def release(self):
        """The application is done with it: the engine takes back its receive ring."""
        if self.rx is not None:
            self.engine.forget(self)
            self.rx = None

    def __repr__(self):
        return "<Socket %d %s %s>" % (self.sid, KIND_NAMES[self.kind], "open" if self.open else "closed")

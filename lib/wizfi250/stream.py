"""One module socket as a MicroPython asyncio Stream (reader and writer in one).

Reads come out of the socket's receive ring; the engine's reader resumes a
frame it had to pause as soon as the ring has room again. Writes
are coalesced, because every SSEND costs a round trip to the module: small
pieces (Microdot writes each header line on its own) wait in the output
queue and leave in one ``AT+SSEND`` with what follows, up to ``SSEND_MAX``
bytes. Larger writes and files (``send_from``) are copied into the SSEND
from where they are, so the queue holds only ``_QUEUE`` bytes. ``drain``
sends the full chunks at once and the rest after ``flush_ms`` unless more
is written first; ``aclose`` sends everything before closing.

After the peer's ``[DISCONNECT n]`` reads return what is left, then EOF;
writes raise ``OSError(104)``, which Microdot treats as a quiet disconnect.
After a failed send (the flush timer's too) every write raises its error:
the peer must never get later bytes with the failed ones missing.
Waits are on ``asyncio.Event`` (through ``EventWaiter``, which on MicroPython
waits without allocating), so CircuitPython runs this too.
"""

import asyncio

from .compat import EventWaiter, const, sleep_ms, ticks_add, ticks_diff, ticks_ms
from .engine import SSEND_MAX
from .sockets import ECONNRESET

_RETRY_MS = const(100)  # how soon a close or a send that found no heap is tried again
_SEND_TRIES = const(30)  # a send that finds no heap for 3 s fails
_QUEUE = const(512)  # bytes an output queue holds: a response's status line and headers, small pieces


def new_queue():
    """An empty output queue with room for the small writes between two sends.

    Allocated whole, once: grown write by write it would scatter blocks over
    a small heap. Streams given a ``pool`` take it from there and give it back.
    Larger writes and files go out from where they are (``send_from``), so a
    queue needs no room for a whole SSEND: 1.4 KB less per handler.
    """
    queue = bytearray(_QUEUE)
    queue[:] = b""  # empty; the capacity stays
    return queue


class _Bytes:
    """The bytes of one large write, taken out as a file's are (``readinto``)."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def readinto(self, buf):
        pos = self.pos
        n = min(len(buf), len(self.data) - pos)
        buf[:n] = self.data[pos : pos + n]
        self.pos = pos + n
        return n

    def seek(self, n, whence=0):
        """As a file's: the engine puts back what a send that found no heap had read."""
        self.pos = n + (self.pos if whence == 1 else 0)
        return self.pos


class Stream:
    def __init__(self, engine, sock, flush_ms=5, pool=None):
        self.engine = engine
        self.sock = sock
        self.flush_ms = flush_ms
        self._pool = pool  # a list of spare output queues shared with other streams, or None
        self._out = None  # the output queue, from the first write on
        self._flusher = None
        self._closed = False  # True once closing; close()'s task while it closes
        self._changed = EventWaiter(sock.changed)

    # --- reading ------------------------------------------------------------

    def _empty(self):
        """True while there is nothing to read yet. Raises once nothing is left to read
        of a socket that ended abnormally (a reset, a stalled ring), or has no ring: a
        clean end of stream there would pass a cut-short transfer off as whole."""
        sock = self.sock
        if sock.rx is None:
            raise OSError(sock.error or ECONNRESET)
        sock.advance()
        if len(sock.rx):
            return False
        if sock.error:
            raise OSError(sock.error)
        if sock.open and sock.deadline is not None and ticks_diff(ticks_ms(), sock.deadline) >= 0:
            raise asyncio.TimeoutError
        return sock.open

    def deadline(self, ms):
        """Once ``ms`` have passed, a read that finds nothing to read raises
        ``asyncio.TimeoutError`` (within the engine's tick, 100 ms); ``None``: reads wait
        as long as it takes. How the server bounds a slow client without
        ``asyncio.wait_for``: a task and a closure (about 1 KB) per request, and a
        read that went on alone when the heap had no room for the wait around it."""
        self.sock.deadline = None if ms is None else ticks_add(ticks_ms(), ms)

    async def discard(self):
        """Read and drop everything until the stream ends, however it ends, allocating
        nothing: a refused client may still be sending, and its unread frames would fill
        the socket's ring and hold the UART, with the SSEND of the refusal behind them."""
        try:
            while await self._fill():
                self.sock.rx.clear()
        except OSError:
            pass

    async def _fill(self):
        """Wait until there are bytes to read or the socket has ended."""
        while self._empty():
            self.sock.changed.clear()
            await self._changed.wait()  # pyright: ignore[reportGeneralTypeIssues]  (MicroPython awaits __iter__)
        return len(self.sock.rx)

    async def read(self, n=-1):
        """Up to ``n`` bytes once there are any; with no ``n``, everything up to EOF, as
        asyncio's ``read()``: a client reading a whole response that way got its first frame."""
        if n >= 0:
            return self.sock.rx.read(n) if await self._fill() else b""
        n = b""  # no local more than read(n) has: a bigger coroutine block for every read
        while await self._fill():
            n += self.sock.rx.read()
        return n

    async def readinto(self, buf):
        # Waits here, not through _fill: each coroutine call is a heap block. And no
        # locals beyond self and buf: one more grows this coroutine's own block from
        # 96 to 128 bytes (unix port), and every read pays for it.
        while self._empty():
            self.sock.changed.clear()
            await self._changed.wait()  # pyright: ignore[reportGeneralTypeIssues]  (MicroPython awaits __iter__)
        return self.sock.rx.readinto(buf)

    async def readline(self):
        sock = self.sock
        line = b""
        while True:
            if not await self._fill():
                return line
            i = sock.rx.find(b"\n")
            line += sock.rx.read(i + 1 if i >= 0 else -1)
            if i >= 0:
                return line

    async def readexactly(self, n):
        data = b""
        while len(data) < n:
            if not await self._fill():
                raise EOFError
            data += self.sock.rx.read(n - len(data))
        return data

    # --- writing ------------------------------------------------------------

    def write(self, data):
        """Queue ``data``; beyond the queue's room it grows (a heap block): ``awrite`` never does.
        Arms the flush timer, as ``drain`` does: asyncio's ``write`` sends without a drain,
        and a request written without one never left."""
        self._queue()
        self._out += data
        if self._out and self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())

    def _queue(self):
        """The output queue, taken at the first write; raises once the socket is closed,
        or a send failed (even the flush timer's, whose error nobody else sees)."""
        if self._closed or not self.sock.open:
            raise OSError(ECONNRESET)
        if self.sock.send_error:
            raise OSError(self.sock.send_error)
        if self._out is None:
            self._out = self._pool.pop() if self._pool else new_queue()
        return self._out

    async def drain(self):
        """Send every full chunk now; leave a short tail for the next writes to join."""
        while self._out and len(self._out) >= SSEND_MAX:
            await self._send(SSEND_MAX)
        if self._out and self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self):
        try:
            await asyncio.sleep(self.flush_ms / 1000)
            await self.flush()
        except (OSError, MemoryError):
            pass  # the socket is gone, or no heap for a send: the next write or close tries again
        finally:
            self._flusher = None

    async def flush(self):
        """Send everything written so far: return once the module took it all."""
        while self._out:
            await self._send(min(len(self._out), SSEND_MAX))
        flusher = self._flusher
        if flusher is not None and flusher is not asyncio.current_task():
            # Its SSEND took the queue's bytes and may still wait for its [OK].
            await flusher
            if self.sock.send_error:  # the timer's send failed, and it tells nobody
                raise OSError(self.sock.send_error)

    async def _send(self, n, source=None):
        """One SSEND. After a failed one (``sock.send_error``, kept by the engine under
        its lock) every send fails: its bytes are gone, and what is written after them
        must not reach the peer as if it followed them.

        A send that found no heap took nothing (the engine says so with a
        ``MemoryError``), so it is tried again for a while: other handlers end and
        free theirs. Failed at once, it cut the download short (seen at a 160K heap)."""
        tries = _SEND_TRIES
        while self.sock.open:
            try:
                return await self.engine.ssend_from(self.sock, self._out, n, source)
            except MemoryError:
                tries -= 1
                if not tries:
                    raise
            await sleep_ms(_RETRY_MS)
        raise OSError(ECONNRESET)

    async def send_from(self, source):
        """Send what is queued, then everything ``source.readinto`` gives until it
        gives 0 (a file), each SSEND filled under the engine's lock: the bytes
        wait in no buffer of this stream, however many streams send at once."""
        out = self._queue()
        while len(out) >= SSEND_MAX:  # ``write`` may have queued more than one SSEND
            await self._send(SSEND_MAX)
        while await self._send(SSEND_MAX, source):
            pass

    async def awrite(self, data, off=0, sz=-1):
        if off or sz >= 0:
            data = memoryview(data)[off : len(data) if sz < 0 else off + sz]
        queued = len(self._queue())
        if queued + len(data) > _QUEUE:
            # Too much for the queue: full SSENDs straight from ``data``, and only a
            # tail that fits is queued, to go out with the next writes.
            data = memoryview(data)
            keep = (queued + len(data)) % SSEND_MAX
            if keep > _QUEUE:
                keep = 0
            await self.send_from(_Bytes(data[: len(data) - keep]))
            data = data[len(data) - keep :]
        self.write(data)
        await self.drain()

    # --- closing ------------------------------------------------------------

    def close(self):
        """Start closing: a task does what ``wait_closed`` does. A stream closed and
        forgotten (CPython allows it) would otherwise hold its module socket for good,
        and the module has eight. ``aclose`` closes in place, with no task."""
        if not self._closed:
            self._closed = True
            try:
                self._closed = asyncio.create_task(self.wait_closed())
            except MemoryError:
                pass  # a later wait_closed or aclose (a server's, after every handler) closes it

    async def wait_closed(self):
        """Send what is queued, close the module socket, give back ring and queue.
        Done once, a second call finds nothing left: the server calls it after every handler."""
        closing = self._closed
        if not isinstance(closing, bool) and closing is not asyncio.current_task():
            await closing  # close()'s task: it does the closing, once
            return
        sock = self.sock
        try:
            try:
                if sock.open and self._out:
                    await self.flush()
            except (OSError, MemoryError):
                pass  # the peer is gone, or no heap for a send: a pending flush tries once more
            if self._flusher is not None:
                await self._flusher  # then no send of this stream is in flight, and its queue is free
        finally:
            out = self._out
            if out:
                out[:] = b""  # unsent: the peer is gone
            if out is not None and self._pool is not None and self._flusher is None:
                self._pool.append(out)  # no send of this stream can touch it now
                self._out = None
            while sock.open:
                try:
                    await self.engine.close_socket(sock)
                except OSError:
                    pass  # already gone on the module
                except MemoryError:
                    # No heap to begin the close, or before its command went out: the socket
                    # is still ours, and open on the module. Released, the engine forgot it
                    # while the module kept it, and its browser waited for the end of the
                    # response until it gave up (seen at a 160K heap: 25 s).
                    if self.engine.table[sock.sid] is sock:
                        await sleep_ms(_RETRY_MS)
                        continue
                break
            sock.release()  # the ring goes back to its pool in any case

    async def aclose(self):
        if not self._closed:
            self._closed = True
        await self.wait_closed()

    def get_extra_info(self, name):
        if name == "peername":
            return self.sock.peer
        return None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

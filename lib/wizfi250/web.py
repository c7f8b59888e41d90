"""Microdot served over the module's sockets, within a small board's heap.

``http_handler(app, head_ms)`` is the handler to give ``Net.start_server``. It
reads the request head under limits before Microdot sees it (414, 431, 413,
408), makes the Request again while the heap is short instead of letting
Microdot answer 400, and sends a file (``static_file``) once Microdot has let
go of the request. ``App`` is the Microdot app for it, whose routes
answer 503 when the heap runs out. Microdot itself is installed beside the
driver (``tools/deploy``); nothing else in the driver imports this module.
"""

import asyncio
import os

from microdot import Microdot, Request, Response, send_file
from microdot.microdot import urldecode

from .compat import const, sleep_ms

GZIP_TYPES = ("html", "css", "js", "svg", "json", "txt", "ico")


class App(Microdot):
    """Microdot, with ``counters`` for what only the web server knows: requests whose
    Request was made again for want of heap, and those answered 503 in the end."""

    def __init__(self):
        super().__init__()
        self.counters = {"request_retries": 0, "busy": 0}
        Response.types_map["svg"] = "image/svg+xml"
        Response.types_map["ico"] = "image/x-icon"

        @self.errorhandler(MemoryError)
        async def no_heap(request, exc):
            # A route's objects found no heap while every handler was busy: the request
            # was fine, and Microdot's 500 would say it was not. Again in a moment, it will do.
            self.counters["busy"] += 1
            return "", 503, {"Retry-After": "1"}


def _exists(path):
    try:
        return not os.stat(path)[0] & 0x4000  # a file, not a directory
    except OSError:
        return False


class _File:
    """A file body that Microdot hands to the connection instead of streaming it.

    Microdot streams a body from inside ``handle_request``, which holds the
    request and the response (their header dicts, the coroutines between
    them) until the last byte has gone: 3 KB more per download in flight
    (6.6 KB instead of 3.6, measured). So the first time Microdot asks for a
    chunk, the file is handed to the connection (``Connection.body``) and the
    body ends for Microdot; once ``handle_request`` has returned, the
    connection sends the file (see ``Connection.send_body``). A HEAD, or a
    client that left during the headers, never asks: no file is opened.
    """

    def __init__(self, path, connection):
        self.path = path
        self.connection = connection

    def __aiter__(self):
        return self

    async def __anext__(self):
        self.connection.body = self.path
        raise StopAsyncIteration


class Pieces:
    """A response body sent piece by piece (Microdot writes each as it comes): a long
    document need not be one string, which a fragmented heap may have no block for.
    ``pieces`` is any iterable; a generator makes each piece only when it is sent."""

    def __init__(self, pieces):
        self.pieces = iter(pieces)

    def __aiter__(self):
        return self

    async def __anext__(self):
        for piece in self.pieces:
            return piece
        raise StopAsyncIteration


def static_file(request, root, path):
    """A file under ``root``, gzipped when the browser accepts it; None for anything outside."""
    try:
        path = urldecode(path)
    except ValueError:  # "%zz", or bytes that are not UTF-8 ("%c0%ae"): names no file
        return None
    if ".." in path or "\\" in path or "\0" in path or path.startswith("/"):
        return None
    if path == "" or path.endswith("/"):
        path += "index.html"
    full = root + "/" + path
    if not _exists(full):
        return None
    ext = path.rsplit(".", 1)[-1]
    varies = ext in GZIP_TYPES and _exists(full + ".gz")
    compressed = varies and "gzip" in request.headers.get("Accept-Encoding", "")
    sent = full + ".gz" if compressed else full
    stream = _File(sent, request.sock[1])  # not a file: Microdot takes any body with __anext__
    response = send_file(full, compressed=compressed, stream=stream, max_age=3600)  # pyright: ignore[reportArgumentType]
    # With a length a client can tell a transfer cut short (a module reset) from a
    # complete one; HTTP/1.0 without it ends at the close either way.
    response.headers["Content-Length"] = str(os.stat(sent)[6])
    if varies:  # a cache in between must not hand the gzip copy to a client that did not ask
        response.headers["Vary"] = "Accept-Encoding"
    return response


_MAX_HEAD = const(4096)  # request line and headers together; a browser sends under 1.5 KB
HEAD_ERRORS = {
    408: b"Request Timeout", 413: b"Content Too Large", 414: b"URI Too Long", 431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}  # fmt: skip
REQUEST_WAIT_MS = 2000  # how long a request may wait for the heap to make its Request


class HeadTooLarge(Exception):
    pass


class HeadReader:
    """The request head read under limits before Microdot sees it, then handed over.

    Microdot reads a whole line before it checks its length, so an endless
    header line would fill the heap first. This reads at most ``_MAX_HEAD``
    bytes, checks each line against ``Request.max_readline``, and then
    serves what it read (and the stream after it) through the reader calls
    Microdot makes: ``readline``, ``readexactly``, ``read``.
    """

    def __init__(self, stream):
        self.stream = stream
        self.buf = b""
        self.pos = 0  # bytes of buf already handed to Microdot
        self.head = None  # everything read_head read, until Microdot reads past it

    async def read_head(self):
        """Read up to the blank line; False if the client closed before it.

        Lines are measured where they lie in the buffer, never copied: six
        browsers' heads at once are a heap's worth on a small board.
        """
        limit = Request.max_readline
        start = 0  # the line being measured
        while True:
            buf = self.buf
            end = buf.find(b"\n", start)
            while end >= 0:
                if end - start > limit:
                    raise HeadTooLarge(414 if start == 0 else 431)
                if start and end - start <= 1:  # "" or "\r": the blank line that ends the head
                    if _content_length(buf, end) > Request.max_content_length:
                        raise HeadTooLarge(413)
                    self.head = buf
                    return True
                start = end + 1
                end = buf.find(b"\n", start)
            if len(buf) - start > limit:
                raise HeadTooLarge(414 if start == 0 else 431)
            if len(buf) >= _MAX_HEAD:
                raise HeadTooLarge(431)
            chunk = await self.stream.read(_MAX_HEAD - len(buf))
            if not chunk:
                return False
            self.buf = buf + chunk if buf else chunk

    def rewind(self):
        """Hand the head over again from its start; False once the stream was read past it."""
        if self.head is None:
            return False
        self.buf = self.head
        self.pos = 0
        return True

    def _streamed(self):
        self.head = None  # what the stream gave went to Microdot alone: no rewind
        return self.stream

    def _take(self, n):
        pos = self.pos
        data = self.buf[pos : pos + n]
        self.pos = pos + len(data)
        if self.pos == len(self.buf):
            self.buf = b""
            self.pos = 0
        return data

    async def readline(self):
        i = self.buf.find(b"\n", self.pos)
        if i >= 0:
            return self._take(i + 1 - self.pos)
        return self._take(len(self.buf)) + await self._streamed().readline()

    async def readexactly(self, n):
        data = self._take(n)
        if len(data) < n:
            data += await self._streamed().readexactly(n - len(data))
        return data

    async def read(self, n=-1):
        if not self.buf:
            return await self._streamed().read(n)
        if n >= 0:
            return self._take(n)
        # Everything to the end, as asyncio's read(): what was read ahead, then the rest.
        return self._take(len(self.buf)) + await self._streamed().read()


class Connection:
    """The writer Microdot answers through: the stream, plus a file body to send after it.

    Microdot closes its writer once the response is written; while a file
    handed over by ``_File`` is still to go, that close waits for
    ``send_body``, which sends the file and closes the stream itself.
    """

    def __init__(self, stream):
        self.stream = stream
        self.body = None  # the path of a file still to send

    def awrite(self, data):
        return self.stream.awrite(data)

    async def aclose(self):
        if self.body is None:
            await self.stream.aclose()

    def get_extra_info(self, name):
        return self.stream.get_extra_info(name)

    async def send_body(self):
        """Send the file handed over, if any, read chunk by chunk into the SSEND that carries
        it: no buffer per download. Opened now and closed here: a board has few file handles."""
        path = self.body
        if path is None:
            return  # Microdot sent the whole answer, and closed the stream
        with open(path, "rb") as f:
            await self.stream.send_from(f)
        await self.stream.aclose()


def http_handler(app, head_ms):
    """``app.handle_request`` behind the head limits: a head that is too long
    gets 414 or 431, a declared body over Microdot's limit 413, a head that
    does not arrive within ``head_ms`` 408 (a slow client holds one of the
    few handlers); then the connection closes."""

    async def handle(stream, writer):
        reader = HeadReader(stream)
        stream.deadline(head_ms)
        try:
            # 0: the client closed before its head ended, and nobody is left to answer.
            status = 200 if await reader.read_head() else 0
        except HeadTooLarge as e:
            status = e.args[0]
        except asyncio.TimeoutError:
            status = 408
        except MemoryError:
            # No heap for the head while every handler is busy: 503 and Retry-After,
            # where the connection used to close unanswered (seen at six downloads' edge).
            app.counters["busy"] += 1
            status = 503
        stream.deadline(None)  # the body and the answer take what they take
        if status == 200:
            connection = Connection(writer)
            if await handle_request(app, reader, connection):
                await connection.send_body()
                return
            status = 503
        discard = asyncio.create_task(stream.discard())
        try:
            if status:
                retry = b"Retry-After: 1\r\n" if status == 503 else b""
                await writer.awrite(b"HTTP/1.0 %d %s\r\n%sContent-Length: 0\r\n\r\n" % (status, HEAD_ERRORS[status], retry))
        finally:
            await writer.aclose()
            discard.cancel()

    return handle


async def handle_request(app, reader, writer):
    """Microdot's ``handle_request``, except that a Request that finds no heap is made
    again instead of answered 400; False if it never could be (the caller answers 503).

    On a small heap with every handler busy, the Request's objects (a 464-byte
    dict among them) can fail in the holes the other requests leave, and
    Microdot would then answer 400, as if the request were wrong. The requests
    in flight soon end and give their heap back. The head is still whole in
    ``reader``, so the Request is made from it again, every 10 ms for up to
    ``REQUEST_WAIT_MS``, unless it had started reading a body from the stream.
    """
    req = None
    tries = REQUEST_WAIT_MS // 10
    while True:
        try:
            req = await Request.create(app, reader, writer, writer.get_extra_info("peername"))
        except MemoryError:
            tries -= 1
            if tries and reader.rewind():
                app.counters["request_retries"] += 1
                await sleep_ms(10)
                continue
            app.counters["busy"] += 1
            return False
        except OSError:
            raise  # the client left: nobody to answer
        except Exception:
            pass  # a malformed request: dispatched without one, Microdot answers 400
        break
    reader.head = None  # made: the head's bytes need not outlive it, through a whole download
    res = await app.dispatch_request(req)
    if res != Response.already_handled:
        await res.write(writer)
    await writer.aclose()
    if app.debug and req:  # Microdot's request log, with app.debug = True
        print("%s %s %d" % (req.method, req.path, res.status_code))
    return True


def _content_length(buf, end):
    """The Content-Length the head ``buf[:end]`` declares; 0 without one (or with
    nonsense: Microdot answers that with 400). Header names are case-insensitive:
    a body declared as CONTENT-LENGTH must not slip past the limit. Each line's
    name is looked at alone: a lower-case copy of the whole head was the block
    a busy heap had no room for."""
    i = buf.find(b"\n")
    while 0 <= i < end:
        nl = buf.find(b"\n", i + 1)
        if buf[i + 1 : i + 16].lower() == b"content-length:":
            value = buf[i + 16 : nl].strip()
            return int(value) if value.isdigit() else 0
        i = nl
    return 0

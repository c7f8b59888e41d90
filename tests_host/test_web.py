"""The request head reader in front of Microdot (``wizfi250.web.HeadReader``), under CPython.

What Microdot and a route read through it must be the stream's bytes in order, whatever
the head reader read ahead of them."""

import asyncio

from wizfi250.web import App, HeadReader, http_handler


class Chunks:
    """A stream that hands out ``chunks`` one ``read`` at a time, then EOF."""

    def __init__(self, *chunks):
        self.chunks = list(chunks)
        self.limits = []  # what deadline() was given, in order

    def deadline(self, ms):
        self.limits.append(ms)

    async def discard(self):
        self.chunks = []

    async def read(self, n=-1):
        if n < 0:  # to EOF, as wizfi250.stream.Stream.read()
            data = b"".join(self.chunks)
            self.chunks = []
            return data
        if not self.chunks:
            return b""
        chunk = self.chunks.pop(0)
        if n < len(chunk):
            self.chunks.insert(0, chunk[n:])
            chunk = chunk[:n]
        return chunk


def test_read_without_a_size_returns_the_body_read_ahead_and_the_rest_of_the_stream():
    # It returned only what the head's read had taken past the blank line.
    async def main():
        reader = HeadReader(Chunks(b"POST / HTTP/1.0\r\nContent-Length: 9\r\n\r\nbod", b"y, a", b"nd"))
        assert await reader.read_head()
        assert await reader.readline() == b"POST / HTTP/1.0\r\n"
        assert await reader.readline() == b"Content-Length: 9\r\n"
        assert await reader.readline() == b"\r\n"
        assert await reader.read() == b"body, and"

    asyncio.run(main())


def test_read_with_a_size_goes_on_from_the_stream_once_the_head_is_used_up():
    async def main():
        reader = HeadReader(Chunks(b"GET / HTTP/1.0\r\n\r\nab", b"cdef"))
        assert await reader.read_head()
        assert await reader.readexactly(18) == b"GET / HTTP/1.0\r\n\r\n"
        assert await reader.read(5) == b"ab"
        assert await reader.read(5) == b"cdef"
        assert await reader.read(5) == b""

    asyncio.run(main())


class Starved(Chunks):
    """A stream whose first ``read`` finds no heap for its bytes, as on a busy board."""

    async def read(self, n=-1):
        if not getattr(self, "starved", False):
            self.starved = True
            raise MemoryError
        return await super().read(n)


class Silent(Chunks):
    """A client that opened the connection and sends nothing: a read past the deadline
    raises, as a Stream's does."""

    async def read(self, n=-1):
        if self.limits[-1] is not None:
            raise asyncio.TimeoutError
        return await super().read(n)


class Writer:
    def __init__(self):
        self.sent = b""
        self.closed = False

    async def awrite(self, data):
        self.sent += data

    async def aclose(self):
        self.closed = True

    def get_extra_info(self, name):
        return ("127.0.0.1", 50000)


def answer(stream):
    app = App()
    writer = Writer()
    asyncio.run(http_handler(app, 1000)(stream, writer))
    assert writer.closed
    return writer.sent, app.counters["busy"]


def test_a_head_that_finds_no_heap_is_answered_503_not_closed_in_silence():
    # Seen at six downloads' heap edge: the handler died, and the browser got nothing.
    sent, busy = answer(Starved(b"GET / HTTP/1.0\r\n\r\n"))
    assert sent.startswith(b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\n") and busy == 1


def test_a_head_that_misses_its_deadline_is_answered_408_and_the_deadline_ends_with_the_head():
    stream = Silent()
    sent, _ = answer(stream)
    assert sent.startswith(b"HTTP/1.0 408 ") and stream.limits == [1000, None]


def test_a_declared_body_over_the_limit_is_refused_whatever_the_case_of_its_header():
    for name in (b"Content-Length", b"content-length", b"CONTENT-LENGTH", b"cOnTeNt-LeNgTh"):
        head = b"POST / HTTP/1.0\r\nHost: board\r\n%s:  999999999\r\n\r\n" % name
        assert answer(Chunks(head))[0].startswith(b"HTTP/1.0 413 "), name
    # A length in the body, after the head, is no header.
    sent, _ = answer(Chunks(b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc\r\ncontent-length: 999999999\r\n"))
    assert not sent.startswith(b"HTTP/1.0 413 ")

"""The request head reader in front of Microdot (``wizfi250.web.HeadReader``), under CPython.

What Microdot and a route read through it must be the stream's bytes in order, whatever
the head reader read ahead of them."""

import asyncio

from wizfi250.web import HeadReader


class Chunks:
    """A stream that hands out ``chunks`` one ``read`` at a time, then EOF."""

    def __init__(self, *chunks):
        self.chunks = list(chunks)

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

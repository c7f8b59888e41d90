"""The application: the site in www/ on module port 80, a TCP client and UDP beside it.

Configuration comes from config.json on the board (``WIZFI_CONFIG`` names
another file; the unix port's ``--uart PATH`` overrides the UART). Nothing
from it is ever served: the status endpoint reports state, not settings.
"""

import asyncio
import gc
import json
import os
import sys

from microdot import Microdot, Request, Response, send_file
from microdot.microdot import urldecode
from wizfi250.compat import sleep_ms, ticks_diff, ticks_ms
from wizfi250.engine import ECONNABORTED, Engine
from wizfi250.net import Net
from wizfi250.sockets import KIND_NAMES
from wizfi250.supervisor import Supervisor
from wizfi250.wifi import WiFi

GZIP_TYPES = ("html", "css", "js", "svg", "json", "txt", "ico")
REQUIRED = {"wifi": ("mode", "ssid", "key"), "uart": ("baud",), "http": ("port",)}


class ConfigError(Exception):
    pass


def load_config(path):
    try:
        with open(path) as f:
            config = json.load(f)
    except OSError:
        raise ConfigError("no configuration file %r: copy config.json and edit it" % path)
    except ValueError as e:
        raise ConfigError("%s is not valid JSON: %s" % (path, e))
    for section, keys in REQUIRED.items():
        for key in keys:
            if key not in config.get(section, {}):
                raise ConfigError("%s: missing %s.%s" % (path, section, key))
    if config["wifi"]["mode"] not in ("station", "ap"):
        raise ConfigError("%s: wifi.mode must be 'station' or 'ap'" % path)
    return config


def open_transport(uart, path=None):
    from wizfi250 import transport

    if path or uart.get("path"):
        return transport.open_device(path or uart["path"], uart["baud"])
    return transport.machine_uart(
        uart.get("id", 1), uart["baud"], uart.get("tx"), uart.get("rx"),
        uart.get("rts"), uart.get("cts"), uart.get("flow", False), uart.get("rxbuf", 2048),
    )  # fmt: skip


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


class _Pieces:
    """A response body sent piece by piece (Microdot iterates it; see ``_Chunks``)."""

    def __init__(self, pieces):
        self.pieces = pieces

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self.pieces:
            raise StopAsyncIteration
        return self.pieces.pop(0)


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
    compressed = ext in GZIP_TYPES and "gzip" in request.headers.get("Accept-Encoding", "") and _exists(full + ".gz")
    sent = full + ".gz" if compressed else full
    response = send_file(full, compressed=compressed, stream=_File(sent, request.sock[1]), max_age=3600)
    # With a length a client can tell a transfer cut short (a module reset) from a
    # complete one; HTTP/1.0 without it ends at the close either way.
    response.headers["Content-Length"] = str(os.stat(sent)[6])
    return response


def make_app(engine, net, wifi, supervisor, started, root, transcript=None, save_to=None):
    """The site; with a ``transcript``, its debug routes too (before the files catch all)."""
    app = Microdot()
    # What only the web server knows, for the status page: requests whose Request
    # was made again for want of heap, and those answered 503 in the end.
    app.counters = {"request_retries": 0, "busy": 0}
    Response.types_map["svg"] = "image/svg+xml"
    Response.types_map["ico"] = "image/x-icon"

    @app.errorhandler(MemoryError)
    async def no_heap(request, exc):
        # A route's objects found no heap while every handler was busy: the request
        # was fine, and Microdot's 500 would say it was not. Again in a moment, it will do.
        app.counters["busy"] += 1
        return "", 503, {"Retry-After": "1"}

    @app.route("/api/status")
    async def status(request):
        # Sent in pieces, one per socket: the whole document as one string needs
        # 1.5 KB in one block twice over (the text, then its bytes), which a busy,
        # fragmented heap can refuse (seen as a 500 in the soak).
        info = dict(engine.wifi)
        info["mode"] = wifi.mode
        info["rssi"] = None
        info["supervisor"] = supervisor.state
        counters = engine.stats()
        counters.update(app.counters)
        counters["idle_closed"] = net.counters["idle_closed"]
        counters["accepted"] = counters["refused"] = handlers = 0  # handlers: running now, this one among them
        for server in net.servers:
            counters["accepted"] += server.accepted
            counters["refused"] += server.refused
            handlers += server.active
        head = {"uptime_s": ticks_diff(ticks_ms(), started) // 1000, "wifi": info, "handlers": handlers,
                "counters": counters, "heap_free": _heap_free(request.args.get("gc"))}  # fmt: skip
        pieces = [json.dumps(head)[:-1] + ', "sockets": [']
        for sock in engine.table:
            if sock is not None:
                pieces.append(("" if len(pieces) == 1 else ", ") + json.dumps({
                    "sid": sock.sid, "kind": KIND_NAMES[sock.kind], "state": "open" if sock.open else "closed",
                    "peer": "%s:%d" % sock.peer if sock.peer else "", "local_port": sock.local_port,
                    "rx_bytes": sock.rx_bytes, "tx_bytes": sock.tx_bytes,
                }))  # fmt: skip
        pieces.append("]}")
        return Response(_Pieces(pieces), headers={"Content-Type": "application/json"})

    if transcript is not None:
        transcript.add_routes(app, save_to)

    @app.route("/")
    async def index(request):
        return static_file(request, root, "") or ("Not found", 404)

    @app.route("/<path:path>")
    async def files(request, path):
        return static_file(request, root, path) or ("Not found", 404)

    return app


MAX_HEAD = 4096  # request line and headers together; a browser sends under 1.5 KB
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
    header line would fill the heap first. This reads at most ``MAX_HEAD``
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
            if len(buf) >= MAX_HEAD:
                raise HeadTooLarge(431)
            chunk = await self.stream.read(MAX_HEAD - len(buf))
            if not chunk:
                return False
            self.buf = buf + chunk if buf else chunk

    async def discard(self):
        """Read and drop everything until the socket is released.

        A client still sending must be read while the refusal goes out: its
        unread frames would fill the socket's ring and hold the UART, and
        with it the SSEND that carries the answer.
        """
        try:
            while await self.stream.read(1024):
                pass
        except OSError:
            pass  # released: the close is done

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
        if self.buf:
            return self._take(len(self.buf) if n < 0 else n)
        return await self._streamed().read(n)


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
        """Send the file, read chunk by chunk into the SSEND that carries it: no
        buffer per download. Opened now and closed here: a board has few file handles."""
        with open(self.body, "rb") as f:
            await self.stream.send_from(f)
        await self.stream.aclose()


def http_handler(app, head_ms):
    """``app.handle_request`` behind the head limits: a head that is too long
    gets 414 or 431, a declared body over Microdot's limit 413, a head that
    does not arrive within ``head_ms`` 408 (a slow client holds one of the
    few handlers); then the connection closes."""

    async def handle(stream, writer):
        reader = HeadReader(stream)
        try:
            if not await asyncio.wait_for(reader.read_head(), head_ms / 1000):
                status = 0  # closed before the head ended: nobody to answer
            else:
                connection = Connection(writer)
                if await handle_request(app, reader, connection):
                    if connection.body is not None:
                        await connection.send_body()
                    return
                status = 503
        except HeadTooLarge as e:
            status = e.args[0]
        except asyncio.TimeoutError:
            status = 408
        discard = asyncio.create_task(reader.discard())
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
    a body declared as CONTENT-LENGTH must not slip past the limit."""
    head = buf[:end].lower()
    i = head.find(b"\ncontent-length:")
    if i < 0:
        return 0
    value = head[i + 16 : head.find(b"\n", i + 1)].strip()
    return int(value) if value.isdigit() else 0


def record_transcript(config, transport):
    """The transport wrapped in a recording, or as it is when ``debug.transcript_kb`` is 0
    (the module is not even imported then: its code would take heap for nothing)."""
    kb = config.get("debug", {}).get("transcript_kb", 0)
    if not kb:
        return None, transport
    from wizfi250.transcript import Recording, Transcript

    transcript = Transcript(kb * 1024)
    return transcript, Recording(transport, transcript)


async def tcp_client(net, host, port):
    """One connection to host:port: greet it, then read what it sends until it closes."""
    reader, writer = await net.open_connection(host, port)
    try:
        await writer.awrite(b"hello from wizfi250\n")
        while await reader.read(512):
            pass
    finally:
        await writer.aclose()


async def udp_service(net, engine, port, target, every_s):
    """One UDP socket for both jobs (the module has only 8 ids): echo what
    arrives on ``port``, and send a status datagram to ``target`` every ``every_s``."""
    udp = await net.open_udp(local_port=port)

    async def status():
        while True:
            await asyncio.sleep(every_s)
            try:
                stats = engine.stats()
                text = b"wizfi250 frames=%d rx=%d tx=%d" % (stats["frames"], stats["rx_bytes"], stats["tx_bytes"])
                await udp.sendto(text, target)
            except MemoryError:
                pass  # a full heap skips one datagram; it must not end the sender for good

    sender = asyncio.create_task(status()) if target else None
    try:
        while True:
            data, peer = await udp.recvfrom()
            await udp.sendto(data, peer)
    finally:
        if sender is not None:
            sender.cancel()


async def run_forever(coro_fn, *args):
    """A service that must survive module resets and peers that go away: run it
    again a second after it ends. It ends with the driver (ECONNABORTED), which
    no retry would bring back."""
    while True:
        try:
            await coro_fn(*args)
        except OSError as e:
            if e.args and e.args[0] == ECONNABORTED:
                raise
        await asyncio.sleep(1)


def _heap_free(collect=False):
    """Free heap; after a collection when asked (``/api/status?gc=1``), which is the
    figure that shows a leak: without one it mostly shows when gc last ran."""
    if collect:
        gc.collect()
    return gc.mem_free() if hasattr(gc, "mem_free") else None


async def bring_up(config, transport):
    """Start the driver and wait until the module is set up and on the network.

    Returns ``(engine, net, wifi, supervisor)``; the supervisor keeps it so.
    """
    handlers = config["http"].get("max_handlers", 6)
    # Every buffer a connection needs is made now, while the heap is whole: an output
    # queue for each handler, and a ring for each of the module's 8 ids and two more,
    # because the module gives a closed id to the next connection at once, while the
    # old one's handler may still hold its ring (with 8, one soak of 1,000 requests at
    # 128K in ten lost a connection for want of one). 1 KB rings receive as fast as
    # 2 KB ones (0.98 of the line rate at 921600) and hold a browser's request head;
    # 512-byte ones do not (see the README, "Heap after gc").
    # Collected first, the garbage of start-up (imports, the configuration) leaves
    # room low in the heap for these long-lived buffers, not holes between them:
    # six downloads then run at 152K, where they failed for fragmentation.
    gc.collect()
    engine = Engine(transport, rings=10, socket_rx=1024)
    engine.start()
    net = Net(engine, handlers, config["http"].get("idle_ms", 5000), queues=handlers)
    wifi = WiFi(engine)
    w = config["wifi"]
    join = ("ap", w["ssid"], w["key"]) if w["mode"] == "ap" else ("station", w["ssid"], w["key"], w.get("security", ""))
    supervisor = Supervisor(net, wifi, join)
    asyncio.create_task(supervisor.run())
    while supervisor.state != "up":
        await asyncio.sleep(0.05)
    return engine, net, wifi, supervisor


async def main(config, transport):
    transcript, transport = record_transcript(config, transport)
    engine, net, wifi, supervisor = await bring_up(config, transport)
    debug = config.get("debug", {})
    save_to = debug.get("save_to", "transcript.log")
    served = transcript if debug.get("endpoint", False) else None
    app = make_app(engine, net, wifi, supervisor, ticks_ms(), config["http"].get("root", "www"), served, save_to)
    app.debug = debug.get("requests", False)  # a line on the console per request answered
    if transcript is not None and debug.get("save_on_reset", False):
        transcript.save_on_reset(net, save_to)
    port = config["http"]["port"]
    await net.start_server(http_handler(app, config["http"].get("idle_ms", 5000)), port)
    print("wizfi250: serving on module port %d (%s)" % (port, engine.wifi["ip"]))
    client = config.get("tcp_client")
    if client and client.get("enabled", True):
        asyncio.create_task(run_forever(tcp_client, net, client["host"], client["port"]))
    udp = config.get("udp", {})
    if udp.get("echo_port"):
        target = tuple(udp["status_to"]) if udp.get("status_to") else None
        asyncio.create_task(run_forever(udp_service, net, engine, udp["echo_port"], target, udp.get("status_every_s", 5)))
    while True:
        await asyncio.sleep(3600)


def start(app=main):
    """Load the configuration, open the UART and run ``app(config, transport)``."""
    argv = sys.argv[1:] if hasattr(sys, "argv") else []
    uart_path = argv[argv.index("--uart") + 1] if "--uart" in argv else None
    try:
        config = load_config(os.getenv("WIZFI_CONFIG") if hasattr(os, "getenv") and os.getenv("WIZFI_CONFIG") else "config.json")
    except ConfigError as e:
        print("wizfi250: configuration error:", e)
        return
    asyncio.run(app(config, open_transport(config["uart"], uart_path)))


if __name__ == "__main__":
    start()

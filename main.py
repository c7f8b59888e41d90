"""The application: the site in www/ on module port 80, a TCP client and UDP beside it.

Configuration comes from config.json on the board (``WIZFI_CONFIG`` names
another file; the unix port's ``--uart PATH`` overrides the UART). Nothing
from it is ever served: the status endpoint reports state, not settings.
"""

import asyncio
import json
import os
import sys

from microdot import Microdot, Response, send_file
from microdot.microdot import urldecode
from wizfi250.compat import ticks_diff, ticks_ms
from wizfi250.engine import ECONNABORTED, SSEND_MAX, Engine
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


class _Chunks:
    """A file sent in chunks read into one buffer shared by every download.

    Microdot awaits each chunk and passes it to ``Stream.awrite``, which copies
    it into the socket's queue before anything else runs: so one buffer serves
    every connection, where Microdot's own file loop allocates a kilobyte per
    chunk (fragmenting a small heap until a download fails with MemoryError)
    and a class per response (1.6 KB per download in flight, measured).
    """

    buf = memoryview(bytearray(SSEND_MAX))

    def __init__(self, f):
        self.f = f

    def __aiter__(self):
        return self

    async def __anext__(self):
        n = self.f.readinto(self.buf)
        if not n:
            raise StopAsyncIteration
        return self.buf[:n]

    async def aclose(self):
        self.f.close()


def static_file(request, root, path):
    """A file under ``root``, gzipped when the browser accepts it; None for anything outside."""
    path = urldecode(path)
    if ".." in path or "\\" in path or "\0" in path or path.startswith("/"):
        return None
    if path == "" or path.endswith("/"):
        path += "index.html"
    full = root + "/" + path
    if not _exists(full):
        return None
    ext = path.rsplit(".", 1)[-1]
    if ext in GZIP_TYPES and "gzip" in request.headers.get("Accept-Encoding", "") and _exists(full + ".gz"):
        response = send_file(full, compressed=True, file_extension=".gz", max_age=3600)
        full += ".gz"
    else:
        response = send_file(full, max_age=3600)
    response.body = _Chunks(response.body)
    # With a length a client can tell a transfer cut short (a module reset) from a
    # complete one; HTTP/1.0 without it ends at the close either way.
    response.headers["Content-Length"] = str(os.stat(full)[6])
    return response


def make_app(engine, wifi, supervisor, started, root):
    app = Microdot()
    Response.types_map["svg"] = "image/svg+xml"
    Response.types_map["ico"] = "image/x-icon"

    @app.route("/api/status")
    async def status(request):
        sockets = []
        for sock in engine.table:
            if sock is not None:
                peer = "%s:%d" % sock.peer if sock.peer else ""
                sockets.append({
                    "sid": sock.sid, "kind": KIND_NAMES[sock.kind], "state": "open" if sock.open else "closed",
                    "peer": peer, "local_port": sock.local_port, "rx_bytes": sock.rx_bytes, "tx_bytes": sock.tx_bytes,
                })  # fmt: skip
        info = dict(engine.wifi)
        info["mode"] = wifi.mode
        info["rssi"] = None
        info["supervisor"] = supervisor.state
        return {
            "uptime_s": ticks_diff(ticks_ms(), started) // 1000, "wifi": info, "sockets": sockets,
            "counters": engine.stats(), "heap_free": _heap_free(),
        }  # fmt: skip

    @app.route("/")
    async def index(request):
        return static_file(request, root, "") or ("Not found", 404)

    @app.route("/<path:path>")
    async def files(request, path):
        return static_file(request, root, path) or ("Not found", 404)

    return app


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
            stats = engine.stats()
            text = b"wizfi250 frames=%d rx=%d tx=%d" % (stats["frames"], stats["rx_bytes"], stats["tx_bytes"])
            await udp.sendto(text, target)

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


def _heap_free():
    import gc

    return gc.mem_free() if hasattr(gc, "mem_free") else None


async def bring_up(config, transport):
    """Start the driver and wait until the module is set up and on the network.

    Returns ``(engine, net, wifi, supervisor)``; the supervisor keeps it so.
    """
    engine = Engine(transport)
    engine.start()
    net = Net(engine, config["http"].get("max_handlers", 6), config["http"].get("idle_ms", 5000))
    wifi = WiFi(engine)
    w = config["wifi"]
    join = ("ap", w["ssid"], w["key"]) if w["mode"] == "ap" else ("station", w["ssid"], w["key"], w.get("security", ""))
    supervisor = Supervisor(net, wifi, join)
    asyncio.create_task(supervisor.run())
    while supervisor.state != "up":
        await asyncio.sleep(0.05)
    return engine, net, wifi, supervisor


async def main(config, transport):
    engine, net, wifi, supervisor = await bring_up(config, transport)
    app = make_app(engine, wifi, supervisor, ticks_ms(), config["http"].get("root", "www"))
    port = config["http"]["port"]
    await net.start_server(app.handle_request, port)
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

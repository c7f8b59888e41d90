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

from microdot import Response
from wizfi250.compat import ticks_diff, ticks_ms
from wizfi250.engine import ECONNABORTED, Engine, breaks_line
from wizfi250.net import Net
from wizfi250.sockets import KIND_NAMES
from wizfi250.supervisor import Supervisor
from wizfi250.web import App, Pieces, http_handler, static_file
from wizfi250.wifi import WiFi, ap_name

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
    wifi = config["wifi"]
    if wifi["mode"] not in ("station", "ap"):
        raise ConfigError("%s: wifi.mode must be 'station' or 'ap'" % path)
    # Checked here, not when the module is first set up, where the driver's ValueError
    # would stop the firmware with a traceback instead of this line.
    for key in ("ssid", "key", "security"):
        value = wifi.get(key, "")
        if not isinstance(value, str) or breaks_line(value.encode()):
            raise ConfigError("%s: wifi.%s must be text without CR, LF, BS or NUL, short enough for one command line of the module" % (path, key))
    if not 1 <= len(wifi["ssid"].encode()) <= 32:
        raise ConfigError("%s: wifi.ssid must be 1 to 32 bytes" % path)
    if wifi["mode"] == "ap":
        try:
            ap_name(wifi["ssid"])
        except ValueError as e:
            raise ConfigError("%s: wifi.ssid: %s" % (path, e))
    return config


def open_transport(uart, path=None):
    from wizfi250 import transport

    if path or uart.get("path"):
        return transport.open_device(path or uart["path"], uart["baud"], uart.get("flow", False))
    return transport.machine_uart(
        uart.get("id", 1), uart["baud"], uart.get("tx"), uart.get("rx"),
        uart.get("rts"), uart.get("cts"), uart.get("flow", False), uart.get("rxbuf", 2048),
    )  # fmt: skip


def make_app(engine, net, wifi, supervisor, started, root, transcript=None, save_to=None):
    """The site; with a ``transcript``, its debug routes too (before the files catch all)."""
    app = App()

    @app.route("/api/status")
    async def status(request):
        # The collection first, here: a route that finds no heap is answered 503 (and
        # what follows has the most room), while a body cut short could not be.
        free = _heap_free(request.args.get("gc"))
        report = status_pieces(engine, net, wifi, supervisor, app, started, free)
        return Response(Pieces(report), headers={"Content-Type": "application/json"})

    if transcript is not None:
        transcript.add_routes(app, save_to)

    @app.route("/")
    async def index(request):
        return static_file(request, root, "") or ("Not found", 404)

    @app.route("/<path:path>")
    async def files(request, path):
        return static_file(request, root, path) or ("Not found", 404)

    return app


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
                counters = engine.counters  # read in place, not copied: this runs every few seconds
                text = b"wizfi250 frames=%d rx=%d tx=%d" % (counters["frames"], counters["rx_bytes"], counters["tx_bytes"])
                await udp.sendto(text, target)
            except (OSError, MemoryError):
                pass  # a failed send or a full heap skips one datagram; it must not end the sender
                # for good (if the socket is gone, recvfrom fails too, and the service restarts)

    sender = asyncio.create_task(status()) if target else None
    try:
        while True:
            data, peer = await udp.recvfrom()  # fails once the socket has ended: the service restarts
            try:
                await udp.sendto(data, peer)
            except OSError:
                pass  # one sender out of reach ([ERROR] to its SSEND) costs its echo, not the service
    finally:
        if sender is not None:
            sender.cancel()
        try:
            await udp.close()  # its id on the module and its ring: each restart held one more of each
        except OSError:
            pass


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
        except MemoryError:
            pass  # no heap for it now (six downloads at a small heap): it ended; try again
        await asyncio.sleep(1)


def status_pieces(engine, net, wifi, supervisor, app, started, free):
    """/api/status's JSON, made a small piece at a time as it is sent. Under load a
    fragmented 128K heap refused the blocks of the whole document (the merged counters'
    dict, the head as one 650-byte string) for seconds on end: 503s to a monitor."""
    handlers = accepted = refused = parked = 0  # handlers: running now, this one among them
    for server in net.servers:
        accepted += server.accepted
        refused += server.refused
        parked += server.parked
        handlers += server.active
    yield '{"uptime_s": %d, "handlers": %d, "heap_free": %s, "wifi": ' % (
        ticks_diff(ticks_ms(), started) // 1000, handlers, json.dumps(free))
    info = dict(engine.wifi)
    info["mode"] = wifi.mode
    info["rssi"] = None
    info["supervisor"] = supervisor.state
    yield json.dumps(info)
    yield ', "counters": {"idle_closed": %d, "recoveries": %d, "accepted": %d, "refused": %d, "parked": %d' % (
        net.counters["idle_closed"], supervisor.recoveries, accepted, refused, parked)
    for counts in (engine.counts(), app.counters.items()):
        for name, count in counts:
            yield ', "%s": %d' % (name, count)
    yield '}, "sockets": ['
    comma = ""
    for sock in engine.table:
        if sock is not None:
            yield comma + json.dumps({
                "sid": sock.sid, "kind": KIND_NAMES[sock.kind], "state": "open" if sock.open else "closed",
                "peer": "%s:%d" % sock.peer if sock.peer else "", "local_port": sock.local_port,
                "rx_bytes": sock.rx_bytes, "tx_bytes": sock.tx_bytes,
            })  # fmt: skip
            comma = ", "
    yield "]}"


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
    # 512-byte ones do not (see docs/performance.md, "Heap after gc").
    # Collected first, the garbage of start-up (imports, the configuration) leaves
    # room low in the heap for these long-lived buffers, not holes between them:
    # six downloads then run at 152K, where they failed for fragmentation.
    gc.collect()
    engine = Engine(transport, rings=10, socket_rx=1024)
    failed = asyncio.create_task(_outcome(engine.start()))
    net = Net(engine, handlers, config["http"].get("idle_ms", 5000), queues=handlers)
    wifi = WiFi(engine)
    w = config["wifi"]
    join = ("ap", w["ssid"], w["key"]) if w["mode"] == "ap" else ("station", w["ssid"], w["key"], w.get("security", ""))
    supervisor = Supervisor(net, wifi, join)
    supervising = asyncio.create_task(_outcome(supervisor.run()))
    while supervisor.state != "up":
        if supervisor.state == "stopped":
            raise await failed  # the reader ended (the UART went away): its error, not a hang
        if supervising.done():
            raise await supervising  # it died of a bug: say so rather than wait for ever
        await asyncio.sleep(0.05)
    return engine, net, wifi, supervisor


async def _outcome(coro):
    """The OSError ``coro`` ends in, returned, not raised. A task that ends in one
    nobody is awaiting at that moment makes MicroPython print "Task exception wasn't
    retrieved" and a traceback, here above the one line that says why the firmware stops
    (the reader's UART error, and the supervisor's ECONNABORTED that follows it).
    Anything else is a bug and is raised, traceback and all."""
    try:
        await coro
    except OSError as e:
        return e


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
    await engine.start()  # the reader task: it ends only when the UART does


def start(app=main):
    """Load the configuration, open the UART and run ``app(config, transport)``."""
    argv = sys.argv[1:] if hasattr(sys, "argv") else []
    uart_path = argv[argv.index("--uart") + 1] if "--uart" in argv else None
    try:
        config = load_config(os.getenv("WIZFI_CONFIG") if hasattr(os, "getenv") and os.getenv("WIZFI_CONFIG") else "config.json")
    except ConfigError as e:
        return _failed("configuration error: %s" % e)
    try:
        asyncio.run(app(config, open_transport(config["uart"], uart_path)))
    except KeyboardInterrupt:
        print("wizfi250: stopped")  # Ctrl-C: the way to stop it, not a failure
    except OSError as e:  # the UART went away: a supervisor (systemd, a script) may start it again
        _failed("stopped: %s" % e)


def _failed(text):
    """Say why the firmware stops; on the unix port exit 1, for the script that started it.
    A board goes back to the REPL: an exit there would soft-reset into the same error."""
    print("wizfi250: %s" % text)
    if sys.platform in ("linux", "darwin"):
        sys.exit(1)


if __name__ == "__main__":
    start()

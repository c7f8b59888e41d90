"""The emulated module's plumbing: a pty as its UART, real sockets on 127.0.0.1.

One asyncio loop moves bytes between the pty and the sans-IO core at the
configured line rate (10 bit times a byte, both ways, from a token budget
so the rate holds whatever the scheduling jitter), and between the core
and host sockets. A module TCP server on port P listens on 127.0.0.1 at the
mapped port; clients that arrive while the module has no listener (the
multi-connection listener moves about a second after each accept) wait in
a queue, as they would in the module's backlog.
"""

import asyncio
import json
import os
import random
import time
import tty

from .core import Module

TICK_S = 0.002


class Config:
    def __init__(self, baud=115200, ports=None, ap=("WizFiAP", "12345678"), link=None,
                 control=None, transcript=None, seed=None, inject=False, ok_delay=0.0,
                 send_error=0.0, split=False):  # fmt: skip
        self.baud = baud  # 0: unpaced
        self.ports = dict(ports or {})  # module port -> host port
        self.ap = ap
        self.link = link
        self.control = control  # None: no control port; 0: any free port
        self.transcript = transcript
        self.seed = seed
        self.inject = inject
        self.ok_delay = ok_delay
        self.send_error = send_error
        self.split = split


class _Net:
    """The core's network: host sockets behind module socket ids."""

    def __init__(self, emu):
        self.emu = emu
        self.conns = {}  # sid -> (kind, transport or writer)
        self.servers = {}  # module port -> asyncio server
        self.waiting = []  # (reader, writer) accepted by the host, not yet by the module

    def host_port(self, port):
        return self.emu.config.ports.get(port, port)

    def listen(self, sid, port):
        if port not in self.servers:
            self.servers[port] = None  # being started
            asyncio.ensure_future(self._serve(port))

    async def _serve(self, port):
        async def arrived(reader, writer):
            self.waiting.append((reader, writer))

        self.servers[port] = await asyncio.start_server(arrived, "127.0.0.1", self.host_port(port))

    def accept_waiting(self):
        core = self.emu.core
        while self.waiting and core.listener_sid() >= 0:
            reader, writer = self.waiting.pop(0)
            peer = writer.get_extra_info("peername")[:2]
            sid = core.accepted(peer)
            self._pump_tcp(sid, reader, writer, peer)

    def connect(self, sid, remote):
        asyncio.ensure_future(self._connect(sid, remote))

    async def _connect(self, sid, remote):
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", remote[1]), 5)
        except (OSError, asyncio.TimeoutError):
            self.emu.core.connect_failed(sid)
            return
        self.emu.core.connected(sid)
        self._pump_tcp(sid, reader, writer, ("127.0.0.1", remote[1]))

    def _pump_tcp(self, sid, reader, writer, peer):
        entry = ["tcp", writer]
        self.conns[sid] = entry

        async def pump():
            while True:
                try:
                    data = await reader.read(1460)
                except OSError:
                    data = b""
                if self.conns.get(sid) is not entry:
                    return  # closed by the module meanwhile
                if not data:
                    del self.conns[sid]
                    writer.close()
                    self.emu.core.peer_closed(sid)
                    return
                self.emu.core.received(sid, data, peer)

        asyncio.ensure_future(pump())

    def udp(self, sid, local_port, remote):
        asyncio.ensure_future(self._udp(sid, local_port))

    async def _udp(self, sid, local_port):
        net = self

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                if net.conns.get(sid) is entry:
                    net.emu.core.received(sid, data, addr[:2])

        loop = asyncio.get_running_loop()
        local = ("127.0.0.1", self.host_port(local_port) if local_port else 0)
        entry = ["udp", None]
        self.conns[sid] = entry
        entry[1], _ = await loop.create_datagram_endpoint(Protocol, local_addr=local)

    def send(self, sid, data, addr):
        entry = self.conns.get(sid)
        if entry is None or entry[1] is None:
            return
        if entry[0] == "tcp":
            entry[1].write(data)
        else:
            entry[1].sendto(data, ("127.0.0.1", addr[1]))

    def close(self, sid):
        entry = self.conns.pop(sid, None)
        if entry is not None and entry[1] is not None:
            entry[1].close()

    def close_all(self):
        for sid in list(self.conns):
            self.close(sid)
        for server in self.servers.values():
            if server is not None:
                server.close()
        for _, writer in self.waiting:
            writer.close()


class Emulator:
    def __init__(self, config):
        self.config = config
        self.net = _Net(self)
        self.core = Module(self.net, config.ap, config.seed)
        self.core.chaos.inject = config.inject
        self.core.chaos.ok_delay = config.ok_delay
        self.core.chaos.send_error = config.send_error
        self.rng = random.Random(config.seed)
        self.serial_path = None
        self.control_port = None
        self.stats = {"host_to_module": 0, "module_to_host": 0}
        self._task = None
        self._control = None
        self._log = None
        self._t0 = time.monotonic()

    async def start(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.serial_path = os.ttyname(self.slave)
        if self.config.link:
            if os.path.lexists(self.config.link):
                os.unlink(self.config.link)
            os.symlink(self.serial_path, self.config.link)
        if self.config.transcript:
            self._log = open(self.config.transcript, "w")
        if self.config.control is not None:
            self._control = await asyncio.start_server(self._on_control, "127.0.0.1", self.config.control)
            self.control_port = self._control.sockets[0].getsockname()[1]
        self._task = asyncio.ensure_future(self._run())

    async def stop(self):
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._control is not None:
            self._control.close()
        self.net.close_all()
        os.close(self.master)
        os.close(self.slave)
        if self.config.link and os.path.islink(self.config.link):
            os.unlink(self.config.link)
        if self._log is not None:
            self._log.close()

    def _transcript(self, arrow, data):
        if self._log is not None:
            self._log.write("%.6f %s %r\n" % (time.monotonic() - self._t0, arrow, bytes(data)))
            self._log.flush()

    async def _run(self):
        rate = self.config.baud / 10  # bytes per second; 0 = unpaced
        burst = max(16, int(rate * 0.004)) if rate else 1 << 16
        budget_in = budget_out = 0.0
        last = time.monotonic()
        while True:
            now = time.monotonic()
            if rate:
                budget_in = min(budget_in + (now - last) * rate, burst)
                budget_out = min(budget_out + (now - last) * rate, burst)
            else:
                budget_in = budget_out = burst
            last = now
            self.core.tick(now - self._t0)
            self.net.accept_waiting()
            # Host -> module: what the line rate lets through; the rest waits in the
            # pty, which holds the host's writes back as RTS/CTS would.
            n = int(budget_in)
            if n > 0:
                try:
                    data = os.read(self.master, min(n, 4096))
                except (BlockingIOError, OSError):
                    data = b""
                if data:
                    budget_in -= len(data)
                    self.stats["host_to_module"] += len(data)
                    self._transcript(">", data)
                    self.core.feed(data)
            out = self.core.out
            n = min(int(budget_out), len(out))
            if self.config.split and n > 1:
                n = self.rng.randint(1, n)
            if n > 0:
                try:
                    written = os.write(self.master, out[:n])
                except BlockingIOError:
                    written = 0
                if written:
                    self._transcript("<", out[:written])
                    del out[:written]
                    budget_out -= written
                    self.stats["module_to_host"] += written
            await asyncio.sleep(TICK_S if rate or not out else 0)

    async def _on_control(self, reader, writer):
        while True:
            line = await reader.readline()
            if not line:
                break
            try:
                reply = self.control(json.loads(line))
            except (ValueError, KeyError, TypeError) as e:
                reply = {"error": repr(e)}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        writer.close()

    def control(self, request):
        """One control operation: reset, link_down, chaos, stats."""
        op = request["op"]
        core = self.core
        if op == "reset":
            core.reset()
        elif op == "link_down":
            core.link_down()
            if "rejoin_after" in request:
                ap = core.ap
                core.ap = ("", "")  # the network is gone until then
                core.later(float(request["rejoin_after"]), lambda: setattr(core, "ap", ap))
        elif op == "chaos":
            chaos = core.chaos
            chaos.inject = request.get("inject", chaos.inject)
            chaos.ok_delay = request.get("ok_delay", chaos.ok_delay)
            chaos.send_error = request.get("send_error", chaos.send_error)
            self.config.split = request.get("split", self.config.split)
        elif op != "stats":
            raise KeyError(op)
        stats = dict(core.stats, **self.stats)
        stats["sockets_open"] = len(core.sockets)
        return {"ok": True, "stats": stats}

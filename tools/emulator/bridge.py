"""The emulated module's plumbing: a pty (and optionally a TCP port) as its UART,
real sockets on 127.0.0.1 behind its socket ids.

One asyncio task moves bytes between the serial side and the sans-IO core at
the configured line rate: 10 bit times a byte in each direction, from a
time-based token schedule (the budget grows with elapsed time, so the rate
holds whatever the scheduling jitter; no per-byte sleeps). Host bytes go into
the module's 2048-byte receive ring; with ``flow`` (RTS/CTS) the bridge stops
reading the pty while the ring is full, so the host's writes block as they
would on a wire with RTS; without it the bytes that do not fit are lost and
counted. With ``flow`` the host's RTS holds the module too: output waits while
the host leaves ``HOST_RX`` bytes unread. Output leaves in bursts of whatever
the line rate allowed since the last pass (0.5 ms).

A module TCP server on port P listens on 127.0.0.1 at the mapped port. Clients
that arrive while the module has no listener (the multi-connection listener
moves about a second after each accept) wait in a queue, as in the module's
listen backlog.
"""

import asyncio
import fcntl
import json
import os
import random
import socket
import struct
import termios
import time
import traceback
import tty

from .core import Module

TICK_S = 0.0005  # pacing pass period while active: each turn of the line waits up to one pass
IDLE_AFTER_S = 0.05  # with nothing moving for this long, sleep until woken
SLACK_S = 0.05  # a stalled loop may catch up on at most this much line time
# A burst after silence starts at once: up to this much line time of it is
# passed on ahead of the wire, about the loop's timer granularity (1 ms).
# Its wire time is still charged: the bytes after it wait for it. Credited
# instead, each burst gained 1 ms of line (92 bytes at 921600), which took the
# send figure past what the SSEND framing allows, to 1.00. A pass every 2 ms
# then made every turn of the line (command, prompt, payload, [OK]) wait up to
# 2 ms, latency the module does not have: 0.87 of the line at 921600; 0.95 now.
BURST_S = 0.001
# The module's TCP window (2 KB, reference 3.2 [F-DFLT]): peers are not read while this much
# waits for the UART, so a peer faster than the line (or than a host holding RTS) is held
# back by TCP, not queued here without end.
OUT_HIGH_WATER = 2048
# With ``flow``, the host's RTS: no more is written while this much of it is unread on the
# pty, a board's UART buffer (the firmware's ``rxbuf``, 2048 by default).
HOST_RX = 2048


class Config:
    def __init__(self, baud=115200, ports=None, ap=("WizFiAP", "12345678"), link=None,
                 control=None, transcript=None, seed=None, inject=False, ok_delay=0.0,
                 send_error=0.0, split=False, flow=False, tcp_serial=None, map=None):  # fmt: skip
        self.baud = baud  # 0: unpaced
        self.flow = flow  # RTS/CTS modelled
        self.ports = dict(ports or {})  # module port -> host port
        for item in map or ():  # also as "P:H" strings, like --map
            module_port, host_port = str(item).split(":")
            self.ports[int(module_port)] = int(host_port)
        if isinstance(ap, str):  # also as "SSID:KEY", like --ap
            ap = ap.partition(":")[::2]
        self.ap = tuple(ap)
        self.link = link  # symlink to the pty
        self.tcp_serial = tcp_serial  # None: none; 0: any free port
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
        self.conns = {}  # sid -> [kind, transport or writer]
        self.servers = {}  # module port -> asyncio server (None while starting)
        self.socks = {}  # module port -> listening socket
        self.waiting = {}  # module port -> [(reader, writer)] accepted by the host, not yet by the module
        self.tasks = set()

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def host_port(self, port):
        return self.emu.config.ports.get(port, port)

    # core -> network

    def listen(self, sid, port):
        if port in self.servers:
            return
        # Bind at once, so the port accepts connections as soon as [OK] is out.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.host_port(port)))
            sock.listen(5)  # NetX's listen backlog (F-DFLT)
        except OSError:
            sock.close()
            # A listen failure ends as [DISCONNECT n] (2.1), from the socket thread.
            asyncio.get_running_loop().call_soon(self._listen_failed, sid)
            return
        sock.setblocking(False)
        self.servers[port] = None
        self.socks[port] = sock
        self.waiting.setdefault(port, [])
        self._spawn(self._serve(port, sock))

    def _listen_failed(self, sid):
        self.emu.core.connect_failed(sid)
        self.emu.wake()

    async def _serve(self, port, sock):
        async def arrived(reader, writer):
            if port not in self.servers:
                writer.close()
                return
            self.waiting.setdefault(port, []).append((reader, writer))
            self.emu.wake()

        server = await asyncio.start_server(arrived, sock=sock)
        if port in self.servers:
            self.servers[port] = server
        else:
            server.close()  # unlistened meanwhile

    def unlisten(self, port):
        for p in list(self.servers) if port is None else [port]:
            server = self.servers.pop(p, None)
            if server is not None:
                server.close()
            sock = self.socks.pop(p, None)
            if sock is not None:
                sock.close()
            for _, writer in self.waiting.pop(p, []):
                writer.close()

    def connect(self, sid, remote):
        self._spawn(self._connect(sid, remote))

    async def _connect(self, sid, remote):
        # Every address in this world is the host itself.
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", remote[1]), 5)
        except (OSError, asyncio.TimeoutError):
            self.emu.core.connect_failed(sid)
            self.emu.wake()
            return
        if sid not in self.emu.core.sockets:
            writer.close()
            return
        self.emu.core.connected(sid)
        self._pump_tcp(sid, reader, writer, remote)

    def accept_waiting(self):
        """Hand queued host clients to module listeners. A client arriving while the
        port has no listener (a single-connection server busy with its client, the
        multi-connection listener between accept and relisten) waits here. Whether
        the real module queues or refuses them is an open question (reference 11);
        queueing follows NetX's listen backlog of 5."""
        core = self.emu.core
        for port, queue in self.waiting.items():
            while queue and core.listener_sid(port) >= 0:
                reader, writer = queue.pop(0)
                peer = writer.get_extra_info("peername")[:2]
                sid = core.accepted(peer, port)
                self._pump_tcp(sid, reader, writer, peer)

    def _pump_tcp(self, sid, reader, writer, peer):
        entry = ["tcp", writer]
        self.conns[sid] = entry
        emu = self.emu

        async def pump():
            while True:
                while emu.backlog() > OUT_HIGH_WATER and self.conns.get(sid) is entry:
                    await asyncio.sleep(0.005)  # the module's window is full: the peer waits
                try:
                    data = await reader.read(1460)
                except OSError:
                    data = b""
                if self.conns.get(sid) is not entry:
                    return  # closed by the module meanwhile
                if not data:
                    del self.conns[sid]
                    writer.close()
                    emu.core.peer_closed(sid)
                    emu.wake()
                    return
                emu.core.received(sid, data, peer)
                emu.wake()

        self._spawn(pump())

    def udp(self, sid, local_port, remote):
        entry = ["udp", None]
        self.conns[sid] = entry
        self._spawn(self._udp(sid, local_port, entry))

    async def _udp(self, sid, local_port, entry):
        net = self

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                if net.conns.get(sid) is entry:
                    net.emu.core.received(sid, data, addr[:2])
                    net.emu.wake()

        loop = asyncio.get_running_loop()
        local = ("127.0.0.1", self.host_port(local_port) if local_port else 0)
        try:
            transport, _ = await loop.create_datagram_endpoint(Protocol, local_addr=local)
        except OSError:
            if self.conns.get(sid) is entry:
                del self.conns[sid]
                self.emu.core.connect_failed(sid)
                self.emu.wake()
            return
        if self.conns.get(sid) is entry:
            entry[1] = transport
        else:
            transport.close()

    def send(self, sid, data, addr):
        entry = self.conns.get(sid)
        if entry is None or entry[1] is None:
            return
        try:
            if entry[0] == "tcp":
                entry[1].write(data)
            else:
                entry[1].sendto(data, ("127.0.0.1", addr[1]))
        except OSError:
            pass

    def close(self, sid):
        entry = self.conns.pop(sid, None)
        if entry is not None and entry[1] is not None:
            entry[1].close()

    def uart(self, baud, flow):
        """AT+USET changed the line: pace at the new rate (unless unpaced)."""
        if self.emu.baud:
            self.emu.baud = baud

    def close_all(self):
        for sid in list(self.conns):
            self.close(sid)
        self.unlisten(None)
        for task in list(self.tasks):
            task.cancel()


def _line_budget(sched, idle, now, rate):
    """``(sched, n)``: when one direction of the line is next free, and how many bytes
    it may pass now. An idle line is free once the last burst's bytes are on the wire,
    and a new burst may run ``BURST_S`` ahead; a busy one catches up at most ``SLACK_S``."""
    if idle:
        sched = max(sched, now)
        return sched, int((now + BURST_S - sched) * rate)
    sched = max(sched, now - SLACK_S)
    return sched, int((now - sched) * rate)


class Emulator:
    def __init__(self, config=None):
        self.config = config = config or Config()
        self.net = _Net(self)
        self.baud = config.baud
        self.core = Module(self.net, config.ap, config.seed, baud=config.baud)
        self.core.chaos.inject = config.inject
        self.core.chaos.ok_delay = config.ok_delay
        self.core.chaos.send_error = config.send_error
        self.rng = random.Random(config.seed)
        self.serial_path = None
        self.control_port = None
        self.tcp_serial_port = None
        self.stats = {"host_to_module": 0, "module_to_host": 0, "split_writes": 0}
        self._task = None
        self._servers = []
        self._log = None
        self._open_line = {">": b"", "<": b""}  # each direction's unfinished line, for _mask_key
        self._tcp = None  # the connected TCP-serial client's writer
        self._tcp_in = bytearray()
        self._wake = None
        self._t0 = time.monotonic()

    # --- life cycle ---------------------------------------------------------

    async def start(self):
        self._wake = asyncio.Event()
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
            server = await asyncio.start_server(self._on_control, "127.0.0.1", self.config.control)
            self._servers.append(server)
            self.control_port = server.sockets[0].getsockname()[1]
        if self.config.tcp_serial is not None:
            server = await asyncio.start_server(self._on_tcp_serial, "127.0.0.1", self.config.tcp_serial)
            self._servers.append(server)
            self.tcp_serial_port = server.sockets[0].getsockname()[1]
        self._task = asyncio.ensure_future(self._run())

    async def stop(self):
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        try:
            asyncio.get_running_loop().remove_reader(self.master)
        except (ValueError, OSError):
            pass
        for server in self._servers:
            server.close()
        if self._tcp is not None:
            self._tcp.close()
        self.net.close_all()
        os.close(self.master)
        os.close(self.slave)
        if self.config.link and os.path.islink(self.config.link):
            os.unlink(self.config.link)
        if self._log is not None:
            self._log.close()

    def wake(self):
        if self._wake is not None:
            self._wake.set()

    def backlog(self):
        return len(self.core.out) + sum(map(len, self.core.held))

    def _transcript(self, arrow, data):
        if self._log is not None:
            data = self._mask_key(arrow, bytes(data))
            self._log.write("%.6f %s %r\n" % (time.monotonic() - self._t0, arrow, data))
            self._log.flush()

    def _mask_key(self, arrow, data):
        """``data`` with the key of ``AT+WSEC=mode,security,key`` as one ``*`` a byte, as the
        firmware's transcript keeps it out: transcripts get attached to bug reports. Both
        ways: with echo on, the module prints the command back. The line so far is kept
        across reads, so a key split over two is masked in both."""
        seen = len(self._open_line[arrow])
        line = self._open_line[arrow] + data
        out = bytearray(line)
        start = 0
        while start < len(line):
            if line[start] == 10:  # the LF of the module's CR LF
                start += 1
                continue
            cr = line.find(b"\r", start)
            end = len(line) if cr < 0 else cr
            if line.startswith(b"AT+WSEC=", start):
                first = line.find(b",", start, end)
                comma = line.find(b",", first + 1, end) if first >= 0 else -1
                if comma >= 0:
                    out[comma + 1 : end] = b"*" * (end - comma - 1)
            if cr < 0:
                break
            start = cr + 1
        rest = line[start:]
        self._open_line[arrow] = rest if len(rest) <= 128 else b""  # a WSEC line is shorter; a payload need not be kept
        return bytes(out[seen:])

    # --- the UART -----------------------------------------------------------

    def _read_host(self, n):
        """Up to n bytes the host has written (TCP-serial first, then the pty)."""
        if self._tcp_in:
            data = bytes(self._tcp_in[:n])
            del self._tcp_in[:n]
            if self._tcp is not None and len(self._tcp_in) < 4096:
                self._tcp.transport.resume_reading()
            return data
        try:
            return os.read(self.master, n)
        except (BlockingIOError, OSError):
            return b""

    def _host_unread(self):
        """Bytes written to the pty that the host has not read yet (those the tty has
        passed on to its reader; a write takes a moment to show)."""
        return struct.unpack("i", fcntl.ioctl(self.slave, termios.FIONREAD, b"\0\0\0\0"))[0]

    def _write_host(self, data):
        """Write to the serial side: the TCP-serial client if one is connected, else the pty."""
        if self._tcp is not None:
            self._tcp.write(data)
            return len(data)
        try:
            return os.write(self.master, data)
        except (BlockingIOError, OSError):
            return 0

    async def _run(self):
        core = self.core
        loop = asyncio.get_running_loop()
        sched_in = sched_out = time.monotonic()  # when the line is next free, each way
        in_idle = out_idle = True  # nothing in flight that way: a new burst may start at once
        last_activity = time.monotonic()
        while True:
            now = time.monotonic()
            try:
                core.tick(now - self._t0)
            except Exception:  # a bug in the model must not stop the UART
                traceback.print_exc()
            self.net.accept_waiting()
            rate = self.baud / 10  # bytes per second
            moved = False
            # Host -> module.
            if rate:
                sched_in, n = _line_budget(sched_in, in_idle, now, rate)
            else:
                n = 65536
            if self.config.flow:
                n = min(n, core.rx_room())  # RTS: the module takes no more than its ring holds
            if n > 0:
                data = self._read_host(n)
                if data:
                    moved = True
                    if rate:
                        sched_in += len(data) / rate
                    self.stats["host_to_module"] += len(data)
                    self._transcript(">", data)
                    core.feed(data)
                in_idle = len(data) < n  # no credit for the silence: see _line_budget

            # Module -> host.
            out = core.out
            if out:
                if rate:
                    sched_out, n = _line_budget(sched_out, out_idle, now, rate)
                    n = min(n, len(out))
                else:
                    n = len(out)
                if self.config.flow and self._tcp is None:
                    n = min(n, HOST_RX - self._host_unread())  # the host's RTS
                if self.config.split and n > 1:
                    n = self.rng.randint(1, min(n, 64))
                    self.stats["split_writes"] += 1
                if n > 0:
                    written = self._write_host(bytes(out[:n]))
                    if written:
                        moved = True
                        self._transcript("<", out[:written])
                        del out[:written]
                        if rate:
                            sched_out += written / rate
                        self.stats["module_to_host"] += written
                out_idle = False
            else:
                out_idle = True
            if moved:
                last_activity = now
            if out or moved or now - last_activity < IDLE_AFTER_S:
                await self._next_pass(TICK_S if rate or not moved else 0, in_idle)
                continue
            # Idle: sleep until the host writes, the network delivers, or a timer is due.
            due = core.next_timer()
            await self._wait_wake(0.05 if due is None else max(0.0, min(0.05, due - (now - self._t0))))
            last_activity = sched_in = sched_out = time.monotonic()  # the line was idle meanwhile
            in_idle = out_idle = True

    async def _next_pass(self, seconds, listen):
        """Wait for the next pacing pass. While the host's line is idle (``listen``)
        a write from the host ends the wait at once, so its bytes start on the wire
        when they are written instead of on the next pass."""
        if not seconds or not listen or self._tcp is not None:
            await asyncio.sleep(seconds)
            return
        await self._wait_wake(seconds)

    async def _wait_wake(self, seconds):
        """Sleep up to ``seconds``; a host write or ``wake()`` ends it early.

        A timer sets the event rather than ``asyncio.wait_for``: on Python 3.11
        wait_for can swallow a cancellation that lands as the event is set, and
        this runs a thousand times a second, so ``stop()`` sometimes waited for
        a task that never ended.
        """
        loop = asyncio.get_running_loop()
        self._wake.clear()
        timer = loop.call_later(seconds, self._wake.set)
        loop.add_reader(self.master, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            timer.cancel()
            loop.remove_reader(self.master)

    # --- TCP serial ---------------------------------------------------------

    async def _on_tcp_serial(self, reader, writer):
        if self._tcp is not None:
            self._tcp.close()  # one serial client at a time: the newest wins
        self._tcp = writer
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                self._tcp_in += data
                if len(self._tcp_in) >= 4096:
                    writer.transport.pause_reading()
                self.wake()
        except OSError:
            pass
        finally:
            if self._tcp is writer:
                self._tcp = None
            writer.close()

    # --- control ------------------------------------------------------------

    async def _on_control(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    reply = self.control(json.loads(line))
                except (ValueError, KeyError, TypeError) as e:
                    reply = {"ok": False, "error": repr(e)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def control(self, request):
        """One control operation: reset, link_down, chaos, stats."""
        op = request["op"]
        core = self.core
        if op == "reset" and request.get("cut", True):
            core.reset_from_outside()
        elif op == "reset":  # "cut": false lets out what the module had queued first
            core.reset()
        elif op == "link_down":
            core.link_down()
            after = request.get("rejoin_after")
            if after is not None:
                core.ap_present = False  # the network is gone until then

                def back():
                    core.ap_present = True
                    if request.get("auto_rejoin"):
                        core.rejoin()

                core.later(float(after), back)
        elif op == "chaos":
            chaos = core.chaos
            for key, attr in (("inject", "inject"), ("chaos_inject", "inject"), ("ok_delay", "ok_delay"),
                              ("chaos_ok_delay", "ok_delay"), ("send_error", "send_error"),
                              ("chaos_send_error", "send_error")):  # fmt: skip
                if key in request:
                    setattr(chaos, attr, type(getattr(chaos, attr))(request[key]))
            for key in ("split", "chaos_split"):
                if key in request:
                    self.config.split = bool(request[key])
            if "seed" in request:
                core.rng.seed(request["seed"])
                self.rng.seed(request["seed"])
        elif op != "stats":
            raise KeyError(op)
        self.wake()
        return {"ok": True, "stats": self.all_stats()}

    def all_stats(self):
        stats = dict(self.core.stats, **self.stats)
        stats["bytes_host_to_module"] = self.stats["host_to_module"]
        stats["bytes_module_to_host"] = self.stats["module_to_host"]
        stats["sockets_open"] = len(self.core.sockets)
        stats["baud"] = self.baud
        return stats

"""The WizFi250 module as a sans-IO state machine (protocol reference section 10).

Bytes from the host go in through ``feed``; bytes for the host collect in
``out`` (the caller paces them onto the UART). The network side is a
``net`` object the caller supplies: the core asks it to listen, connect,
send and close, and the caller reports back through ``accepted``,
``connected``, ``connect_failed``, ``received`` and ``peer_closed``.
Time comes in through ``tick(now)``, so tests drive it without sleeping.
"""

import random

BANNER = b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)"
MAX_FRAME = 1460
RELISTEN_S = 1.1  # the multi-connection housekeeping period (reference 5.3)
CONNECT_OK_DELAY_S = 0.1  # SCON sleeps 100 ms before its [OK] (reference 5.2)

OK = b"[OK]"
ERROR = b"[ERROR]"
INVALID = b"[ERROR: INVALID INPUT]"
INVALID_SCID = b"[ERROR: INVALID SCID]"
WIFI_STATUS = b"[ERROR: WiFi Status]"


class Sock:
    def __init__(self, kind, local_port, remote=("0.0.0.0", 0)):
        self.kind = kind  # b"TSN", b"TCN", b"USN", b"UCN"
        self.local_port = local_port
        self.remote = remote
        self.listening = kind == b"TSN"


class Chaos:
    def __init__(self):
        self.inject = False  # hold received frames and events, release them inside SSENDs
        self.ok_delay = 0.0  # seconds before an SSEND's final line
        self.send_error = 0.0  # probability of [TCP Send Error] as SSEND's final line


class Module:
    def __init__(self, net, ap=("WizFiAP", "12345678"), seed=None):
        self.net = net
        self.ap = ap  # the one network this world contains: (ssid, key)
        self.rng = random.Random(seed)
        self.chaos = Chaos()
        self.out = bytearray()
        self.now = 0.0
        self.stats = {"commands": 0, "ssend": 0, "rx_bytes": 0, "tx_bytes": 0, "resets": 0}
        self._boot()

    # --- state --------------------------------------------------------------

    def _boot(self):
        self.echo = True
        self.level = 2
        self.evtmsg = False
        self.multi = False  # AT+FSOCK=9,1
        self.line = bytearray()
        self.prev = b""
        self.busy_until = 0.0  # the command task is busy (SSEND, WJOIN) until then
        self.payload = None  # SSEND in progress: [sid, size, bytearray, deadline, addr]
        self.sockets = {}
        self.tsn_port = 0
        self.next_relisten = self.now + RELISTEN_S
        self.joined = False
        self.mode = 0
        self.ssid = "WizFiAP"
        self.key = "12345678"
        self.dhcp = True
        self.ip = ""
        self.held = []  # chaos: output held back for the next SSEND injection point
        self.timers = []
        self.print_line(BANNER, 2)

    def reset(self):
        """A module reset: every socket closes, then the banner (reference 6.4)."""
        self.stats["resets"] += 1
        for sid in list(self.sockets):
            self.net.close(sid)
        self._boot()

    def link_down(self):
        for sid in sorted(self.sockets):
            self._close(sid)
        if self.joined:
            self.joined = False
            self.ip = ""
            self.event(b"[Link-Down Event]", 1)

    # --- output -------------------------------------------------------------

    def print_line(self, text, level):
        if self.level >= level:
            self.out += text + b"\r\n"

    def event(self, text, level):
        data = b"\r\n" + text + b"\r\n"
        if self.level >= level:
            self._async_out(data)

    def _async_out(self, data):
        """Output from a socket thread. Under chaos injection it is held back
        and released inside the next SSEND (or after a short while)."""
        if self.chaos.inject and self.payload is None:
            self.held.append(data)
        else:
            self.out += data

    def release_held(self):
        for data in self.held:
            self.out += data
        self.held = []

    def frame(self, sid, data, peer):
        for i in range(0, len(data), MAX_FRAME):
            part = data[i : i + MAX_FRAME]
            head = b"{%x,%s,%d,%d}" % (sid, peer[0].encode(), peer[1], len(part))
            self._async_out(head + part + b"\r\n")

    # --- time ---------------------------------------------------------------

    def later(self, delay, fn):
        self.timers.append((self.now + delay, fn))

    def tick(self, now):
        self.now = now
        due = [t for t in self.timers if t[0] <= now]
        if due:
            self.timers = [t for t in self.timers if t[0] > now]
            for _, fn in sorted(due, key=lambda t: t[0]):
                fn()
        if self.payload is not None and now >= self.payload[3]:
            self._ssend_timeout()
        if self.multi and now >= self.next_relisten:
            self.next_relisten = now + RELISTEN_S
            if self.idle():
                self._relisten()
        if self.held and self.idle() and self.rng.random() < 0.2:
            self.release_held()  # held output still flows when no SSEND comes

    def idle(self):
        return self.payload is None and self.now >= self.busy_until

    def _relisten(self):
        if not self.tsn_port:
            return
        for s in self.sockets.values():
            if s.listening and s.local_port == self.tsn_port:
                return
        sid = self._free_id()
        if sid >= 0:
            self._listen(sid, self.tsn_port)

    # --- host input ---------------------------------------------------------

    def feed(self, data):
        self.stats["rx_bytes"] += len(data)
        i = 0
        while i < len(data):
            if self.payload is not None:
                p = self.payload
                take = min(p[1] - len(p[2]), len(data) - i)
                p[2] += data[i : i + take]
                i += take
                if len(p[2]) == p[1]:
                    self._ssend_done()
                continue
            c = data[i]
            i += 1
            if c == 13:
                if self.echo:
                    self.out += b"\r\n"
                line = bytes(self.line)
                self.line = bytearray()
                if line:
                    self._execute(line)
            elif c == 10:
                continue
            elif c == 8:
                if self.echo:
                    self.out.append(c)
                if self.line:
                    self.line.pop()
            else:
                if self.echo:
                    self.out.append(c)
                if len(self.line) < 255:
                    self.line.append(c)

    def _execute(self, line):
        self.stats["commands"] += 1
        if line[:2].upper() == b"A/":
            line = self.prev
        self.prev = line
        if line[:2].upper() != b"AT":
            return self.print_line(INVALID, 2)
        rest = line[2:]
        if not rest:
            return self.print_line(OK, 2)
        upper = rest.upper()
        for name, handler in COMMANDS:
            if upper.startswith(name):
                return handler(self, rest[len(name) :].decode("latin-1"))
        self.print_line(INVALID, 2)

    def ok(self):
        self.print_line(OK, 2)

    def invalid(self):
        self.print_line(INVALID, 2)

    # --- system commands ----------------------------------------------------

    def cmd_mecho(self, arg):
        if arg == "?":
            self.print_line(b"1" if self.echo else b"0", 1)
        elif arg in ("0", "1"):
            self.echo = arg == "1"
        else:
            return self.invalid()
        self.ok()

    def cmd_mmsg(self, arg):
        if arg == "?":
            self.print_line(b"%d" % self.level, 1)
        elif arg in ("1", "2", "3"):
            self.level = int(arg)
        else:
            return self.invalid()
        self.ok()

    def cmd_mevtmsg(self, arg):
        if arg == "?":
            self.print_line(b"1" if self.evtmsg else b"0", 1)
        elif arg in ("0", "1"):
            self.evtmsg = arg == "1"
        else:
            return self.invalid()
        self.ok()

    def cmd_minfo(self, arg):
        self.print_line(b"FW version/HW version", 1)
        self.print_line(b"1.0.5.2/WizFi250 Rev 1.0", 1)
        self.ok()

    def cmd_mreset(self, arg):
        self.ok()
        self.later(0.5, self.reset)

    def cmd_mfdef(self, arg):
        if arg.upper() != "FR":
            return self.invalid()
        self.ok()
        self.later(0.5, self.reset)

    def cmd_mprof(self, arg):
        if arg.upper() not in ("S", "L", "VD", "VG"):
            return self.invalid()
        if arg.upper() in ("VD", "VG"):
            self.print_line(b"+WSET=%d,%s" % (self.mode, self.ssid.encode()), 1)
            self.print_line(b"+MECHO=%d" % self.echo, 1)
            self.print_line(b"+MMSG=%d" % self.level, 1)
        self.ok()

    def cmd_uset(self, arg):
        if arg == "?":
            self.print_line(b"115200,N,8,1,N", 1)
            return self.ok()
        if len(arg.split(",")) < 5:
            return self.invalid()
        self.ok()  # the line rate is the bridge's business: --baud

    # --- Wi-Fi --------------------------------------------------------------

    def cmd_wset(self, arg):
        if arg == "?":
            self.print_line(b"%d,%s,00:00:00:00:00:00,6" % (self.mode, self.ssid.encode()), 1)
            return self.ok()
        mode, _, rest = arg.partition(",")
        if mode not in ("0", "1") or not rest:
            return self.invalid()
        self.mode = int(mode)
        # The 1.0.5.2 quirk: in STA mode everything after the first comma is the SSID.
        self.ssid = rest if mode == "0" else rest.split(",")[0]
        self.ok()

    def cmd_wsec(self, arg):
        if arg == "?":
            self.print_line(b"%d,,%s" % (self.mode, self.key.encode()), 1)
            return self.ok()
        fields = arg.split(",", 2)
        if len(fields) < 3:
            return self.invalid()
        self.key = fields[2]
        self.ok()

    def cmd_wnet(self, arg):
        if arg == "?":
            self.print_line(b"%d,192.168.12.101,255.255.255.0,192.168.12.1" % self.dhcp, 1)
            return self.ok()
        fields = arg.split(",")
        if fields[0] in ("0", "1"):
            self.dhcp = fields[0] == "1"
        if len(fields) > 1 and fields[1]:
            self.static_ip = fields[1]
        self.ok()

    def cmd_wjoin(self, arg):
        if self.joined:
            text = b"Already Associated : Station Mode" if self.mode == 0 else b"Already Started : AP Mode"
            self.print_line(text, 1)
            return self.ok()
        self.busy_until = self.now + 0.3
        self.later(0.3, self._join_done)

    def _join_done(self):
        ssid = self.ssid.encode()
        if self.mode == 1:
            self._link_up(getattr(self, "static_ip", "192.168.12.1"), "192.168.12.1")
            return self.ok()
        if (self.ssid, self.key) != self.ap:
            for _ in range(3):
                self.print_line(b"Joining : " + ssid, 2)
                self.print_line(b"Failed to join: " + ssid, 2)
            return self.print_line(ERROR, 2)
        self.print_line(b"Joining : " + ssid, 2)
        self.print_line(b"Successfully joined : " + ssid, 2)
        self._link_up("127.0.0.1", "127.0.0.1")
        self.ok()

    def _link_up(self, ip, gateway):
        self.joined = True
        self.ip = ip
        self.out += b"\r\n[Link-Up Event]\r\n"
        self.print_line(b"  IP Addr    : " + ip.encode(), 2)
        self.print_line(b"  Gateway    : " + gateway.encode(), 2)

    def cmd_wleave(self, arg):
        self.link_down()
        self.ok()

    def cmd_wstat(self, arg):
        self.print_line(b"IF/SSID/IP-Addr/Gateway/MAC/TxPower(dBm)/RSSI(-dBm)", 1)
        if self.joined:
            kind = b"STA" if self.mode == 0 else b"AP"
            row = b"%s/%s/%s/%s/00:08:DC:11:22:33/31/45" % (kind, self.ssid.encode(), self.ip.encode(), b"127.0.0.1")
        else:
            row = b"Down////00:08:DC:11:22:33/31/0"
        self.print_line(row, 1)
        self.ok()

    def cmd_wscan(self, arg):
        self.print_line(b"Index/SSID/BSSID/RSSI(-dBm)/MaxDataRate(Mbps)/Security/RadioBand(GHz)/Channel", 1)
        self.print_line(b"001/%s/00:11:22:33:44:55/-45/72.2/Infra/WPA2-Mixed/2.4/6" % self.ap[0].encode(), 1)
        self.print_line(b"002/Neighbour/00:11:22:33:44:66/-80/54/Infra/Open/2.4/11", 1)
        self.ok()

    # --- sockets ------------------------------------------------------------

    def _free_id(self):
        for sid in range(8):
            if sid not in self.sockets:
                return sid
        return -1

    def _listen(self, sid, port):
        self.sockets[sid] = Sock(b"TSN", port)
        self.net.listen(sid, port)
        if self.evtmsg:
            self.event(b"[LISTEN %x]" % sid, 1)

    def cmd_scon(self, arg):
        if arg == "?":
            self.print_line(b"O,TSN,0.0.0.0,0,%d,0" % self.tsn_port, 1)
            return self.ok()
        fields = arg.split(",")
        if len(fields) < 5:
            return self.invalid()
        opened, kind = fields[0].upper(), fields[1].upper().encode()
        rip, rport, lport = fields[2], fields[3], fields[4]
        if kind not in (b"TSN", b"TCN", b"USN", b"UCN") or opened not in ("O", "S", "SO"):
            return self.invalid()
        if len(fields) > 5 and fields[5] == "1":
            return self.invalid()  # data mode: not modelled
        if opened == "S":
            return self.ok()
        if not self.joined:
            return self.print_line(WIFI_STATUS, 2)
        try:
            lport = int(lport or 0)
            rport = int(rport or 0)
        except ValueError:
            return self.invalid()
        if kind in (b"TCN", b"UCN") and (not rip or not 0 < rport < 65536):
            return self.invalid()
        if kind == b"TSN" and not 0 < lport < 65536:
            return self.invalid()
        sid = self._free_id()
        if sid < 0:
            return self.print_line(INVALID_SCID, 2)
        if kind == b"TSN":
            self.tsn_port = lport
            self._listen(sid, lport)
            return self.ok()
        remote = (_resolve(rip), rport) if rip else ("0.0.0.0", 0)
        self.sockets[sid] = Sock(kind, lport or 30000 + self.rng.randint(1, 10000), remote)
        if kind == b"TCN":
            self.net.connect(sid, remote)
            self.busy_until = self.now + CONNECT_OK_DELAY_S
            self.later(CONNECT_OK_DELAY_S, self.ok)
            return
        self.net.udp(sid, lport, remote if rip else None)
        self.event(b"[CONNECT %x]" % sid, 2)  # UDP: before the [OK] (reference 5.2)
        self.ok()

    def _close(self, sid):
        self.sockets.pop(sid, None)
        self.net.close(sid)
        self.event(b"[DISCONNECT %x]" % sid, 1)

    def cmd_smgmt(self, arg):
        if arg == "?":
            self.print_line(b"Number of Sockets : %d (SCID/Mode/Remote/Local/DataMode)" % len(self.sockets), 1)
            for sid in sorted(self.sockets):
                s = self.sockets[sid]
                self.print_line(b"%x/%s/%s:%d/%d/0" % (sid, s.kind, s.remote[0].encode(), s.remote[1], s.local_port), 1)
            return self.ok()
        if arg.upper() == "ALL":
            for sid in sorted(self.sockets):
                self._close(sid)
            return self.ok()
        if not arg.isdigit():
            return self.print_line(INVALID_SCID, 2)
        sid = int(arg)
        if sid not in self.sockets:
            return self.invalid()
        self.ok()
        self._close(sid)

    def cmd_ssend(self, arg):
        fields = arg.split(",")
        if len(fields) < 4 or not fields[0].isdigit() or not fields[3].isdigit():
            return self.invalid()
        sid, size = int(fields[0]), int(fields[3])
        s = self.sockets.get(sid)
        timeout = size + 10000
        if len(fields) > 4:
            if not fields[4].isdigit():
                return self.invalid()
            timeout = int(fields[4])
        if s is None or s.listening:
            return self.invalid()
        addr = s.remote
        if s.kind in (b"USN", b"UCN"):
            if fields[1] or fields[2]:
                addr = (_resolve(fields[1]) if fields[1] else s.remote[0], int(fields[2] or s.remote[1]))
                s.remote = addr  # a given destination sticks (reference 4.1)
            if not addr[1]:
                return self.invalid()
        self.stats["ssend"] += 1
        self.inject_point()
        prompt = b"[%d,,,%d" % (sid, size)
        if s.kind in (b"USN", b"UCN") and fields[1]:
            prompt = b"[%d,%s,%s,%d" % (sid, fields[1].encode(), (fields[2] or "0").encode(), size)
        if len(fields) > 4:
            prompt += b",%d" % timeout
        self.out += prompt  # the prompt is two prints: frames may land between
        self.inject_point()
        self.out += b"]\r\n"
        self.payload = [sid, size, bytearray(), self.now + timeout / 1000, addr]
        if size == 0:
            self._ssend_done()

    def inject_point(self):
        if self.chaos.inject and self.held:
            self.out += self.held.pop(0)

    def _ssend_done(self):
        sid, size, data, _, addr = self.payload
        self.payload = None
        s = self.sockets.get(sid)
        if s is None:
            return self._ssend_final(INVALID_SCID)
        self.stats["tx_bytes"] += size
        self.net.send(sid, bytes(data), addr)
        self.busy_until = self.now + self.chaos.ok_delay
        if self.chaos.send_error and self.rng.random() < self.chaos.send_error:
            final = b"\r\n[TCP Send Error]"
        else:
            final = OK
        if self.chaos.ok_delay:
            self.later(self.chaos.ok_delay, lambda: self._ssend_final(final))
        else:
            self._ssend_final(final)

    def _ssend_final(self, final):
        self.inject_point()
        self.print_line(final, 1 if final.endswith(b"Error]") else 2)

    def _ssend_timeout(self):
        data = self.payload[2]
        self.payload = None
        self.print_line(ERROR, 2)
        # Completed 1024-byte pieces were consumed; the bytes of an incomplete
        # one stay in the UART ring and become command text (reference 4.5).
        self.feed(bytes(data[len(data) - len(data) % 1024 :]))

    def cmd_fsock(self, arg):
        if arg == "?":
            self.print_line(b"5000,5000,5,100,0,0,0,0", 1)
            return self.ok()
        opt, _, value = arg.partition(",")
        if not opt.isdigit() or not value.isdigit() or not 1 <= int(opt) <= 9:
            return self.invalid()
        if opt == "9":
            self.multi = value == "1"
        self.ok()

    def cmd_fdns(self, arg):
        host, _, timeout = arg.partition(",")
        if not host or not timeout.isdigit():
            return self.invalid()
        self.print_line(_resolve(host).encode(), 1)
        self.ok()

    def cmd_fping(self, arg):
        count, _, ip = arg.partition(",")
        if not count.isdigit() or int(count) > 50 or not ip:
            return self.invalid()
        for _ in range(int(count)):
            self.print_line(b"Ping Reply :   1 ms", 1)
        self.ok()

    # --- network side -------------------------------------------------------

    def accepted(self, peer):
        """A client reached the listener (the bridge calls this only while one exists)."""
        for sid, s in sorted(self.sockets.items()):
            if s.listening and s.local_port == self.tsn_port:
                s.listening = False
                s.remote = peer
                self.event(b"[CONNECT %x]" % sid, 2)
                return sid
        return -1

    def listener_sid(self):
        for sid, s in self.sockets.items():
            if s.listening:
                return sid
        return -1

    def connected(self, sid):
        if sid in self.sockets:
            self.event(b"[CONNECT %x]" % sid, 2)

    def connect_failed(self, sid):
        if self.sockets.pop(sid, None) is not None:
            self.event(b"[DISCONNECT %x]" % sid, 1)  # no [CONNECT] before it (reference 5.2)

    def received(self, sid, data, peer):
        s = self.sockets.get(sid)
        if s is None:
            return
        if s.kind == b"USN":
            s.remote = peer  # the last sender becomes the destination
        self.frame(sid, data, peer)

    def peer_closed(self, sid):
        s = self.sockets.pop(sid, None)
        if s is None:
            return
        self.event(b"[DISCONNECT %x]" % sid, 1)
        if s.kind == b"TSN" and not self.multi:
            self._listen(sid, s.local_port)  # single-connection mode re-listens on the same id


def _resolve(host):
    """Every name in this world is the host itself."""
    parts = host.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return host
    return "127.0.0.1"


COMMANDS = (
    (b"+MECHO=", Module.cmd_mecho),
    (b"+MMSG=", Module.cmd_mmsg),
    (b"+MEVTMSG=", Module.cmd_mevtmsg),
    (b"+MINFO", Module.cmd_minfo),
    (b"+MRESET", Module.cmd_mreset),
    (b"+MFDEF=", Module.cmd_mfdef),
    (b"+MPROF=", Module.cmd_mprof),
    (b"+USET=", Module.cmd_uset),
    (b"+WSET=", Module.cmd_wset),
    (b"+WSEC=", Module.cmd_wsec),
    (b"+WNET=", Module.cmd_wnet),
    (b"+WJOIN", Module.cmd_wjoin),
    (b"+WLEAVE", Module.cmd_wleave),
    (b"+WSTAT", Module.cmd_wstat),
    (b"+WSCAN", Module.cmd_wscan),
    (b"+SCON=", Module.cmd_scon),
    (b"+SMGMT=", Module.cmd_smgmt),
    (b"+SSEND=", Module.cmd_ssend),
    (b"+FSOCK=", Module.cmd_fsock),
    (b"+FDNS=", Module.cmd_fdns),
    (b"+FPING=", Module.cmd_fping),
)

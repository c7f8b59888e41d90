"""The WizFi250 module as a sans-IO state machine (protocol reference section 10).

Bytes from the host go in through ``feed`` into the module's 2048-byte receive
ring; the command task consumes them whenever it is not busy (a join, the
100 ms sleeps of SCON/SMGMT, a reset...). Bytes for the host collect in
``out``; the caller paces them onto the UART. The network side is a ``net``
object the caller supplies: the core asks it to ``listen``, ``unlisten``,
``connect``, ``udp``, ``send``, ``close`` and ``uart``; the caller reports back
through ``accepted``, ``connected``, ``connect_failed``, ``received`` and
``peer_closed``. Time comes in only through ``tick(now)`` (seconds, any
origin), so tests drive the core byte for byte without sleeping.

Section numbers in comments refer to ../shared/docs/wizfi250-protocol.md.
"""

import random
import re

BANNER = b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)"
MAX_FRAME = 1460  # 3.2: frames of at most one MSS
RX_RING = 2048  # 1.2 / 6.5: the module's UART receive ring
LINE_MAX = 255  # 1.2: a 256-byte line buffer
SSEND_CHUNK = 1400  # 4.4: payload read in chunks of min(remaining, 1400) ...
SSEND_PIECE = 1024  # ... each taken in pieces of up to 1024 once complete in the ring
RELISTEN_S = 1.1  # 5.3: the housekeeping task's period
SCON_SLEEP_S = 0.1  # 5.2: SCON sleeps 100 ms before returning [OK]
CLOSE_SLEEP_S = 0.1  # 5.5 / 6.1: SMGMT=ALL and WLEAVE pause 100 ms per socket
RESET_S = 0.5  # 6.4: MRESET waits 500 ms before resetting
JOIN_TRY_S = 0.1  # one association attempt (real hardware: seconds; gap 11.2)
DHCP_S = 0.2  # DHCP lease (real: up to 15 s)
HOLD_S = 0.25  # chaos injection: longest time output is held back waiting for an SSEND or a scan
MAC = b"00:08:DC:11:22:33"

OK = b"[OK]"
ERROR = b"[ERROR]"
INVALID = b"[ERROR: INVALID INPUT]"
INVALID_SCID = b"[ERROR: INVALID SCID]"
WIFI_STATUS = b"[ERROR: WiFi Status]"
MODE_STATUS = b"[ERROR: Mode Status]"
TCP_SEND_ERROR = b"\r\n[TCP Send Error]"  # 1.5: can replace [OK] as SSEND's final line

SECTYPES = ("", "OPEN", "WEP", "WPA", "WPAAES", "WPA2AES", "WPA2TKIP", "WPA2")
SOCK_TYPES = (b"TSN", b"TCN", b"USN", b"UCN")

FACTORY = {  # 6.4: the factory profile
    "mode": 0,
    "ssid": "WizFiAP",
    "bssid": "00:00:00:00:00:00",
    "channel": 0,
    "sectype": "WPA2",
    "key": "12345678",
    "ap_ssid": "WizFiSoftAP",
    "ap_channel": 1,
    "ap_sectype": "WPA2",
    "ap_key": "12345678",
    "dhcp": 1,
    "ip": "192.168.12.101",
    "mask": "255.255.255.0",
    "gw": "192.168.12.1",
    "scon": "O,TSN,,0,5000,1",
    "level": 2,
    "echo": 1,
    "evtmsg": 0,
    "uset": "115200,N,8,1,N",
    "fsock": (5000, 5000, 5, 100, 0, 0, 0, 0, 0),
    "escape_ms": 1000,
    "country": "AU",
}

_SPECIAL = re.compile(rb"[\r\n\x08]")
_MAC = re.compile(r"[0-9A-Fa-f]{1,2}(:[0-9A-Fa-f]{1,2}){5}")  # F-PARSE WXParse_Mac, roughly


class Sock:
    def __init__(self, kind, local_port, remote=("0.0.0.0", 0), datamode=0):
        self.kind = kind  # b"TSN", b"TCN", b"USN", b"UCN"
        self.datamode = datamode
        self.local_port = local_port
        self.remote = remote  # (ip text, port)
        self.listening = kind == b"TSN"
        self.connected = kind != b"TCN"  # a TCP client is not until its handshake completes


class Chaos:
    def __init__(self):
        self.inject = False  # hold frames and events back, release them at each point of an SSEND or a scan
        self.ok_delay = 0.0  # seconds between an SSEND's payload and its final line
        self.send_error = 0.0  # probability of [TCP Send Error] as an SSEND's final line


class Module:
    def __init__(self, net, ap=("WizFiAP", "12345678"), seed=None, now=0.0, baud=115200):
        self.net = net
        self.ap = ap  # the one network this world contains: (ssid, key); key "" = open
        self.ap_present = True
        # Other networks a scan lists: (ssid, bssid, rssi, rate, security, channel), as printed.
        # An SSID is any 32 bytes, and the module prints it as it came (line ends and all).
        self.neighbours = [(b"Neighbour", b"00:11:22:33:44:66", b"-80", b"54", b"Open", b"11")]
        self.rng = random.Random(seed)
        self.chaos = Chaos()
        self.out = bytearray()
        self.rx = bytearray()  # the UART receive ring, at most RX_RING bytes
        self.now = now
        self.timers = []  # (due, seq, fn)
        self._seq = 0
        self.stats = {"commands": 0, "ssend": 0, "ssend_bytes": 0, "rx_bytes": 0, "rx_dropped": 0,
                      "resets": 0, "frames": 0, "frame_bytes": 0,
                      "injected": 0, "ok_delayed": 0, "send_errors": 0}  # fmt: skip
        # (the last three count what chaos did, so a test can show it happened)
        self.factory = dict(FACTORY, uset="%d,N,8,1,N" % (baud or 115200))
        self.saved = dict(self.factory)  # the flash profile
        self._boot()

    # --- state --------------------------------------------------------------

    def _boot(self):
        """Power-on: the RAM profile from flash, nothing open, the banner (2.4)."""
        self.prof = dict(self.saved)
        self.echo = bool(self.prof["echo"])
        self.level = self.prof["level"]
        self.line = bytearray()
        self.prev = b""
        self.busy_until = self.now  # the command task is busy until then
        self.payload = None  # an SSEND in progress (dict)
        self.dm_sid = None  # the data-mode socket (5.7), if any
        self.data_mode = False  # host bytes go to dm_sid, received data is raw
        self.dm_buf = bytearray()  # host bytes waiting to go out (up to 1460)
        self.dm_since = 0.0  # when the flush timer (FSOCK option 4) started
        self.plus = 0  # '+' characters held back: maybe the +++ escape
        self.plus_at = 0.0
        self.sockets = {}
        self.tsn_port = 0  # the last TCP server port (multi-connection relisten)
        self.next_relisten = self.now + RELISTEN_S
        self.joined = False
        self.link_mode = None  # "STA" or "AP" while joined
        self.ip = ""
        self.gw = ""
        self.next_client_port = 30000 + self.rng.randint(1, 10000)
        self.held = []  # chaos: output held back for the next injection points (an SSEND, a scan)
        self.held_since = 0.0
        self.timers = []
        self.rx.clear()
        self.print_line(BANNER, 2)
        if self.prof["scon"].split(",")[0].upper() in ("S", "SO"):
            self._join(reply=False)  # 2.4: a stored service socket makes the module join at boot

    @property
    def evtmsg(self):
        return bool(self.prof["evtmsg"])

    @property
    def fsock9(self):
        return self.prof["fsock"][8]

    @property
    def multi(self):
        return self.fsock9 != 0

    def reset(self):
        """A hardware-like reset: every socket closes silently, then the banner."""
        self.stats["resets"] += 1
        for sid in list(self.sockets):
            self.net.close(sid)
        self.net.unlisten(None)
        self.payload = None
        self._boot()

    def reset_from_outside(self):
        """The reset pin, a watchdog, a brown-out: unlike a reset the module asks for
        itself (AT+MRESET, whose [OK] is out long before), it stops the UART mid-stream.
        What had not gone out is lost: a frame on the wire is cut short, and the
        banner follows what did."""
        del self.out[:]
        self.reset()

    def factory_reset(self):
        self.saved = dict(self.factory)
        self.reset()

    def link_down(self):
        """The AP went away (or WLEAVE): [DISCONNECT n] for each socket, [Link-Down Event]."""
        for sid in sorted(self.sockets):
            self._close(sid, async_=True)
        self.net.unlisten(None)
        if self.joined:
            self.joined = False
            self.link_mode = None
            self.ip = self.gw = ""
            self.event(b"[Link-Down Event]", 1)

    # --- output -------------------------------------------------------------

    def print_line(self, text, level):
        """A print from the command task, gated by AT+MMSG (1.6)."""
        if self.level >= level:
            self.out += text + b"\r\n"

    def event(self, text, level, async_=True):
        """An event: a leading CRLF, the text, CRLF (2.1). Socket-thread events are 'async'."""
        if self.level >= level:
            data = b"\r\n" + text + b"\r\n"
            if async_:
                self._async_out(data)
            else:
                self.out += data

    def _async_out(self, data):
        """Output from a socket thread. Under chaos injection it is held back and
        released at the injection points of the next SSEND or scan (or after HOLD_S)."""
        if self.held or (self.chaos.inject and self.payload is None):
            if not self.held:
                self.held_since = self.now
            self.held.append(data)
        else:
            self.out += data

    def release_held(self):
        for data in self.held:
            self.out += data
        self.held = []

    def inject_point(self):
        if self.held:
            self.stats["injected"] += 1
            self.out += self.held.pop(0)

    def frame(self, sid, data, peer):
        """Received data: {sid,ip,port,len} + payload + CRLF, never gated (3.1)."""
        for i in range(0, len(data), MAX_FRAME):
            part = data[i : i + MAX_FRAME]
            head = b"{%x,%s,%d,%d}" % (sid, peer[0].encode(), peer[1], len(part))
            self.stats["frames"] += 1
            self.stats["frame_bytes"] += len(part)
            self._async_out(head + part + b"\r\n")

    # --- time ---------------------------------------------------------------

    def later(self, delay, fn):
        self._seq += 1
        self.timers.append((self.now + delay, self._seq, fn))

    def busy_for(self, delay):
        self.busy_until = max(self.busy_until, self.now + delay)

    def busy(self):
        return self.payload is None and self.now < self.busy_until

    def tick(self, now):
        """Advance the clock to ``now``: due timers fire at their own times, in order."""
        while self.timers:
            first = min(self.timers)
            if first[0] > now:
                break
            self.timers.remove(first)
            self.now = max(self.now, first[0])
            first[2]()
            self._process()
        self.now = max(self.now, now)
        if self.payload is not None and self.now >= self.payload["deadline"]:
            self._ssend_timeout()
        if self.multi and self.now >= self.next_relisten:
            self.next_relisten = self.now + RELISTEN_S
            if self.idle():
                self._relisten()
        if self.held and self.payload is None and self.now - self.held_since >= HOLD_S:
            self.release_held()  # held output still flows when no SSEND comes
        if self.data_mode:
            self._data_timers()
        self._process()

    def next_timer(self):
        """When the core next needs a tick (None: only on input)."""
        times = [t[0] for t in self.timers]
        if self.payload is not None:
            times.append(self.payload["deadline"])
        if self.multi:
            times.append(self.next_relisten)
        if self.held:
            times.append(self.held_since + HOLD_S)
        if self.rx and self.busy():
            times.append(self.busy_until)
        if self.data_mode and self.dm_buf:
            times.append(self.dm_since + self.prof["fsock"][3] / 1000)
        if self.data_mode and self.plus:
            times.append(self.plus_at + self.escape_s)
        return min(times) if times else None

    def idle(self):
        """The command task is idle: no command running, nothing waiting in the ring (5.3)."""
        return self.payload is None and not self.busy() and not self.rx

    def _relisten(self):
        """The housekeeping task re-creates the multi-connection listener (5.3 step 3).
        It runs every RELISTEN_S whatever happened, so the listener reappears 0-1.1 s
        after an accept (the firmware's periodic task; "about 1 s" in the issue).
        Clients that arrive meanwhile wait in the host backlog (5.3 step 5 is [I])."""
        if not self.tsn_port or not self.joined:
            return
        for s in self.sockets.values():
            if s.kind == b"TSN" and s.local_port == self.tsn_port and s.listening:
                return
        sid = self._free_id()
        if sid >= 0:
            self.prof["scon"] = "O,TSN,0.0.0.0,0,%d,0" % self.tsn_port  # the internal SCON's side effect
            self._listen(sid, self.tsn_port)

    # --- host input ---------------------------------------------------------

    def rx_room(self):
        return RX_RING - len(self.rx)

    def feed(self, data):
        """Bytes from the host's UART into the ring; what does not fit is lost (and
        counted). Returns the number of bytes the ring took."""
        self.stats["rx_bytes"] += len(data)
        taken = 0
        while taken < len(data):
            # A big write arrives over time on a real line: the command task reads
            # while the rest comes in, so the ring only overflows while it is busy.
            room = RX_RING - len(self.rx)
            if not room:
                break
            self.rx += data[taken : taken + room]
            taken += min(room, len(data) - taken)
            self._process()
        if taken < len(data):
            self.stats["rx_dropped"] += len(data) - taken
        return taken

    def _process(self):
        rx = self.rx
        while rx and not self.busy():
            if self.payload is not None:
                if not self._take_payload():
                    return
                continue
            if self.data_mode:
                self._data_in()
                continue
            m = _SPECIAL.search(rx)
            end = m.start() if m else len(rx)
            if end:  # a run of ordinary characters: echoed as they are, kept up to 255
                run = bytes(rx[:end])
                del rx[:end]
                if self.echo:
                    self.out += run
                room = LINE_MAX - len(self.line)
                if room > 0:
                    self.line += run[:room]
                continue
            c = rx[0]
            del rx[:1]
            if c == 13:
                if self.echo:
                    self.out += b"\r\n"
                line = bytes(self.line)
                self.line = bytearray()
                if line:
                    self._execute(line)
            elif c == 8:
                if self.echo:
                    self.out.append(8)
                if self.line:
                    self.line.pop()
            # LF (10): silently discarded, not echoed (1.2)

    def _execute(self, line):
        self.stats["commands"] += 1
        if line[:2].upper() == b"A/":  # re-executes the previous line
            line = self.prev
        self.prev = line
        if line[:2].upper() != b"AT":
            return self.invalid()
        rest = line[2:]
        if not rest:
            return self.ok()
        upper = rest.upper()
        for name, handler in COMMANDS:  # prefix match, table order, case-insensitive
            if upper.startswith(name):
                return handler(self, rest[len(name) :].decode("latin-1"))
        self.invalid()

    def ok(self):
        self.print_line(OK, 2)

    def error(self):
        self.print_line(ERROR, 2)

    def invalid(self):
        self.print_line(INVALID, 2)

    def _flag(self, key, arg):
        """The =<0|1> / =? commands backed by one profile entry."""
        if arg == "?":
            self.print_line(b"%d" % self.prof[key], 1)
        elif arg in ("0", "1"):
            self.prof[key] = int(arg)
        else:
            return self.invalid()
        self.ok()

    # --- system commands ----------------------------------------------------

    def cmd_mecho(self, arg):
        self._flag("echo", arg)
        self.echo = bool(self.prof["echo"])

    def cmd_mmsg(self, arg):
        if arg == "?":
            self.print_line(b"%d" % self.level, 1)
        elif arg in ("1", "2", "3"):
            self.level = self.prof["level"] = int(arg)
        else:
            return self.invalid()
        self.ok()

    def cmd_mevtmsg(self, arg):
        self._flag("evtmsg", arg)

    def cmd_minfo(self, arg):
        self.print_line(b"FW version/HW version", 1)
        self.print_line(b"1.0.5.2/WizFi250 Rev 1.0", 1)
        self.ok()

    def _shutdown_and_reset(self, then=None):
        """MRESET/MFDEF (6.4): [OK] is already out; close sockets, leave, 500 ms, reset."""
        for sid in sorted(self.sockets):
            self._close(sid, async_=False)
        if self.joined:
            self.joined = False
            self.event(b"[Link-Down Event]", 1, async_=False)
        self.busy_for(RESET_S)
        self.later(RESET_S, then or self.reset)

    def cmd_mreset(self, arg):
        self.ok()
        self._shutdown_and_reset()

    def cmd_mfdef(self, arg):
        if arg.upper() != "FR":
            return self.invalid()
        self.ok()
        self._shutdown_and_reset(self.factory_reset)

    def cmd_mprof(self, arg):
        what = arg.upper()
        if what == "S":
            self.saved = dict(self.prof)
        elif what == "L":
            self.prof = dict(self.saved)
            self.echo, self.level = bool(self.prof["echo"]), self.prof["level"]
        elif what in ("VD", "VG"):
            p = self.saved if what == "VD" else self.prof
            for line in (
                "+WSET=%d,%s,%s,%d" % (p["mode"], p["ssid"], p["bssid"], p["channel"]),
                "+WSEC=%d,%s,%s" % (p["mode"], p["sectype"], p["key"]),
                "+WNET=%d,%s,%s,%s" % (p["dhcp"], p["ip"], p["mask"], p["gw"]),
                "+WREG=%s" % p["country"],
                "+SCON=%s" % p["scon"],
                "+SFORM=111111111,7B,2C,7D,0D,0A",
                "+MMSG=%d" % p["level"],
                "+MMAC=%s" % MAC.decode(),
                "+USET=%s" % p["uset"],
                "+MECHO=%d" % p["echo"],
                "+FWEBS=0,M",
                "+FGPIO=0",
            ):
                self.print_line(line.encode("latin-1"), 1)
        else:
            return self.invalid()
        self.ok()

    def cmd_uset(self, arg):
        if arg == "?":
            self.print_line(self.prof["uset"].encode(), 1)
            return self.ok()
        f = arg.upper().split(",")
        if len(f) < 5 or not f[0].isdigit() or f[1] not in ("N", "E", "O") or f[2] not in ("7", "8"):
            return self.invalid()
        if f[2] == "7" and f[1] == "N" or f[3] not in ("0.5", "1", "1.5", "2") or f[4] not in ("N", "HW"):
            return self.invalid()
        # The baud rate is not validated by the firmware (6.4).
        self.prof["uset"] = self.saved["uset"] = ",".join(f[:5])  # USET saves at once
        self.ok()
        if len(f) > 5 and f[5] == "W":
            return  # saved only; takes effect at the next reset
        self.busy_for(SCON_SLEEP_S)
        self.later(SCON_SLEEP_S, self._uset_reset)

    def _uset_reset(self):
        baud, _, _, _, fc = self.saved["uset"].split(",")
        self.net.uart(int(baud), fc == "HW")  # the banner comes out at the new rate
        self.reset()

    # --- Wi-Fi --------------------------------------------------------------

    def cmd_wset(self, arg):
        p = self.prof
        if arg == "?":
            ssid = p["ssid"] if p["mode"] == 0 else p["ap_ssid"]
            ch = p["channel"] if p["mode"] == 0 else p["ap_channel"]
            self.print_line(("%d,%s,%s,%d" % (p["mode"], ssid, p["bssid"].lower(), ch)).encode("latin-1"), 1)
            return self.ok()
        mode, _, rest = arg.partition(",")
        if mode not in ("0", "1") or not rest:
            return self.invalid()
        if mode == "0":
            # The 1.0.4.8+ "binary SSID" quirk (6.1): in STA mode everything after the
            # first comma is the SSID, commas included.
            if len(rest) > 32:
                return self.invalid()
            changes = {"mode": 0, "ssid": rest}
        else:
            f = _fields(rest)  # in AP mode the SSID is a field: a comma in it needs quotes
            if f is None or not 0 < len(f[0]) <= 32:
                return self.invalid()
            if len(f) > 1 and f[1] and not _MAC.fullmatch(f[1]):  # a BSSID, if any, must be a MAC
                return self.invalid()
            ch = f[2] if len(f) > 2 and f[2] else "6"
            if not ch.isdigit():
                return self.invalid()
            changes = {"mode": 1, "ap_ssid": f[0], "ap_channel": int(ch)}
        p.update(changes)
        self.saved.update(changes)  # WSET writes flash at once
        self.ok()

    def cmd_wsec(self, arg):
        p = self.prof
        if arg == "?":
            sectype, key = (p["sectype"], p["key"]) if p["mode"] == 0 else (p["ap_sectype"], p["ap_key"])
            if sectype in ("OPEN", ""):
                key = "0"  # 6.1: open -> 0,OPEN,0 and auto -> 0,,0
            self.print_line(("%d,%s,%s" % (p["mode"], sectype, key)).encode("latin-1"), 1)
            return self.ok()
        f = arg.split(",", 2)  # since 1.0.4.9 the key is the rest of the line (6.1)
        if len(f) < 2 or f[0] not in ("0", "1") or f[1].upper() not in SECTYPES:
            return self.invalid()
        sectype, key = f[1].upper(), (f[2] if len(f) > 2 else "")
        if sectype != "OPEN" and not _valid_key(sectype, key):
            return self.invalid()
        if f[0] == "1":
            if sectype == "WEP":
                return self.invalid()  # no WEP in AP mode
            changes = {"ap_sectype": sectype, "ap_key": key}
        else:
            changes = {"sectype": sectype, "key": key}
        p.update(changes)
        self.saved.update(changes)
        self.ok()

    def cmd_wnet(self, arg):
        p = self.prof
        if arg == "?":
            self.print_line(("%d,%s,%s,%s" % (p["dhcp"], p["ip"], p["mask"], p["gw"])).encode(), 1)
            return self.ok()
        f = arg.split(",")
        if f[0] not in ("", "0", "1"):
            return self.invalid()
        for value in f[1:4]:
            if value and not _is_ip(value.strip()):
                return self.invalid()
        if f[0]:
            p["dhcp"] = int(f[0])
        for key, value in zip(("ip", "mask", "gw"), f[1:4]):
            if value:
                p[key] = value.strip()
        self.ok()

    def _network_ok(self):
        """Whether the configured STA credentials can join the AP of this world."""
        p = self.prof
        ssid, key = self.ap
        if not self.ap_present or p["ssid"] != ssid:
            return False
        if not key:
            return p["sectype"] in ("", "OPEN")
        return p["sectype"] not in ("OPEN", "WEP") and p["key"] == key

    def cmd_wjoin(self, arg):
        if self.joined:
            text = b"Already Associated : Station Mode" if self.link_mode == "STA" else b"Already Started : AP Mode"
            self.print_line(text, 1)
            return self.ok()
        self._join(reply=True)

    def _join(self, reply):
        """Join (or start the soft-AP). ``reply``: a command issued it, so [OK]/[ERROR] end it;
        the boot-time auto-join of a stored service socket prints neither (2.4)."""
        p = self.prof
        if p["mode"] == 1:  # soft-AP: no Joining line in 1.0.5.2 (6.3)
            self.busy_for(DHCP_S)
            self.later(DHCP_S, lambda: (self._link_up("AP", p["ip"], p["ip"]), reply and self.ok(),
                                        self._open_service()))  # fmt: skip
            return
        ssid = p["ssid"].encode("latin-1")
        good = self._network_ok()
        attempts = 1 if good else (6 if p["sectype"] == "WEP" else 3)  # WEP: two per round
        t = 0.0
        for i in range(attempts):
            self.later(t, lambda: self.print_line(b"Joining : " + ssid, 2))
            t += JOIN_TRY_S
            if good:
                self.later(t, lambda: self.print_line(b"Successfully joined : " + ssid, 2))
            else:
                self.later(t, lambda: self.print_line(b"Failed to join: " + ssid, 2))
        if good:
            t += DHCP_S
            ip, gw = ("127.0.0.1", "127.0.0.1") if p["dhcp"] else (p["ip"], p["gw"])
            self.later(t, lambda: (self._link_up("STA", ip, gw), reply and self.ok(), self._open_service()))
        elif reply:
            self.later(t, self.error)
        self.busy_for(t)

    def _link_up(self, mode, ip, gateway):
        self.joined = True
        self.link_mode = mode
        self.ip, self.gw = ip, gateway
        self.event(b"[Link-Up Event]", 1, async_=False)  # precedes [OK] (6.1)
        self.print_line(b"  IP Addr    : " + ip.encode(), 2)
        self.print_line(b"  Gateway    : " + gateway.encode(), 2)

    def rejoin(self):
        """The Wi-Fi stack re-associated by itself (6.1, [I]): a new link-up block, no [OK]."""
        if self.joined or not self._network_ok():
            return
        ssid = self.prof["ssid"].encode("latin-1")
        self.joined, self.link_mode, self.ip, self.gw = True, "STA", "127.0.0.1", "127.0.0.1"
        block = b""
        if self.level >= 2:
            block += b"Joining : %s\r\nSuccessfully joined : %s\r\n" % (ssid, ssid)
        if self.level >= 1:
            block += b"\r\n[Link-Up Event]\r\n"
        if self.level >= 2:
            block += b"  IP Addr    : 127.0.0.1\r\n  Gateway    : 127.0.0.1\r\n"
        self._async_out(block)
        self._open_service()

    def cmd_wleave(self, arg):
        sids = sorted(self.sockets)
        if not self.joined and not sids:
            return self.ok()
        t = 0.0
        for sid in sids:
            self.later(t, lambda sid=sid: self._close(sid, async_=False))
            t += CLOSE_SLEEP_S
        self.later(t, lambda: (self.link_down(), self.ok()))
        self.busy_for(t)

    def cmd_wstat(self, arg):
        self.print_line(b"IF/SSID/IP-Addr/Gateway/MAC/TxPower(dBm)/RSSI(-dBm)", 1)
        if self.joined:
            ssid = self.prof["ssid"] if self.link_mode == "STA" else self.prof["ap_ssid"]
            row = b"%s/%s/%s/%s/%s/31/45" % (
                self.link_mode.encode(), ssid.encode("latin-1"), self.ip.encode(), self.gw.encode(), MAC)
        else:
            row = b"Down////%s/31/0" % MAC
        self.print_line(row, 1)
        self.ok()

    def cmd_wscan(self, arg):
        want = arg[1:].split(",")[0] if arg.startswith("=") else ""  # AT+WSCAN=<ssid>,...
        rows = []
        if self.ap_present:
            sec = b"WPA2-Mixed" if self.ap[1] else b"Open"
            rows.append((self.ap[0].encode("latin-1"), b"00:11:22:33:44:55", b"-45", b"72.2", sec, b"6"))
        rows += self.neighbours
        self.print_line(b"Index/SSID/BSSID/RSSI(-dBm)/MaxDataRate(Mbps)/Security/RadioBand(GHz)/Channel", 1)
        n = 0
        for ssid, bssid, rssi, rate, sec, ch in rows:
            if want and ssid != want.encode("latin-1"):
                continue
            n += 1
            if self.level < 1:
                continue
            # 4.7: the SSID goes out a byte per print, so a socket thread's frame or event
            # can land between its bytes (chaos injects held output there).
            self.out += b"%03d/" % n
            for i in range(len(ssid)):
                self.inject_point()
                self.out += ssid[i : i + 1]
            # 6.2: WizFi250 rows carry an extra network-type field (Infra) the header lacks.
            self.out += b"/%s/%s/%s/Infra/%s/2.4/%s\r\n" % (bssid, rssi, rate, sec, ch)
        self.busy_for(0.05)
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
            self.event(b"[LISTEN %x]" % sid, 1)  # 2.1: only with AT+MEVTMSG=1

    def cmd_scon(self, arg):
        if arg == "?":
            self.print_line(self.prof["scon"].encode("latin-1"), 1)
            return self.ok()
        f = [x.strip() for x in arg.split(",")]
        f += [""] * (6 - len(f))
        opened, kind = f[0].upper(), f[1].upper().encode()
        rip, rport, lport, dm = f[2], f[3] or "0", f[4] or "0", f[5] or "0"
        if opened not in ("O", "S", "SO") or not rport.isdigit() or not lport.isdigit() or dm not in ("0", "1"):
            return self.invalid()
        if kind in (b"USS", b"UCS"):
            kind = kind[:2] + b"N"  # accepted, treated as plain UDP (5.1)
        if kind not in SOCK_TYPES:
            # TSS/TCS (SSL) are real but not modelled here.
            return self.invalid()
        rport, lport = int(rport), int(lport)
        if rip and not _is_ip(rip):
            return self.invalid()
        if kind in (b"TCN", b"UCN") and (not rip or not 0 < rport < 65536):
            return self.invalid()
        if kind == b"TSN" and not 0 < lport < 65536:
            return self.invalid()
        if kind == b"USN" and (bool(rip) != (rport > 0)):
            return self.invalid()  # both or neither
        if self.dm_sid is not None:
            return self.print_line(MODE_STATUS, 2)  # a data-mode socket exists (5.1)
        if dm == "1" and self.sockets:
            return self.invalid()  # data mode only for the only socket (5.1)
        self.prof["scon"] = "%s,%s,%s,%d,%d,%s" % (opened, kind.decode(), rip or "0.0.0.0", rport, lport, dm)
        if opened == "S":
            return self.ok()  # a service socket, stored only
        if not self.joined:
            return self.print_line(WIFI_STATUS, 2)
        self._open(kind, rip, rport, lport, dm, reply=True)

    def _open(self, kind, rip, rport, lport, dm, reply):
        """Open a socket: SCON's O/SO, or a service socket after link-up (no replies)."""
        say = self.print_line if reply else (lambda text, level: None)
        if kind == b"USN" and rip:
            for s in self.sockets.values():
                if s.kind == b"USN" and s.remote == (rip, rport):
                    return say(INVALID, 2)
        sid = self._free_id()
        if sid < 0:
            return say(INVALID_SCID, 2)
        if kind == b"TSN":
            self.tsn_port = lport
            self._listen(sid, lport)
            self._set_dm(sid, dm)
            # [OK] at once (the real handler sleeps 100 ms first; nothing observable changes).
            return say(OK, 2)
        if kind == b"TCN":
            if not lport:
                lport = self.next_client_port
                self.next_client_port += 1
            self.sockets[sid] = Sock(kind, lport, (rip, rport))
            self._set_dm(sid, dm)
            self.net.connect(sid, (rip, rport))
            # The handler sleeps 100 ms before [OK]; the connect completes meanwhile,
            # so [CONNECT n] (or [DISCONNECT n]) usually comes first (5.2).
            if reply:
                self.busy_for(SCON_SLEEP_S)
                self.later(SCON_SLEEP_S, self.ok)
            return
        remote = (rip, rport) if rip else ("0.0.0.0", 0)
        self.sockets[sid] = Sock(kind, lport, remote)
        self._set_dm(sid, dm)
        self.net.udp(sid, lport, remote if rip else None)
        self._enter_data_mode(sid)
        # UDP: [CONNECT n] before the [OK] (5.2; the order is the doc's [I] best guess,
        # and what it asks emulators to do).
        self.event(b"[CONNECT %x]" % sid, 2, async_=not reply)
        say(OK, 2)

    def _open_service(self):
        """After link-up, a stored service socket (SCON S/SO) opens by itself (2.4, 6.1)."""
        f = self.prof["scon"].split(",")
        if len(f) < 6 or f[0].upper() not in ("S", "SO") or self.sockets:
            return
        kind = f[1].upper().encode()
        if kind not in SOCK_TYPES:
            return
        rip = "" if f[2] in ("", "0.0.0.0") else f[2]
        self._open(kind, rip, int(f[3] or 0), int(f[4] or 0), f[5], reply=False)

    def _close(self, sid, async_=True):
        s = self.sockets.pop(sid, None)
        if s is None:
            return
        if sid == self.dm_sid:
            self._leave_data_mode(keep=False)
        self.net.close(sid)
        if s.kind == b"TSN" and not (self.multi and s.local_port == self.tsn_port):
            if not any(o.kind == b"TSN" and o.local_port == s.local_port for o in self.sockets.values()):
                self.net.unlisten(s.local_port)
        self.event(b"[DISCONNECT %x]" % sid, 1, async_)

    def cmd_smgmt(self, arg):
        if arg == "?":
            n = len(self.sockets)
            self.print_line(b"Number of Sockets : %d (SCID/Mode/Remote/Local/DataMode)" % n, 1)
            for sid in sorted(self.sockets):
                s = self.sockets[sid]
                row = b"%x/%s/%s:%d/%d/%d" % (
                    sid, s.kind, s.remote[0].encode(), s.remote[1], s.local_port, s.datamode)
                self.print_line(row, 1)
            return self.ok()
        if arg.upper() == "ALL":
            # 100 ms after each close (1.1 s more with FSOCK option 9), then [OK] (5.3, 5.5).
            pause = CLOSE_SLEEP_S + (RELISTEN_S if self.multi else 0)
            t = 0.0
            for sid in sorted(self.sockets):
                self.later(t, lambda sid=sid: self._close(sid, async_=False))
                t += pause
            self.later(t, self.ok)
            self.busy_for(t)
            return
        if not arg.strip().isdigit():
            return self.print_line(INVALID_SCID, 2)
        sid = int(arg)
        if sid not in self.sockets:
            return self.invalid()
        # Either order is possible for a single close (5.5, [I]); this one is [OK] first.
        self.ok()
        self._close(sid)

    def cmd_ssend(self, arg):
        f = arg.split(",")
        if len(f) < 4 or not f[0].strip().isdigit() or not f[3].strip().isdigit():
            return self.invalid()
        sid, size = int(f[0]), int(f[3])
        timeout = size + 10000  # 4.1: the default deadline, len + 10 s
        if len(f) > 4 and f[4]:
            if not f[4].strip().isdigit():
                return self.invalid()
            timeout = int(f[4])
        s = self.sockets.get(sid)
        if s is None or s.listening or not s.connected:
            return self.invalid()  # a bad or closed id is INVALID INPUT, not INVALID SCID (4.3)
        ip, port = f[1].strip(), f[2].strip()
        udp = s.kind in (b"USN", b"UCN")
        if udp:
            if ip and not _is_ip(ip) or port and not port.isdigit():
                return self.invalid()
            if ip or int(port or 0):
                # A given destination overwrites the stored one for good (4.1).
                s.remote = (ip or s.remote[0], int(port or 0) or s.remote[1])
            if not s.remote[1]:
                return self.invalid()  # a UDP server that has heard nobody yet
        self.stats["ssend"] += 1
        self.inject_point()  # chaos: after the echo
        if udp and ip:
            prompt = b"[%x,%s,%s,%d" % (sid, ip.encode(), (port or "0").encode(), size)
        else:
            prompt = b"[%x,,,%d" % (sid, size)
        if len(f) > 4 and f[4]:
            prompt += b",%d" % timeout
        if self.level >= 1:
            self.out += prompt  # the prompt is two prints: frames may land between (4.7)
            self.inject_point()
            self.out += b"]\r\n"
        else:
            self.inject_point()
        self.payload = {"sid": sid, "size": size, "sent": 0, "chunk": bytearray(),
                        "chunk_size": min(size, SSEND_CHUNK), "deadline": self.now + timeout / 1000,
                        "addr": s.remote, "sock": s, "status": OK}  # fmt: skip
        if size == 0:
            self._ssend_done()  # 0 is accepted: the prompt, then [OK], nothing sent (4.1)

    def _take_payload(self):
        """Consume payload pieces that are complete in the ring. Returns False when it
        has to wait for more bytes."""
        p = self.payload
        need = p["chunk_size"] - len(p["chunk"])
        piece = min(need, SSEND_PIECE)
        if len(self.rx) < piece:
            return False
        p["chunk"] += self.rx[:piece]
        del self.rx[:piece]
        if len(p["chunk"]) == p["chunk_size"]:
            self._send_chunk(bytes(p["chunk"]))
            p["sent"] += p["chunk_size"]
            p["chunk"] = bytearray()
            p["chunk_size"] = min(p["size"] - p["sent"], SSEND_CHUNK)
            if p["sent"] >= p["size"]:
                self._ssend_done()
        return True

    def _send_chunk(self, data):
        p = self.payload
        if self.sockets.get(p["sid"]) is not p["sock"]:
            p["status"] = INVALID_SCID  # the socket vanished mid-transfer (4.6)
            return
        self.stats["ssend_bytes"] += len(data)
        self.net.send(p["sid"], data, p["sock"].remote)

    def _ssend_done(self):
        p = self.payload
        self.payload = None
        final = p["status"]
        if final == OK and self.chaos.send_error and self.rng.random() < self.chaos.send_error:
            final = TCP_SEND_ERROR
            self.stats["send_errors"] += 1
        if self.chaos.ok_delay:
            self.stats["ok_delayed"] += 1
            self.busy_for(self.chaos.ok_delay)
            self.later(self.chaos.ok_delay, lambda: self._ssend_final(final))
        else:
            self._ssend_final(final)

    def _ssend_final(self, final):
        self.inject_point()  # chaos: between the payload and [OK]
        self.print_line(final, 1 if final == TCP_SEND_ERROR else 2)

    def _ssend_timeout(self):
        """Deadline passed (4.5): [ERROR]. Completed pieces of the failing chunk are
        discarded; the bytes of an incomplete piece stay in the ring and, like
        everything after them, are parsed as command text. (The doc tags the
        leftover handling [I], inferred from F-PLAT; this follows its reading.)"""
        self.payload = None
        self.error()
        self._process()

    def cmd_fsock(self, arg):
        opts = list(self.prof["fsock"])
        if arg == "?":
            self.print_line(",".join(str(v) for v in opts[:8]).encode(), 1)  # option 9 not shown
            return self.ok()
        opt, _, value = arg.partition(",")
        if not opt.strip().isdigit() or not value.strip().isdigit():
            return self.invalid()
        opt, value = int(opt), int(value)
        ranges = {1: (2000, 20000), 2: (2000, 20000), 4: (10, 1 << 31), 5: (5, 3600), 6: (10, 1000),
                  7: (5, 1000), 8: (5, 1000)}  # fmt: skip
        if not 1 <= opt <= 9:
            return self.invalid()
        if opt in ranges and value != 0 and not ranges[opt][0] <= value <= ranges[opt][1]:
            return self.invalid()
        if opt == 4 and value == 0:
            return self.invalid()
        opts[opt - 1] = value
        self.prof["fsock"] = tuple(opts)
        self.ok()

    def cmd_fdns(self, arg):
        host, _, timeout = arg.partition(",")
        if not host or not timeout.strip().isdigit():
            return self.invalid()
        if not self.joined:
            return self.error()
        self.busy_for(0.01)
        self.print_line(_resolve(host).encode(), 1)
        self.ok()

    def cmd_fping(self, arg):
        count, _, ip = arg.partition(",")
        if not count.isdigit() or not 0 < int(count) <= 50 or not _is_ip(ip.strip()):
            return self.invalid()
        t = 0.0
        for _ in range(int(count)):
            t += 0.005
            line = b"Ping Reply :   1 ms" if self.joined else b"Ping error"
            self.later(t, lambda line=line: self.print_line(line, 1))
        self.later(t, self.ok)
        self.busy_for(t)

    # --- data mode (5.7) ----------------------------------------------------

    @property
    def escape_s(self):
        return self.prof.get("escape_ms", 1000) / 1000

    def _set_dm(self, sid, dm):
        if dm == "1":
            self.dm_sid = sid
            self.sockets[sid].datamode = 1

    def _enter_data_mode(self, sid):
        """The switch happens just before [CONNECT n] is printed (5.7)."""
        if sid == self.dm_sid:
            self.data_mode = True
            self.dm_buf.clear()
            self.plus = 0

    def _leave_data_mode(self, keep):
        self.data_mode = False
        self.dm_buf.clear()
        self.plus = 0
        if not keep:
            self.dm_sid = None

    def _data_in(self):
        """Host bytes in data mode: buffered, flushed at 1460 or by the timer; a
        '+++' followed by the escape time of silence returns to command mode."""
        data = bytes(self.rx)
        self.rx.clear()
        if not self.plus and b"+" not in data:
            self._dm_add(data)
            return
        for c in data:
            if c == 0x2B:  # '+'
                if self.plus == 3:
                    self._dm_add(b"+")  # only the last three can be the escape
                else:
                    self.plus += 1
                self.plus_at = self.now  # the timer restarts at each '+'
            else:
                if self.plus:
                    self._dm_add(b"+" * self.plus)  # another byte came: they were data
                    self.plus = 0
                self._dm_add(bytes([c]))

    def _dm_add(self, data):
        if not self.dm_buf:
            self.dm_since = self.now
        self.dm_buf += data
        while len(self.dm_buf) >= MAX_FRAME:
            self._dm_flush(MAX_FRAME)

    def _dm_flush(self, n=None):
        n = len(self.dm_buf) if n is None else n
        data = bytes(self.dm_buf[:n])
        del self.dm_buf[:n]
        self.dm_since = self.now
        s = self.sockets.get(self.dm_sid)
        if s is None or s.listening or not s.connected:
            return  # a data-mode server with no client discards host bytes (5.7)
        self.stats["ssend_bytes"] += len(data)
        self.net.send(self.dm_sid, data, s.remote)

    def _data_timers(self):
        if self.dm_buf and self.now - self.dm_since >= self.prof["fsock"][3] / 1000:
            self._dm_flush()
        if self.plus and self.now - self.plus_at >= self.escape_s:
            if self.plus == 3:
                if self.dm_buf:
                    self._dm_flush()
                self.plus = 0
                self.data_mode = False  # the socket stays open (5.7)
                self.ok()
            else:
                self._dm_add(b"+" * self.plus)
                self.plus = 0

    def cmd_sdata(self, arg):
        s = self.sockets.get(self.dm_sid) if self.dm_sid is not None else None
        if self.dm_sid is None:
            return self.print_line(MODE_STATUS, 2)
        if s is None:
            return self.error()  # its socket is gone
        self.ok()
        self.data_mode = True
        self.dm_buf.clear()
        self.plus = 0

    def cmd_sopt1(self, arg):
        opt, _, value = arg.partition(",")
        if opt.strip() != "10" or not value.strip().isdigit() or not 1 <= int(value) <= 10000:
            return self.invalid()
        self.prof["escape_ms"] = int(value)
        self.ok()

    # --- network side -------------------------------------------------------

    def listener_sid(self, port=None):
        for sid, s in sorted(self.sockets.items()):
            if s.listening and (port is None or s.local_port == port):
                return sid
        return -1

    def accepted(self, peer, port=None):
        """A client reached a listener (the bridge calls this only while one exists).
        The listening id becomes the connection (5.3). Returns the id or -1."""
        sid = self.listener_sid(port)
        if sid < 0:
            return -1
        s = self.sockets[sid]
        s.listening = False
        s.remote = (peer[0], peer[1])
        self._enter_data_mode(sid)
        self.event(b"[CONNECT %x]" % sid, 2)
        return sid

    def connected(self, sid):
        s = self.sockets.get(sid)
        if s is not None:
            s.connected = True
            self._enter_data_mode(sid)
            self.event(b"[CONNECT %x]" % sid, 2)

    def connect_failed(self, sid):
        if sid == self.dm_sid:
            self._leave_data_mode(keep=False)
        if self.sockets.pop(sid, None) is not None:
            self.event(b"[DISCONNECT %x]" % sid, 1)  # no [CONNECT] before it (5.2)

    def received(self, sid, data, peer):
        s = self.sockets.get(sid)
        if s is None:
            return
        if s.kind == b"USN":
            s.remote = (peer[0], peer[1])  # the last sender becomes the destination (5.4)
        if self.data_mode and sid == self.dm_sid:
            self._async_out(bytes(data))  # data mode: raw, no header, no trailer (3.4)
        else:
            self.frame(sid, data, peer)

    def peer_closed(self, sid):
        s = self.sockets.pop(sid, None)
        if s is None:
            return
        if sid == self.dm_sid:
            # Back to command mode; a data-mode server keeps its id for the re-listen.
            self._leave_data_mode(keep=s.kind == b"TSN" and self.fsock9 != 1 and self.joined)
        self.net.close(sid)
        self.event(b"[DISCONNECT %x]" % sid, 1)
        if s.kind == b"TSN" and self.fsock9 != 1 and self.joined:
            # Single-connection mode re-listens on the same id (5.3); FSOCK 9 values
            # other than 1 keep this per-thread re-listen as well.
            self._listen(sid, s.local_port)
            self.sockets[sid].datamode = s.datamode
        elif s.kind == b"TSN" and not self.multi:
            self.net.unlisten(s.local_port)


def _is_ip(text):
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def _valid_key(sectype, key):
    if sectype == "WEP":
        return len(key) in (5, 13) or len(key) in (10, 26) and _is_hex(key)
    if sectype == "":
        return 0 < len(key) <= 128
    return 8 <= len(key) <= 63 or len(key) == 128 and _is_hex(key)


def _fields(text):
    """The parameters as the module's tokenizer (F-PARSE) splits them: at commas, but a field
    whose first non-blank is '"' runs to the next '"' not after a backslash, commas and
    backslash included (with none, to the end of the line), and whatever follows it up to
    the comma is dropped. None for a field with a second closing quote, which the module
    rejects."""
    fields = []
    while True:
        start = len(text) - len(text.lstrip())
        if text[start:start + 1] != '"':
            field, comma, text = text.partition(",")
        else:
            end = start + 1
            while True:
                end = text.find('"', end)
                if end < 0:
                    return fields + [text[start + 1:]]
                if text[end - 1] != "\\":
                    break
                end += 1
            field = text[start + 1:end]
            rest, comma, text = text[end + 1:].partition(",")
            if '"' in rest:
                return None
        fields.append(field)
        if not comma:
            return fields


def _is_hex(text):
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _resolve(host):
    """Every name in this world is the host itself."""
    host = host.strip()
    return host if _is_ip(host) else "127.0.0.1"


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
    (b"+SDATA", Module.cmd_sdata),
    (b"+SOPT1=", Module.cmd_sopt1),
    (b"+FSOCK=", Module.cmd_fsock),
    (b"+FDNS=", Module.cmd_fdns),
    (b"+FPING=", Module.cmd_fping),
)

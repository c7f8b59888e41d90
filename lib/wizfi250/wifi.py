"""Wi-Fi on the module: join a network or start a soft-AP, leave, status, scan.

The live state (up/down, address, gateway) is kept by the engine from the
module's Link-Up/Link-Down events; these calls issue the commands and parse
their output (protocol reference 6.1-6.3).
"""

from . import parser as P
from .compat import text


class WiFi:
    def __init__(self, engine):
        self.engine = engine
        self.mode = "station"

    async def join(self, ssid, key="", security="", timeout_ms=45000):
        """Join ``ssid`` as a station; returns the address. ``security`` empty = auto-detect."""
        cmd = self.engine.command
        await cmd(b"AT+WSET=0," + ssid.encode())
        # Auto-detect needs a key even for an open network (reference 6.1).
        await cmd(b"AT+WSEC=0,%s,%s" % (security.encode(), (key or "12345678").encode()))
        await cmd(b"AT+WNET=1")
        await cmd(b"AT+WJOIN", timeout_ms)
        self.mode = "station"
        self.engine.wifi["ssid"] = ssid
        return self.engine.wifi["ip"]

    async def soft_ap(self, ssid, key, channel=6, ip="192.168.12.1", mask="255.255.255.0"):
        """Start a WPA2 access point with its own DHCP server; returns its address."""
        cmd = self.engine.command
        await cmd(b"AT+WSET=1,%s,,%d" % (ap_name(ssid), channel))
        await cmd(b"AT+WSEC=1,WPA2AES," + key.encode())
        await cmd(b"AT+WNET=0,%s,%s,%s" % (ip.encode(), mask.encode(), ip.encode()))
        await cmd(b"AT+WJOIN", 20000)
        self.mode = "ap"
        self.engine.wifi["ssid"] = ssid
        return self.engine.wifi["ip"] or ip

    async def leave(self):
        await self.engine.command(b"AT+WLEAVE", 15000)

    async def status(self):
        """WSTAT as a dict: mode ('station', 'ap' or 'down'), ssid, ip, gateway, mac, rssi (dBm).

        The engine's link state then follows the module's word. A Link-Down lost to
        line noise, or read as an SSID's text in a scan, left the supervisor, which
        rejoins on that event, taking the network for up for good."""
        engine = self.engine
        for line in await engine.command(b"AT+WSTAT"):
            fields = text(line).split("/")
            if len(fields) >= 7 and fields[0] in ("STA", "AP", "Down"):
                mode = {"STA": "station", "AP": "ap"}.get(fields[0], "down")
                up = mode != "down"
                if up:
                    engine.wifi["ip"], engine.wifi["gateway"] = fields[-5], fields[-4]
                engine.wifi_event(P.LINK_UP if up else P.LINK_DOWN, None, line)  # heard if news
                # Counted from the end: an SSID may hold a '/' ("Home/Office").
                rssi = fields[-1].strip()
                return {
                    "mode": mode,
                    "ssid": "/".join(fields[1:-5]), "ip": fields[-5], "gateway": fields[-4], "mac": fields[-3],
                    "rssi": -int(rssi) if rssi.isdigit() else None,
                }  # fmt: skip
        raise OSError(5, "no WSTAT row")

    async def scan(self):
        """Networks in range: a list of dicts (ssid, bssid, rssi, security, channel)."""
        engine = self.engine
        air = engine.counters["air"]
        found = []
        for line in await engine.command(b"AT+WSCAN", 15000, lambda line: parse_scan_row(text(line)) is not None):
            row = parse_scan_row(text(line))
            if row is not None:
                found.append(row)
        if engine.counters["air"] != air:
            # An event, or what looked like one, was taken as an SSID's text. If it was
            # a real one, the module's word says so: its socket list (a client came or
            # went) and its link (status).
            try:
                await engine.resync_table()
                await self.status()
            except OSError:
                pass  # timed out: the supervisor's probe looks again (it counts timeouts)
        return found


def ap_name(ssid):
    """``ssid`` as the module's AP-mode ``WSET`` takes it, or ValueError if it cannot.

    The module splits that command at commas; a name in quotes keeps its own.
    A quote in it cannot be given (the module's tokenizer keeps the backslash
    of an escaped one): refused, rather than an access point of another name."""
    name = ssid.encode()
    if b"," in name or name.lstrip().startswith(b'"'):
        if b'"' in name:
            raise ValueError("the module cannot take an access point name with a comma and a quote, or a leading quote")
        name = b'"' + name + b'"'
    return name


def parse_scan_row(text):
    """One WSCAN row, or None for the header. Tolerates '/' in the SSID and the
    extra network-type field WizFi250 prints but its header does not list.

    The BSSID is found from the end, where the module's own fields are: an SSID may
    hold "/00:00:00:00:00:00/", which, taken for the BSSID, left the row never whole
    and the scan's [OK] read as the rest of its name."""
    fields = text.split("/")
    for j in (len(fields) - 6, len(fields) - 7):  # WizFi310, WizFi250 (one more field)
        if j >= 2 and len(fields[j]) == 17 and fields[j].count(":") == 5:
            break
    else:
        return None
    rest = fields[j + 1 :]
    if not fields[0].isdigit():
        return None
    if len(rest) == 6:  # Infra/Adhoc/Unknown: WizFi250 only
        rest = rest[:2] + rest[3:]
    try:
        rssi = int(rest[0])
        channel = int(rest[4])
    except ValueError:
        return None
    return {"ssid": "/".join(fields[1:j]), "bssid": fields[j], "rssi": rssi, "security": rest[2], "channel": channel}

"""The engine against the emulator's module model, in this process: what the model prints
is what the protocol reference says the firmware prints, byte for byte.

The model runs on a clock of its own, the wall clock here, so its deadlines are real
time (a late SSEND prompt's test takes about 13 s). CPython only.
"""

import asyncio
import time

from check import eq
from emulator.core import Module
from wizfi250.engine import Engine
from wizfi250.sockets import UDP
from wizfi250.wifi import WiFi


class Net:
    """The module's network: records what it sends."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name,) + args)


class ModuleUART:
    """The engine's transport, straight into the module model, its clock the wall clock."""

    def __init__(self, module):
        self.module = module
        self.t0 = time.monotonic()

    def _tick(self):
        self.module.tick(time.monotonic() - self.t0)

    async def readinto(self, buf):
        out = self.module.out
        while True:
            self._tick()
            if out:
                n = min(len(buf), len(out))
                buf[:n] = out[:n]
                del out[:n]
                return n
            await asyncio.sleep(0.005)

    async def write(self, data):
        self._tick()
        self.module.feed(bytes(data))


def test_a_late_prompt_sends_the_peer_nothing_but_what_was_sent():
    # The module reads every byte after an accepted SSEND as its payload, however late the
    # prompt: the driver's resync AT then reached the peer (AT\rAT in a datagram).
    async def main():
        net = Net()
        module = Module(net)
        module.out.clear()  # its boot banner: the driver starts after it
        engine = Engine(ModuleUART(module), stall_ms=0)  # the prompt is awaited 2 s
        engine.start()
        await engine.init()
        await engine.command(b"AT+WJOIN", 5000)
        sock = await engine.open_socket(UDP, "10.0.0.2", 7000)
        await engine.ssend(sock, b"first")
        module.busy_for(2.5)  # still on another command when the prompt's wait ends
        try:
            await engine.ssend(sock, b"lost!")
        except OSError as e:
            eq(e.args[0], 110)
        else:
            raise AssertionError("the SSEND did not time out")
        failed = []
        while True:  # the resync's AT goes out before the prompt comes: it is payload now
            try:
                info = await engine.command(b"AT+MINFO", 3000)
                break
            except OSError as e:
                failed.append(e.args[0])
        await engine.ssend(sock, b"after")
        engine.stop()
        sent = [call[2] for call in net.calls if call[0] == "send"]
        eq((sent, failed, info[0]), ([b"first", b"after"], [5], b"FW version/HW version"))

    asyncio.run(main())


def test_networks_named_like_the_modules_lines_are_listed_and_change_nothing():
    # A scan prints each SSID as it came over the air: a neighbour named "\r\n[Reset Event]\r\n"
    # ended every socket; one named "\r\n[OK]\r\n" ended the scan early.
    async def main():
        module = Module(Net())
        module.out.clear()
        module.neighbours = [
            (b"\r\n[Reset Event]\r\n", b"00:11:22:33:44:66", b"-80", b"54", b"Open", b"11"),
            (b"\r\n[DISCONNECT 0]\r\n[OK]\r\n", b"00:11:22:33:44:77", b"-70", b"54", b"Open", b"1"),
            (b"Caf\xe9", b"00:11:22:33:44:88", b"-60", b"54", b"Open", b"3"),
        ]
        engine = Engine(ModuleUART(module))
        engine.start()
        await engine.init()
        await engine.command(b"AT+WJOIN", 5000)
        sock = await engine.open_socket(UDP, "10.0.0.2", 7000)
        found = await WiFi(engine).scan()
        await engine.ssend(sock, b"still here")
        engine.stop()
        eq([n["ssid"] for n in found], ["WizFiAP", "\n[Reset Event]\n", "\n[DISCONNECT 0]\n[OK]\n", "Caf\xe9"])
        eq((sock.open, engine.restarting, engine.counters["resets"]), (True, False, 0))
        eq((engine.wifi["state"], engine.wifi["ip"]), ("up", module.ip))  # the check after it agreed

    asyncio.run(main())


def test_frames_and_socket_ends_between_the_bytes_of_an_ssid_reach_their_sockets():
    # The firmware prints an SSID a byte per call (reference 4.7), and a socket thread prints
    # between any two: chaos holds a datagram's frames and a socket's end back and lets them
    # out there. Frames are taken wherever they land. An end there is read as the SSID's text,
    # as nothing tells it from a name that holds one: the name shows it, and the check of the
    # socket table after the scan ends the socket.
    async def main():
        module = Module(Net())
        module.out.clear()
        engine = Engine(ModuleUART(module))
        engine.start()
        await engine.init()
        await engine.command(b"AT+WJOIN", 5000)
        kept = await engine.open_socket(UDP, "10.0.0.2", 7000)
        gone = await engine.open_socket(UDP, "10.0.0.3", 7000)
        module.chaos.inject = True
        module.received(kept.sid, b"one", ("10.0.0.2", 7000))
        module.received(kept.sid, b"two\r\n[OK]\r\n", ("10.0.0.2", 7000))
        module._close(gone.sid)  # its socket thread prints [DISCONNECT n]
        module.received(kept.sid, b"three", ("10.0.0.2", 7000))
        found = await WiFi(engine).scan()
        engine.stop()
        eq((module.stats["injected"], [n["ssid"] for n in found]), (4, ["Wi\n[DISCONNECT 1]\nzFiAP", "Neighbour"]))
        eq((kept.rx.read(), [n for n, _ in kept.datagrams]), (b"onetwo\r\n[OK]\r\nthree", [3, 11, 5]))
        eq((kept.open, gone.open, engine.table[gone.sid], engine.counters["resets"]), (True, False, None, 0))

    asyncio.run(main())

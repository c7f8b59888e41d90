"""The README's examples ("Using the driver") run as written, under the MicroPython unix port
against the emulator: only the board's UART and the world's addresses are swapped for the
emulator's, so an example that no longer works fails here, not for a reader."""

import os
import pathlib
import socket
import subprocess
import threading
import time

import build as tools_build
import pytest
from emu_support import Running, free_port
from mpy import CIRCUITPYTHON, MICROPYTHON, ROOT, install_into

pytestmark = pytest.mark.timeout(120)


def example(n=0):
    """The ``n``th Python block of "Using the driver"."""
    text = (pathlib.Path(ROOT) / "README.md").read_text()
    section = text.split("\n## Using the driver\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n")[n + 1].split("```", 1)[0]


def swap(code, old, new):
    assert code.count(old) == 1, "the README's example changed: %r is gone, update this test" % old
    return code.replace(old, new)


def serve_once(server, body):
    """The 'example.com' of the example: one HTTP/1.0 answer (the emulator takes every
    name for this host)."""
    conn, _ = server.accept()
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(1024)
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + body)


def ask(port, request, attempts=100):
    """``request`` to 127.0.0.1:``port`` once something answers there; the whole reply."""
    for _ in range(attempts):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(request)
                reply = b""
                while True:
                    data = s.recv(1024)
                    if not data:
                        return reply
                    reply += data
        except OSError:
            time.sleep(0.1)  # the module's server is not open yet
    raise AssertionError("nothing answered on port %d" % port)


def the_world():
    """The emulated module (its server on ``http``, its UDP port 5007 on ``udp``) and the
    'example.com' the example fetches a page from: ``(module, world, http, udp)``."""
    http, udp = free_port(), free_port()
    module = Running(baud=0, ports={80: http, 5007: udp}, ap=("MyAP", "secret99"))
    world = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=serve_once, args=(world, b"a page of the world"), daemon=True).start()
    return module, world, http, udp


def drive(proc, module, world, http, udp):
    """What the driver example does, seen from outside: its server answers, its UDP socket
    echoes, it prints the Wi-Fi status, a scan and the page its client fetched, and ends.
    Returns what it printed."""
    try:
        assert ask(http, b"GET / HTTP/1.0\r\n\r\n") == b"HTTP/1.0 200 OK\r\n\r\nhello\r\n"
        echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        echo.settimeout(0.2)
        for _ in range(150):  # until the example has opened its UDP socket
            echo.sendto(b"ping", ("127.0.0.1", udp))
            try:
                reply = echo.recv(64)
                break
            except OSError:
                continue
        else:
            reply = None
        echo.close()
        assert reply == b"ping"
        out = proc.communicate(timeout=30)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        world.close()
        module.close()
    assert proc.returncode == 0, out
    assert "'mode': 'station'" in out and "'ssid': 'MyAP'" in out, out  # wifi.status()
    assert "'bssid'" in out, out  # wifi.scan()
    assert "a page of the world" in out, out  # the client's fetch
    return out


def test_the_readme_driver_example_serves_fetches_and_echoes(tmp_path):
    module, world, http, udp = the_world()
    code = example()
    code = swap(code, "from wizfi250.transport import machine_uart", "from wizfi250.transport import open_device")
    code = swap(code, "machine_uart(1, baud=921600, tx=4, rx=5, rts=7, cts=6, flow=True)", "open_device(%r)" % module.emu.serial_path)
    code = swap(code, 'open_connection("example.com", 80)', 'open_connection("example.com", %d)' % world.getsockname()[1])
    script = tmp_path / "example.py"
    script.write_text(code)
    env = dict(os.environ, MICROPYPATH=".frozen:" + os.path.join(ROOT, "lib"))
    proc = subprocess.Popen([MICROPYTHON, str(script)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    drive(proc, module, world, http, udp)


# The board's side of busio for the CircuitPython example, on the unix port: a UART over
# the emulator's pty with busio's polling surface (in_waiting, readinto that returns None
# when nothing came, write). The driver only ever polls it, as on a board.
FAKE_BUSIO = """
from wizfi250.transport import open_device


class UART:
    def __init__(self, tx, rx, *, baudrate=9600, timeout=1, receiver_buffer_size=64, rts=None, cts=None):
        self.tty = open_device(%r).raw
        self.buf = bytearray(receiver_buffer_size)
        self.n = 0

    @property
    def in_waiting(self):
        if self.n < len(self.buf):
            self.n += self.tty.readinto(memoryview(self.buf)[self.n :]) or 0
        return self.n

    def readinto(self, buf):
        n = min(len(buf), self.in_waiting)
        if not n:
            return None
        buf[:n] = self.buf[:n]
        self.buf[: self.n - n] = self.buf[n : self.n]
        self.n -= n
        return n

    def write(self, data):
        return self.tty.write(data)
"""


def test_the_readme_example_runs_on_circuitpythons_asyncio_over_a_busio_uart(tmp_path):
    packages = os.path.join(ROOT, "build", "circuitpython")
    install_into(packages, CIRCUITPYTHON, "--no-deps")
    module, world, http, udp = the_world()
    circuitpython = example(2)
    head = "".join(line + "\n" for line in circuitpython.splitlines() if line.startswith(("import ", "from ")))
    body = circuitpython[circuitpython.index("uart = ") :]
    code = example()
    code = swap(code, "from wizfi250.transport import machine_uart\n", head)
    code = swap(code, "    engine = Engine(machine_uart(1, baud=921600, tx=4, rx=5, rts=7, cts=6, flow=True))\n",
                "".join("    " + line + "\n" for line in body.splitlines()))  # fmt: skip
    code = swap(code, 'open_connection("example.com", 80)', 'open_connection("example.com", %d)' % world.getsockname()[1])
    # On CircuitPython sys.implementation.name says so and the streams wait with Event.wait;
    # here it says "micropython", so take that path as mp_runner's --circuitpython does.
    code = "import asyncio, wizfi250.compat\nwizfi250.compat._core = None\nprint('asyncio:', asyncio.__file__)\n" + code
    (tmp_path / "example.py").write_text(code)
    (tmp_path / "board.py").write_text("TX, RX, D5, D6 = 'TX', 'RX', 'D5', 'D6'\n")
    (tmp_path / "busio.py").write_text(FAKE_BUSIO % module.emu.serial_path)
    # CircuitPython's asyncio ahead of the unix port's frozen one.
    env = dict(os.environ, MICROPYPATH="%s:%s:.frozen:%s" % (tmp_path, packages, os.path.join(ROOT, "lib")))
    proc = subprocess.Popen([MICROPYTHON, "example.py"], cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = drive(proc, module, world, http, udp)
    assert "asyncio: %s/asyncio/" % packages in out, out  # CircuitPython's, not the port's own


def test_the_readme_microdot_example_serves_its_route(tmp_path):
    # The block is the middle of a program ("await" at its top level): it runs in the first
    # example's setup, its module-level lines as they are, its last line inside main().
    http = free_port()
    module = Running(baud=0, ports={80: http}, ap=("MyAP", "secret99"))
    snippet = example(1)
    start = 'await net.start_server(http_handler(app, 5000), 80)  # 5000: idle_ms for the request head\n'
    assert snippet.endswith(start), "the README's Microdot example changed: update this test"
    code = snippet[: -len(start)] + """
import asyncio
from wizfi250.engine import Engine
from wizfi250.net import Net
from wizfi250.supervisor import Supervisor
from wizfi250.transport import open_device
from wizfi250.wifi import WiFi

async def main():
    engine = Engine(open_device(%r))
    engine.start()
    net, wifi = Net(engine), WiFi(engine)
    supervisor = Supervisor(net, wifi, join=("station", "MyAP", "secret99", ""))
    asyncio.create_task(supervisor.run())
    while supervisor.state != "up":
        await asyncio.sleep(0.1)
    %s    await asyncio.sleep(60)

asyncio.run(main())
""" % (module.emu.serial_path, start)
    build = tmp_path / "mpy"
    tools_build.build(str(build))  # the driver and Microdot, as a board has them
    script = tmp_path / "example.py"
    script.write_text(code)
    env = dict(os.environ, MICROPYPATH=".frozen:%s" % build)
    proc = subprocess.Popen([MICROPYTHON, str(script)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        reply = ask(http, b"GET / HTTP/1.0\r\n\r\n")
    finally:
        proc.kill()
        out = proc.communicate()[0].decode()
        module.close()
    assert reply.startswith(b"HTTP/1.0 200 OK\r\n") and reply.endswith(b"\r\n\r\nhello from the module"), (reply, out)

"""tools/deploy against the virtual board (the unix port behind a pty, real mpremote):
the deployed firmware serves the site through the emulator, a second deploy sends
only the file that changed, a plain deploy is not silently shadowed by a ROMFS
image, and a port with no board fails with a clear message."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from emu_support import Running, free_port
from mpy import ROOT
from vboard import VirtualBoard

DEPLOY = [sys.executable, os.path.join(ROOT, "tools", "deploy.py")]


def deploy(*args, timeout=120):
    run = subprocess.run(DEPLOY + list(args), capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout + run.stderr
    return [line.split(" ", 1)[1] for line in run.stdout.splitlines() if line.startswith("sent ")]


def fetch(port, path, seconds, board):
    """The page once the firmware serves it; the board's console on failure."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as response:
                return response.read()
        except (OSError, urllib.error.URLError):
            assert time.monotonic() < deadline, "not serving after %d s; board console:\n%s" % (
                seconds, board.console.decode(errors="replace"))  # fmt: skip
            time.sleep(0.2)


def write_config(tmp_path, module):
    """A config.json whose UART is the emulator's pty (a path: a serial device, not machine.UART)."""
    config = {
        "wifi": {"mode": "station", "ssid": "WizFiAP", "key": "12345678"},
        "uart": {"path": module.emu.serial_path, "baud": 921600},
        "http": {"port": 80, "idle_ms": 2000},
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return config, path


@pytest.fixture
def board(tmp_path):
    b = VirtualBoard(tmp_path / "board")
    yield b
    b.close()


def test_deploy_serves_the_site_and_resends_only_what_changed(tmp_path, board):
    http = free_port()
    module = Running(baud=0, ports={80: http})
    try:
        config, path = write_config(tmp_path, module)

        root = tmp_path / "board"
        stale = root / "lib" / "wizfi250" / "engine.py"  # as `mpremote mip install` leaves it
        stale.parent.mkdir(parents=True)
        stale.write_text("raise ImportError('the stale source ran instead of engine.mpy')\n")
        sent = deploy(board.port, "--config", str(path), "--reset")
        assert not stale.exists()
        assert "lib/wizfi250/engine.mpy" in sent and "lib/microdot/microdot.mpy" in sent and "lib/app.mpy" in sent
        # The application goes compiled; main.py only starts it (compiled on the board,
        # main.py took the heap that six downloads needed).
        with open(os.path.join(ROOT, "tools", "board_main.py")) as f:
            assert (root / "main.py").read_text() == f.read()
        for name in sent:
            assert (root / name).is_file(), name
        assert json.loads((root / "config.json").read_text()) == config
        with open(os.path.join(ROOT, "www", "index.html"), "rb") as f:
            assert fetch(http, "/", 60, board) == f.read()

        config["http"]["idle_ms"] = 3000
        path.write_text(json.dumps(config))
        assert deploy(board.port, "--config", str(path), "--reset") == ["config.json"]
        assert json.loads((root / "config.json").read_text()) == config
        with open(os.path.join(ROOT, "www", "css", "site.css"), "rb") as f:
            assert fetch(http, "/css/site.css", 60, board) == f.read()
        assert board.resets == 4  # each deploy: one to take the board over, one to start main.py
    finally:
        module.close()


def romfs_board(tmp_path):
    """As README's `tools/vboard SANDBOX --romfs 128K`: the default heap, the partition on top."""
    return VirtualBoard(tmp_path / "board", romfs="128K")


def test_romfs_deploy_serves_from_the_image_and_rewrites_it_only_when_changed(tmp_path):
    board = romfs_board(tmp_path)
    http = free_port()
    module = Running(baud=0, ports={80: http})
    try:
        config, path = write_config(tmp_path, module)
        lib = tmp_path / "board" / "lib"
        stale = [lib / "wizfi250" / "engine.mpy", lib / "microdot" / "microdot.py", lib / "app.mpy"]
        for copy in stale:  # as a deploy without --romfs, or mpremote mip install, left them
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text("raise ImportError('a copy in /lib ran instead of the image')\n")
        sent = deploy(board.port, "--config", str(path), "--reset", "--romfs")
        assert not [copy for copy in stale if copy.exists()]
        assert os.listdir(tmp_path / "board" / "lib") == []  # their emptied folders went too
        assert sent[0] == "romfs" and not [name for name in sent if name.startswith("lib/")], sent
        # main.py only starts the application, which can come from nowhere but the image.
        with open(os.path.join(ROOT, "tools", "board_main.py")) as f:
            assert (tmp_path / "board" / "main.py").read_text() == f.read()
        with open(os.path.join(ROOT, "www", "index.html"), "rb") as f:
            assert fetch(http, "/", 60, board) == f.read()

        config["http"]["idle_ms"] = 3000
        path.write_text(json.dumps(config))
        assert deploy(board.port, "--config", str(path), "--reset", "--romfs") == ["config.json"]
        with open(os.path.join(ROOT, "www", "css", "site.css"), "rb") as f:
            assert fetch(http, "/css/site.css", 60, board) == f.read()
    finally:
        module.close()
        board.close()


def test_a_plain_deploy_shadowed_by_the_romfs_image_is_refused_unless_forced(tmp_path):
    """A board imports /rom/lib ahead of /lib: a plain deploy there would leave the
    image's old code running, so it stops, sends nothing and says how to get out."""
    board = romfs_board(tmp_path)
    root = tmp_path / "board"
    try:
        deploy(board.port, "--romfs")
        with open(os.path.join(ROOT, "tools", "board_main.py")) as f:
            board_main = f.read()

        refused = subprocess.run(DEPLOY + [board.port], capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "holds microdot and wizfi250 in /rom/lib" in refused.stderr, refused.stderr
        assert "tools/deploy %s --romfs" % board.port in refused.stderr and "--force" in refused.stderr
        assert refused.stdout == "" and (root / "main.py").read_text() == board_main
        assert not (root / "lib" / "wizfi250").exists()

        forced = subprocess.run(DEPLOY + [board.port, "--force"], capture_output=True, text=True, timeout=120)
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert "warning: the board's ROMFS image holds" in forced.stderr
        assert (root / "lib" / "wizfi250" / "engine.mpy").is_file()

        # The other way out the message gives: an empty image, then a plain deploy says nothing more.
        assert "mpremote connect %s romfs deploy build/empty-romfs" % board.port in refused.stderr
        empty = tmp_path / "empty-romfs"
        empty.mkdir()
        mpremote = os.path.join(os.path.dirname(sys.executable), "mpremote")
        run = subprocess.run([mpremote, "connect", board.port, "romfs", "deploy", str(empty)],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        again = subprocess.run(DEPLOY + [board.port], capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "ROMFS" not in again.stderr, again.stdout + again.stderr
    finally:
        board.close()


def test_romfs_deploy_to_a_board_without_a_partition_is_a_clear_error_and_sends_nothing(board, tmp_path):
    run = subprocess.run(DEPLOY + [board.port, "--romfs"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "no ROMFS partition" in run.stderr and "deploy without --romfs" in run.stderr
    assert not (tmp_path / "board" / "main.py").exists()


def run_deploy(port):
    return subprocess.run(DEPLOY + [port], capture_output=True, text=True, timeout=60)


def test_no_port_is_a_clear_error(tmp_path):
    run = run_deploy(str(tmp_path / "ttyACM9"))
    assert run.returncode == 2
    assert "no board" in run.stderr and "does not exist" in run.stderr


def test_a_broken_configuration_is_refused_before_the_board_is_touched(board, tmp_path):
    for text, says in (("{", "is not valid JSON"), ('{"wifi": {}}', "missing wifi.mode")):
        (tmp_path / "bad.json").write_text(text)
        run = subprocess.run(DEPLOY + [board.port, "--config", str(tmp_path / "bad.json")], capture_output=True, text=True, timeout=60)
        assert (run.returncode, "nothing sent" in run.stderr, says in run.stderr) == (2, True, True), run.stderr
    run = subprocess.run(DEPLOY + [board.port, "--config", str(tmp_path / "none.json")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "no configuration file" in run.stderr  # not "the board stopped answering" (3)
    assert not (tmp_path / "board" / "main.py").exists()


def test_a_silent_port_is_a_clear_error_within_seconds():
    host, device = os.openpty()
    try:
        run = run_deploy(os.ttyname(device))  # within run_deploy's timeout: it must not hang
    finally:
        os.close(host)
        os.close(device)
    assert run.returncode == 2
    assert "gave no MicroPython raw REPL" in run.stderr and "sent nothing" in run.stderr


def test_the_virtual_board_soft_reset_is_a_fresh_interpreter(board, tmp_path):
    """What mpremote relies on: state lives until a soft reset and not after it; boot.py runs
    on every reset, main.py not after one from the raw REPL (as on rp2, esp32, stm32)."""
    (tmp_path / "board" / "boot.py").write_text("print('boot ran')\n")
    (tmp_path / "board" / "main.py").write_text("print('main ran')\n")
    mpremote = [os.path.join(os.path.dirname(sys.executable), "mpremote"), "connect", board.port]

    def session(*args):
        run = subprocess.run(mpremote + list(args), capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stdout + run.stderr
        return run.stdout.strip()

    assert session("exec", "marker = 1; import os; print(sorted(os.listdir('/')))") == "['boot.py', 'dev', 'lib', 'main.py']"
    assert session("resume", "exec", "print('marker' in globals())") == "True"
    assert session("exec", "print('marker' in globals())") == "False"
    assert board.resets == 2
    after_reset = board.console.split(b"soft reboot\r\n", 1)[1]
    assert b"boot ran" in after_reset and b"main ran" not in after_reset

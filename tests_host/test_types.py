"""lib/ type-checks with pyright against the MicroPython stubs of two ports, with no errors.

The stubs catch what the host tests cannot: a misspelled ``machine.UART``
keyword, a CPython-only asyncio call, a ``time`` function a board lacks.
They are installed into build/typings/ (not into .venv, where they would
shadow CPython's own stubs for the host code); tools/pyright/ holds one
configuration per port.
"""

import json
import os
import subprocess
import sys

import pytest
from mpy import ROOT, install_into, lib_sources

BIN = os.path.dirname(sys.executable)
STUBS = {  # port: (folder under build/typings, pinned stub package)
    "rp2": ("rp2-rpi-pico", "micropython-rp2-rpi-pico-stubs==1.29.0.post1"),
    "esp32": ("esp32", "micropython-esp32-stubs==1.29.0.post1"),
}


def pinned(name):
    """``name==version`` as requirements.txt pins it."""
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        return next(line.strip() for line in f if line.startswith(name + "=="))


def install_stubs(folder, requirement):
    """The port's stubs, and Microdot beside them for wizfi250.web (its pinned version)."""
    install_into(os.path.join(ROOT, "build", "typings", folder), (requirement, pinned("microdot")))


@pytest.mark.parametrize("port", sorted(STUBS))
def test_lib_has_no_type_errors_against_the_port_stubs(port):
    install_stubs(*STUBS[port])
    config = os.path.join(ROOT, "tools", "pyright", port + ".json")
    run = subprocess.run([os.path.join(BIN, "pyright"), "--outputjson", "-p", config],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    try:
        report = json.loads(run.stdout)
    except ValueError:
        raise AssertionError("pyright gave no report:\n" + run.stdout + run.stderr)
    errors = ["%s:%d: %s" % (d["file"], d["range"]["start"]["line"] + 1, d["message"])
              for d in report["generalDiagnostics"] if d["severity"] == "error"]  # fmt: skip
    assert not errors, "\n".join(errors)
    assert report["summary"]["filesAnalyzed"] == len(list(lib_sources()))  # every module was read

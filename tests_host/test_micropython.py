"""The portable core tests, run by the MicroPython unix port in a small heap.

One interpreter run per case module (compiled to .mpy first: compiling the
sources on the target would not fit in 64 KB); each test's PASS/FAIL line
becomes its own pytest item, so the counts show in the summary.
"""

import os
import subprocess

import pytest
from mpy import MICROPYTHON, ROOT, compile_to, lib_sources

MODULES = ("cases_parser", "cases_engine", "cases_state", "cases_interleave", "cases_net", "cases_wifi", "cases_busio", "cases_transcript")
SUPPORT = ("gen", "fakeuart", "noheap", "check", "smgmt", "mp_runner")
# The core (ring, parser, engine) must fit 64 KB (the parser cases run in it); the socket layer on top runs in
# the 128 KB the whole firmware is budgeted (on a board the code is frozen, not heap).
# The random interleavings keep their generated script in the same heap, and 64 KB
# was their edge (passing at 64K, failing at 63K: a flaky test), so they get 8 KB more.
# So do the state cases: 64K was their edge too (62K failed), and the engine's restart
# gate (only init speaks after a module restart) took them past it (66K passes).
# The transcript cases record into a 4 KB transcript and a 2000-byte chunk beside the
# engine: the stall drop that closes the socket on the module (125 bytes of .mpy) took
# them past 64K, which was their edge too (66K passes).
# The engine cases passed at 64K with no margin (63K failed), and then failed at 64K in
# one build folder but not another: a fence at the edge is a flaky test. With the end of
# frames cut short by a restart and the quiet close of a dropped socket, the engine and
# state cases need 70K (measured); they get 80K. The busio cases needed 66K once the engine
# read a lost Link-Down in an SCON's answer (measured); they get 72K. Here the driver's code
# is heap too (engine.mpy alone is 9.6 KB), where a board keeps it in flash.
HEAP = {"cases_net": "128K", "cases_wifi": "128K", "cases_interleave": "72K", "cases_state": "80K",
        "cases_transcript": "72K", "cases_engine": "80K", "cases_busio": "72K"}  # fmt: skip


def _tests(module):
    return sorted(n for n in dir(__import__(module)) if n.startswith("test_"))


@pytest.fixture(scope="session")
def mp_results(tmp_path_factory):
    build = tmp_path_factory.mktemp("mp")
    for rel in lib_sources():
        result = compile_to(os.path.join(ROOT, "lib", rel), str(build / rel[:-3]) + ".mpy")
        assert result.returncode == 0, result.stderr
    for name in MODULES + SUPPORT:
        result = compile_to(os.path.join(ROOT, "tests_host", name + ".py"), str(build / name) + ".mpy")
        assert result.returncode == 0, result.stderr
    # Run inside the build folder with a relative path: nothing the interpreter
    # sees depends on where the checkout or pytest's temporary folder is.
    env = dict(os.environ, MICROPYPATH=".frozen:.")
    results = {}
    for module in MODULES:
        run = subprocess.run(
            [MICROPYTHON, "-X", "heapsize=" + HEAP.get(module, "64K"), "-m", "mp_runner", module],
            capture_output=True, text=True, env=env, cwd=str(build), timeout=300,
        )  # fmt: skip
        out = run.stdout + run.stderr
        for line in run.stdout.splitlines():
            if line.startswith("PASS "):
                results[(module, line[5:])] = (True, out)
            elif line.startswith("FAIL "):
                results[(module, line[5:].split(":")[0])] = (False, out)
        results[module] = out
    return results


@pytest.mark.parametrize("module,name", [(m, n) for m in MODULES for n in _tests(m)])
def test_under_micropython(mp_results, module, name):
    passed, out = mp_results.get((module, name), (None, mp_results[module]))
    assert passed is not None, "no result for %s (interpreter crashed?)\n%s" % (name, out)
    assert passed, out

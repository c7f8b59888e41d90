"""package.json (for `mpremote mip install github:<owner>/<repo>`) lists exactly the driver."""

import functools
import http.server
import json
import os
import subprocess
import threading

from mpy import MICROPYTHON, ROOT, lib_sources


def test_package_json_installs_every_driver_file_and_nothing_else():
    with open(os.path.join(ROOT, "package.json")) as f:
        package = json.load(f)
    sources = {"lib/" + rel for rel in lib_sources() if rel.startswith("wizfi250/")}
    assert {src for _, src in package["urls"]} == sources
    for dest, src in package["urls"]:
        assert src == "lib/" + dest and os.path.exists(os.path.join(ROOT, src))


def test_mip_installs_the_driver_from_package_json(tmp_path):
    """The unix port's own mip, fetching package.json and its relative sources over HTTP."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=ROOT)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d/package.json" % server.server_address[1]
        code = "import mip; mip.install(%r, target=%r)" % (url, str(tmp_path))
        run = subprocess.run([MICROPYTHON, "-c", code], env=dict(os.environ, MICROPYPATH=".frozen"),
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
    finally:
        server.shutdown()
    for rel in lib_sources():
        with open(os.path.join(ROOT, "lib", rel), "rb") as a, open(tmp_path / rel, "rb") as b:
            assert a.read() == b.read(), rel

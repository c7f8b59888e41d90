"""package.json (for `mpremote mip install github:<owner>/<repo>`) lists exactly the driver."""

import json
import os

from mpy import ROOT, lib_sources


def test_package_json_installs_every_driver_file_and_nothing_else():
    with open(os.path.join(ROOT, "package.json")) as f:
        package = json.load(f)
    sources = {"lib/" + rel for rel in lib_sources() if rel.startswith("wizfi250/")}
    assert {src for _, src in package["urls"]} == sources
    for dest, src in package["urls"]:
        assert src == "lib/" + dest and os.path.exists(os.path.join(ROOT, src))

"""Every file the board runs must compile with mpy-cross (deploys ship .mpy), into a .mpy
that every board can load."""

import os
import re

import pytest
from mpy import ROOT, compile_to, lib_sources

FILES = [os.path.join("lib", p) for p in lib_sources()]
FILES += [name for name in ("main.py", "boot.py") if os.path.exists(os.path.join(ROOT, name))]


# A .mpy stores an int that is no small int on a 32-bit port (31 bits, signed) as an object:
# tag 7, its length, its digits. A port without long ints cannot load it, and on one with
# them every use of it is long-int arithmetic. 2**30 has ten digits.
LONG_INT = re.compile(rb"\x07([\x0a-\x7f])(-?[0-9]{10,})")


@pytest.mark.parametrize("path", FILES)
def test_compiles_with_mpy_cross_to_code_every_board_loads(path, tmp_path):
    out = tmp_path / "out.mpy"
    result = compile_to(os.path.join(ROOT, path), str(out))
    assert result.returncode == 0, result.stderr
    longs = [m.group(2) for m in LONG_INT.finditer(out.read_bytes()) if len(m.group(2)) == m.group(1)[0]]
    assert longs == [], "long-int constants (a mask or a bit above 2**30?): %s" % longs

"""Every file the board runs must compile with mpy-cross (deploys ship .mpy)."""

import os

import pytest
from mpy import ROOT, compile_to, lib_sources

FILES = [os.path.join("lib", p) for p in lib_sources()]
FILES += [name for name in ("main.py", "boot.py") if os.path.exists(os.path.join(ROOT, name))]


@pytest.mark.parametrize("path", FILES)
def test_compiles_with_mpy_cross(path, tmp_path):
    result = compile_to(os.path.join(ROOT, path), str(tmp_path / "out.mpy"))
    assert result.returncode == 0, result.stderr

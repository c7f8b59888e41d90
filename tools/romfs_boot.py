"""Run a firmware script with its modules in place from a ROMFS image, as a board
with a ROMFS partition does: micropython tools/romfs_boot.py IMAGE SCRIPT [ARGS...]

The image comes from ``tools/build.py OUT --romfs``. The unix port has no ROM,
so the image is read into one block, the first thing in the heap and there for
good: it stands for the board's flash. The bytecode runs where it lies in that
block; only the objects the code makes take the rest of the heap. Give the heap
the image's size on top of the board's (``build.romfs_args``): what is left is then a
little less than that heap would leave alone.
"""

import gc
import os
import sys
import vfs

image, script = sys.argv[1], sys.argv[2]
rom = bytearray(os.stat(image)[6])
with open(image, "rb") as f:
    f.readinto(rom)
vfs.mount(vfs.VfsRom(rom), "/rom")
sys.path.insert(0, "/rom/lib")  # a board puts /rom/lib ahead of /lib
del sys.argv[1:3]  # the script sees its own arguments, as if run directly
gc.collect()
print("romfs: %s in place (%d bytes), %d bytes of heap left" % (image, len(rom), gc.mem_free()))
# Compiled as a board compiles its main.py, from the file: compile(f.read()) held the
# whole source text, 20 KB that a stale word on the C stack then kept alive for good.
execfile(script, {"__name__": "__main__", "__file__": script})  # noqa: F821 (a unix port builtin)

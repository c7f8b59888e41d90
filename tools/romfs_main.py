"""main.py on a board whose code is in its ROMFS image (tools/deploy --romfs).

MicroPython runs main.py only from the filesystem, never from /rom. The
application itself is in the image, compiled from the repository's main.py
as ``app``: run in place from flash, its bytecode takes no heap, where this
file's few lines are all the board compiles.
"""

import app

app.start()

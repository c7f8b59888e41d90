"""main.py on a board (tools/deploy): starts the application, deployed as ``app``.

The application is the repository's main.py, compiled by tools/build.py into
``app.mpy``: in /lib, or in the ROMFS image with ``--romfs``, where it runs in
place from flash. Compiled on the board instead, it took its bytecode plus
the compiler's working memory out of the heap, and the heap it fragmented
served six downloads only at 176K where the bytecode alone does at 160K
(64-bit unix port); in place, its bytecode takes no heap at all. These few
lines are all the board compiles.
"""

import app

app.start()

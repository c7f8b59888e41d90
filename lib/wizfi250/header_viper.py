"""``header.scan`` in native code, for ports with the viper emitter.

In bytecode that check (three ``find`` calls and a digit loop) takes as long
as all the rest of a frame's parsing; here it is one call of about 0.1 us.
It must accept exactly the headers ``header.scan`` accepts: the tests run
both on the same inputs, and the parser with each.

Where there is no viper, importing this fails (ImportError under CPython,
SyntaxError when a port compiles it, ValueError for a .mpy of another
architecture) and the parser uses ``header.scan``. A .mpy of this file holds
machine code: tools/build.py compiles it with the board's ``-march``.
"""

import micropython


@micropython.viper
def scan(data, i: int, tail: int) -> int:
    # Step by step as header.scan, the byte loops of its finds written out.
    # Every byte read is below ``tail``.
    buf = ptr8(data)  # not a ptr8 argument: callers pass a bytearray, as type checkers see it
    lim = i + 32
    if lim > tail:
        lim = tail
    end = i + 1
    while end < lim and buf[end] != 125:  # '}'
        end += 1
    if end >= lim:
        return -1
    if int(buf[i + 1]) < 48 or int(buf[i + 1]) > 55 or buf[i + 2] != 44:
        return -1
    c2 = i + 3
    while c2 < end and buf[c2] != 44:
        c2 += 1
    if c2 >= end or c2 - i - 3 < 7 or c2 - i - 3 > 15:
        return -1
    c3 = c2 + 1
    while c3 < end and buf[c3] != 44:
        c3 += 1
    if c3 >= end or c3 - c2 - 1 < 1 or c3 - c2 - 1 > 5 or end - c3 - 1 < 1 or end - c3 - 1 > 5:
        return -1
    dots = 0
    run = 0
    k = i + 3
    while k < c2:  # the address: four numbers of 1-3 digits
        c = int(buf[k])
        if c == 46 and run > 0:
            dots += 1
            run = 0
        elif c >= 48 and c <= 57 and run < 3:
            run += 1
        else:
            return -1
        k += 1
    if dots != 3 or run == 0:
        return -1
    k = c2 + 1
    while k < c3:  # the port: digits
        c = int(buf[k])
        if c < 48 or c > 57:
            return -1
        k += 1
    length = 0
    k = c3 + 1
    while k < end:
        c = int(buf[k]) - 48
        if c < 0 or c > 9:
            return -1
        length = length * 10 + c
        k += 1
    if length > 16384:
        return -1
    return (length << 6) | (end - i + 1)

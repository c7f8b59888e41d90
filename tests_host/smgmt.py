"""The module's socket list, as test modules script it: a module of its own, so the
MicroPython cases that never list sockets do not carry it in their small heaps."""


def listing(rows, after=b""):
    """The module's AT+SMGMT=? answer; ``after`` comes between the rows and the [OK]."""
    head = b"Number of Sockets : %d (SCID/Mode/Remote/Local/DataMode)\r\n" % len(rows)
    return head + b"".join(row + b"\r\n" for row in rows) + after + b"[OK]\r\n"

"""A ``Net`` on a scripted module, as the socket-layer cases use it: a module of its own,
so the MicroPython cases that never serve or connect do not carry it in their small heaps."""

from fakeuart import engine_with
from wizfi250.net import Net


def net_with(module, socket_rx=512, **kw):
    """A ``Net`` on ``engine_with``'s engine, the module answering closes, listens and sends."""
    engine, _ = engine_with(module, socket_rx)
    module.replies[b"AT+SMGMT="] = lambda cmd: b"[OK]\r\n\r\n[DISCONNECT %s]\r\n" % cmd[9:]
    # Like the module: the listener goes to the lowest free id.
    module.replies[b"AT+SCON=O,TSN"] = lambda cmd: b"[OK]\r\n\r\n[LISTEN %d]\r\n" % engine.table.index(None)
    module.replies[b"AT+SSEND="] = lambda cmd: b"[%s]\r\n" % cmd[9:]
    return Net(engine, **kw), engine

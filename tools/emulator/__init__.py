"""A WizFi250 emulator: the module's AT protocol on a pty, its sockets on 127.0.0.1.

``core.Module`` is the module as a sans-IO state machine (bytes in, bytes out,
socket actions, time only through ``tick``); ``bridge.Emulator`` runs it on a
pty (and optionally a TCP port) at a paced line rate and bridges its sockets
to real host sockets. See README.md beside this file.

In-process use::

    from emulator import Emulator, Config
    emu = Emulator(Config(baud=0, ports={80: 8080}, control=0))
    await emu.start()   # emu.serial_path, emu.control_port
    ...
    await emu.stop()
"""

from .bridge import Config, Emulator
from .core import Module

__all__ = ("Config", "Emulator", "Module")

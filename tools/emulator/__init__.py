"""A WizFi250 emulator: the module's AT protocol on a pty, its sockets on 127.0.0.1."""

from .bridge import Config, Emulator
from .core import Module

__all__ = ("Config", "Emulator", "Module")

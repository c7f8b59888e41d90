"""WizFi250 / WizFi310 driver: AT engine, sockets and Wi-Fi over a UART.

Import the submodule you need (``from wizfi250.engine import Engine``): on
a board every imported module costs heap, so this file imports nothing.
"""

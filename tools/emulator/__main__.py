"""python -m emulator: start the emulated module and print where it is.

Prints ``serial <pty path>``, ``control <port>`` (with --control) and
``ready``, one per line, then runs until SIGINT or SIGTERM.
"""

import argparse
import asyncio
import signal
import socket
import sys

from .bridge import Config, Emulator


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="emulate", description=__doc__.splitlines()[0])
    p.add_argument("--baud", type=int, default=115200, help="line rate; 0 = unpaced")
    p.add_argument("--flow", action="store_true", help="model RTS/CTS: stop reading the host while the module's ring is full")
    p.add_argument("--map", action="append", default=[], metavar="P:H",
                   help="module port P listens on 127.0.0.1:H (repeatable)")  # fmt: skip
    p.add_argument("--ap", default="WizFiAP:12345678", metavar="SSID:KEY", help="the network that exists")
    p.add_argument("--link", help="make a symlink to the pty here")
    p.add_argument("--tcp-serial", type=int, metavar="PORT", help="also expose the serial side on 127.0.0.1:PORT")
    p.add_argument("--control", type=int, help="JSON-lines control port (0 = any free port)")
    p.add_argument("--transcript", help="log both directions with timestamps to this file")
    p.add_argument("--chaos-inject", action="store_true",
                   help="hold frames and events, release them inside SSENDs and between a scan's SSID bytes")
    p.add_argument("--chaos-ok-delay", type=float, default=0.0, metavar="S", help="delay each SSEND's final line")
    p.add_argument("--chaos-send-error", type=float, default=0.0, metavar="P",
                   help="probability of [TCP Send Error] as an SSEND's final line")  # fmt: skip
    p.add_argument("--chaos-split", action="store_true", help="write output in random small pieces")
    p.add_argument("--seed", type=int)
    return p.parse_args(argv)


def config_from(args):
    ports = {}
    for item in args.map:
        module_port, host_port = item.split(":")
        ports[int(module_port)] = int(host_port)
    ssid, _, key = args.ap.partition(":")
    return Config(
        baud=args.baud, flow=args.flow, tcp_serial=args.tcp_serial, ports=ports, ap=(ssid, key), link=args.link, control=args.control,
        transcript=args.transcript, seed=args.seed, inject=args.chaos_inject,
        ok_delay=args.chaos_ok_delay, send_error=args.chaos_send_error, split=args.chaos_split,
    )  # fmt: skip


def taken(ports):
    """(module port, host port, protocol) for each host port another program holds. A
    mapping serves the module's TCP and UDP sockets alike (tools/run's port 7 is UDP)."""
    busy = []
    for module_port, host_port in sorted(ports.items()):
        for kind, name in ((socket.SOCK_STREAM, "TCP"), (socket.SOCK_DGRAM, "UDP")):
            probe = socket.socket(socket.AF_INET, kind)
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, as the bridge binds
            try:
                probe.bind(("127.0.0.1", host_port))
            except OSError:
                busy.append((module_port, host_port, name))
            finally:
                probe.close()
    return busy


async def main(args):
    config = config_from(args)
    # The module would report the failed listen as [DISCONNECT n] and retry for ever,
    # while clients of that port reach the other program: say so, and stop, here.
    for module_port, host_port, protocol in taken(config.ports):
        sys.exit("emulate: %s 127.0.0.1:%d (for module port %d) is in use by another program" % (protocol, host_port, module_port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    emu = Emulator(config)
    await emu.start()
    print("serial", emu.serial_path, flush=True)
    if emu.control_port is not None:
        print("control", emu.control_port, flush=True)
    if emu.tcp_serial_port is not None:
        print("tcp-serial", emu.tcp_serial_port, flush=True)
    print("ready", flush=True)
    await stop.wait()
    await emu.stop()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))

"""Random frames and events during SSEND, through the engine; CPython and MicroPython.

Seeded here so the MicroPython unix port runs it; ``test_properties.py``
drives ``interleaved_ssend`` from hypothesis under CPython.
"""

import asyncio
import gc

from check import errors
from fakeuart import Module, engine_with, eq, run, settle
from gen import RandomChooser, Script, cutter
from wizfi250 import parser as P
from wizfi250.sockets import TCP


def test_random_interleavings_during_ssend_seeded():
    for seed in range(15):
        run(interleaved_ssend(RandomChooser(seed)))
        gc.collect()  # each seed starts from a clean heap, as a fresh boot would


def test_random_interleavings_while_the_senders_own_reader_waits_seeded():
    for seed in range(8):
        run(interleaved_ssend(RandomChooser(100 + seed), echo=True))
        gc.collect()


LENDABLE = 9 * 128  # the sending socket's ring and the eight it may be lent (socket_rx 128)


async def interleaved_ssend(pick, echo=False):
    """Random frames and socket events before, inside and after an SSEND prompt.

    Every socket incarnation gets exactly its bytes, every event is delivered
    once, in order, after the [OK], and the SSEND succeeds. With ``echo`` the
    sending socket is read only once its send has returned, as an echo's task
    does: up to ``LENDABLE`` bytes for it may land before the [OK], none lost.
    """
    module = Module(cutter(pick))
    engine, events = engine_with(module, socket_rx=128)  # small: frames exercise back-pressure
    created = []
    new_socket = engine._new_socket

    def spy(*args):
        sock = new_socket(*args)
        created.append(sock)
        return sock

    engine._new_socket = spy
    want_bytes = []  # per socket incarnation, in creation order
    current = {}  # sid -> index into want_bytes
    peers = {}  # sid -> (ip, port): a TCP connection's frames all come from its one peer
    want_events = []
    for sid in range(4):
        engine._new_socket(sid, TCP)
        current[sid] = len(want_bytes)
        want_bytes.append(bytearray())
        peers[sid] = Script(pick).peer()
    sending = engine.table[0]

    def item():
        script = Script(pick)
        k = pick.int(0, 3)
        free = [sid for sid in range(8) if sid not in current]
        if k == 0 and free:
            sid = free[pick.int(0, len(free) - 1)]
            current[sid] = len(want_bytes)
            want_bytes.append(bytearray())
            peers[sid] = script.peer()
            want_events.append((P.CONNECT, sid))
            return b"\r\n[CONNECT %d]\r\n" % sid
        if k == 1 and current:
            sid = sorted(current)[pick.int(0, len(current) - 1)]
            del current[sid]
            want_events.append((P.DISCONNECT, sid))
            return b"\r\n[DISCONNECT %d]\r\n" % sid
        if not current:
            return b""
        sid = sorted(current)[pick.int(0, len(current) - 1)]
        if echo and current.get(0) == 0 and pick.int(0, 1):
            sid = 0  # the sender's frames, half of them: enough to fill its ring several times
        data = script.frame_bytes(sid, peers[sid])
        want = want_bytes[current[sid]]
        if echo and current[sid] == 0 and len(want) + len(script.payload[sid]) > LENDABLE:
            return b""  # more than the sender could take while it waits: the UART must hold it
        want += script.payload[sid]
        return data

    def items(count):
        return b"".join([item() for _ in range(count)])

    n = pick.int(1, 200)
    before = items(pick.int(0, 4)) + b"[0,,,%d" % n + items(pick.int(0, 3)) + b"]\r\n"
    module.replies[b"AT+SSEND"] = before
    module.after_payload = items(pick.int(0, 4)) + b"[OK]\r\n"
    got = []
    done = []

    async def drain():
        # The application reads every socket while the send runs, as its handlers would
        # (with ``echo``, the sending one only once its send has returned).
        while not done:
            for i, sock in enumerate(created):
                if i == len(got):
                    got.append(bytearray())
                if sock is None or i == 0 and echo and not sent:
                    continue
                sock.advance()  # as a stream reads: a lent ring once the one before is empty
                if len(sock.rx):
                    got[i] += sock.rx.read()
                elif not sock.open:
                    sock.release()  # read to EOF: hand the ring back, as a handler's close does
                    created[i] = None  # and forget it, as the handler would
            await asyncio.sleep(0)

    sent = False
    reader = asyncio.create_task(drain())
    await engine.ssend(sending, bytes(n))
    sent = True
    await settle()
    for _ in range(100):  # the rest of what the sender's rings took, and what they held back
        if len(got[0]) == len(want_bytes[0]):
            break
        await asyncio.sleep(0.002)
    done.append(True)
    await reader
    # Out of heap, the engine loses the line or frame it was handling (and counts
    # it): a budget problem of the test's interpreter, not a protocol one.
    eq(errors(engine.parser)["no_memory"], 0)
    eq(module.payloads, [bytes(n)])
    eq(events, want_events)
    eq(len(created), len(want_bytes))
    for body, want in zip(got, want_bytes):
        eq(body, want)
    eq((engine.counters["stray"], engine.counters["overflow"]), (0, 0))
    engine.stop()

"""The supervisor's start-up AT+MRESET against the firmware's own timing (CPython only:
the module's clock runs on the event loop). Written by a review of the change, which
failed at first: a module that prints no banner never started, and one closing four
sockets (1.2 s each) was restarted twice."""

import asyncio

from cases_wifi import ok_module, started
from fakeuart import eq, engine_with, run
from wizfi250.net import Net
from wizfi250.supervisor import Supervisor
from wizfi250.wifi import WiFi

BANNER = b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n"


def firmware_like(module, open_sockets):
    """AT+MRESET as 1.0.5.2 runs it (wx_s2w_process.c WXS2w_SystemReset): [OK], then
    SMGMT=ALL (WXNetwork_CloseSCAllList: 100 ms, plus 1100 ms per socket with FSOCK
    option 9, which the driver itself sets and the module keeps across a board reset),
    WLEAVE, 500 ms, reset, a boot (0.3 s here). Bytes that arrive meanwhile are wiped."""
    state = {"busy": False, "sockets": open_sockets, "mresets": 0}
    loop = asyncio.get_event_loop()

    def mreset(cmd):
        if state["busy"]:
            return b""  # in the UART ring the reset wipes
        state["mresets"] += 1
        state["busy"] = True
        t = 0.0
        for sid in range(state["sockets"]):
            t += 1.2
            loop.call_later(t, module.uart.emit, b"\r\n[DISCONNECT %d]\r\n" % sid)
        state["sockets"] = 0

        def boot():
            state["busy"] = False
            module.uart.emit(BANNER)

        loop.call_later(t + 0.5 + 0.3, boot)
        return b"[OK]\r\n"

    real = module.on_write

    def on_write(data):
        if state["busy"] and not data.startswith(b"AT+MRESET"):
            module.commands.append(data.rstrip(b"\r"))
            return  # the module is closing sockets / rebooting: nothing is answered
        real(data)

    module.uart.on_write = on_write
    module.replies[b"AT+MRESET"] = mreset
    return state


def test_board_restart_with_four_sockets_open_starts_without_a_failed_init(capsys):
    async def main():
        module = ok_module()
        state = firmware_like(module, 4)  # listener, UDP echo, two browser connections
        engine, events = engine_with(module)
        sup = Supervisor(Net(engine), WiFi(engine), join=("station", "MyAP", "secret99", ""))
        task = asyncio.create_task(sup.run())
        for _ in range(150):
            if sup.state == "up":
                break
            await asyncio.sleep(0.1)
        out = capsys.readouterr().out
        task.cancel()
        engine.stop()
        # Expected: one restart of the module, no failure on the console.
        eq((sup.state, state["mresets"], engine.counters["resets"], out), ("up", 1, 1, ""))

    run(main())


def test_a_module_that_prints_no_banner_is_still_started():
    # AT+MEVTFORM's position a (the banner) set to 0 (or 2, short form "[0]") and saved
    # with AT+MPROF=S: the module restarts on AT+MRESET but prints no banner line. The
    # reference (2.4): wait for the banner with a 3-5 s timeout, then send AT until [OK].
    async def main():
        module = ok_module()
        module.replies[b"AT+MRESET"] = b"[OK]\r\n"  # then a silent reset; afterwards AT answers
        engine, events = engine_with(module)
        sup = Supervisor(Net(engine), WiFi(engine), join=("station", "MyAP", "secret99", ""))
        task = asyncio.create_task(sup.run())
        for _ in range(90):
            if sup.state == "up":
                break
            await asyncio.sleep(0.1)
        state = (sup.state, module.commands.count(b"AT+MRESET"))
        task.cancel()
        engine.stop()
        eq(state, ("up", 1))

    run(main())


def test_banner_before_ok_and_module_already_booting_are_sound():
    async def main():
        module = ok_module()
        # the [OK] lost, only the banner: taken as done
        module.replies[b"AT+MRESET"] = BANNER + b"[OK]\r\n"
        engine, events = engine_with(module)
        await engine.init(restart=True)
        eq((engine.counters["resets"], engine.restarting), (1, False))
        # a power-on banner while AT+MRESET goes unanswered (the module still booting)
        module.replies[b"AT+MRESET"] = b""
        asyncio.get_event_loop().call_later(0.3, module.uart.emit, BANNER)
        await engine.init(restart=True)
        eq((engine.counters["resets"], engine.restarting), (2, False))
        engine.stop()

    run(main())

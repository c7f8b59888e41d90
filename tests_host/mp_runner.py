"""Run the portable core tests under MicroPython and report each one.

    cd build/mp && MICROPYPATH=.frozen:. micropython -X heapsize=64K -m mp_runner cases_parser [test ...]

(with the driver and these modules compiled to .mpy in build/mp: compiling
the sources themselves would not fit in 64 KB). ``--circuitpython`` first
takes CircuitPython's path through the driver (its asyncio library must come
first on MICROPYPATH; see test_micropython.py).

Prints ``PASS name`` or ``FAIL name: error`` per test, then a summary line;
exits 1 if any failed. ``test_micropython.py`` runs this from pytest.
"""

import gc
import sys


def main(module, names):
    cases = __import__(module)
    tests = sorted(n for n in dir(cases) if n.startswith("test_") and (not names or n in names))
    failed = 0
    for name in tests:
        gc.collect()
        try:
            getattr(cases, name)()
            print("PASS", name)
        except Exception as e:  # report and go on: every test gets its line
            failed += 1
            print("FAIL %s: %s %r" % (name, type(e).__name__, e.args))
            sys.print_exception(e)
        # CPython's asyncio.run cancels the tasks a test leaves running (a supervisor, a
        # server's accept loop); MicroPython's keeps them queued, and the next test's
        # loop ran them on with their heap (8-11 KB each, after seven tests). A new
        # loop drops them. The loop object is one for good, with the exception handler
        # a test set: put the default back, or a later test's errors go to a dead list.
        aio = sys.modules.get("asyncio")
        if aio:
            aio.new_event_loop().set_exception_handler(None)
    print("micropython %s: %d passed, %d failed" % (module, len(tests) - failed, failed))
    sys.exit(1 if failed else 0)


args = sys.argv[1:]
if args[0] == "--circuitpython":
    # compat.py picks by sys.implementation.name, which is "micropython" here: on
    # CircuitPython a wait is its asyncio's Event.wait, not MicroPython's internals.
    import wizfi250.compat

    wizfi250.compat._core = None
    args = args[1:]
main(args[0], args[1:])

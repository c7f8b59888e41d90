"""Keeps the module in service without the application restarting.

It starts by restarting the module (``AT+MRESET``), which may have kept
running while the board restarted (see ``Engine.init``).
A boot banner or ``[Reset Event]`` means the module restarted: the engine
has already failed every waiter and ended every socket; here the module
is set up again, the network re-joined and every server re-opened. A
``[Link-Down Event]`` means the network went away: re-join with backoff.
After a command timed out, the next probe compares the socket table with
the module's own list (``resync_table``). A UART that stays silent is
probed with ``AT``; a module that does not answer three probes is treated
as reset, and one that does is asked for its link (``WiFi.status``): a
Link-Down lost to line noise would leave the network down for good. Once
the driver itself is stopped (``ECONNABORTED``) ``run`` ends: retrying
could only spin.
"""

import asyncio

from . import parser as P
from .compat import const, sleep_ms, ticks_diff, ticks_ms
from .engine import ECONNABORTED

_RETRY_MS = const(100)  # how soon a wait that found no heap is made again


class Supervisor:
    def __init__(self, net, wifi, join=None, probe_ms=10000, max_backoff_ms=30000, restart=True):
        self.net = net
        self.engine = net.engine
        self.wifi = wifi
        self.join = join  # ("station", ssid, key, security) or ("ap", ssid, key), or None
        self.probe_ms = probe_ms
        self.max_backoff_ms = max_backoff_ms
        self.recoveries = 0
        self.state = "starting"
        self._need = asyncio.Event()
        self._reinit = True
        self._restart = restart  # the first init restarts the module: a clean start (Engine.init)
        self._timeouts = 0
        net.listeners.append(self._event)

    def _event(self, kind, arg):
        if kind == P.BANNER or kind == P.RESET:
            self._reinit = True
            self._need.set()
        elif kind == P.LINK_DOWN:
            self._need.set()

    async def run(self):
        """The supervisor task: start the module, then restore it whenever needed."""
        self._need.set()
        while True:
            try:
                await asyncio.wait_for(self._need.wait(), self.probe_ms / 1000)
            except asyncio.TimeoutError:
                try:
                    await self._probe()
                except MemoryError:
                    pass  # no heap for it now (downloads hold it): the next probe tries again
                continue
            except MemoryError:
                # No heap for the wait itself (wait_for makes a task): look again soon. Let
                # out, it ended this task, and nothing restored the module or rejoined after.
                await sleep_ms(_RETRY_MS)
                continue
            self._need.clear()
            await self._restore()

    async def _probe(self):
        engine = self.engine
        timeouts = engine.counters["timeouts"]
        if timeouts != self._timeouts and not engine.restarting:
            # A command timed out since the last look: events may have been missed with
            # it (a [CONNECT n] after its SCON gave up, which the server took for a
            # browser), so take the module's own word for its sockets, even while the
            # UART is busy: a web server's may never be silent. Counted before: one
            # that times out while this waits for its turn gets a look of its own.
            self._timeouts = timeouts
            try:
                await engine.resync_table()
            except OSError:
                pass  # no answer: a silent module is probed below
        if ticks_diff(ticks_ms(), engine.last_rx) < self.probe_ms:
            return  # the module spoke recently: it is alive
        for _ in range(3):
            try:
                await engine.command(b"AT", 1000)
            except OSError:
                if engine.restarting:
                    return  # a restart was seen meanwhile: its event asked for the restore
                continue
            if self.join is not None:
                # Quiet: perhaps its link is down and the Link-Down was lost to line
                # noise. status() tells the engine, and so this, if it is.
                try:
                    await self.wifi.status()
                except OSError:
                    pass  # it answered AT: alive, whatever this answer was
            return
        engine.lost("module silent")
        self._reinit = True
        self._need.set()

    async def _restore(self):
        backoff = 1000
        while True:
            try:
                if self._reinit:
                    self.state = "initialising"
                    restart, self._restart = self._restart, False  # once: a retry must not restart it again
                    resets = self.engine.counters["resets"] + restart  # its AT+MRESET's banner counts one
                    await self.engine.init(restart)
                    # A restart beyond the one init asked for may have left the module half
                    # set up: again. Else the events of this one are answered: no second pass.
                    self._reinit = self.engine.counters["resets"] > resets
                    if not self._reinit:
                        self._need.clear()
                if self.join is not None and self.engine.wifi["state"] != "up":
                    self.state = "joining " + self.join[1]
                    if self.join[0] == "ap":
                        await self.wifi.soft_ap(self.join[1], self.join[2])
                    else:
                        await self.wifi.join(*self.join[1:])
                listener = self.engine.listener()
                for server in self.net.servers:
                    if listener is None or listener.local_port != server.port:
                        await server.reopen()
                self.state = "up"
                self.recoveries += 1
                return
            except (OSError, MemoryError) as e:  # no heap now is no reason to give up for good
                if isinstance(e, OSError) and e.args and e.args[0] == ECONNABORTED:
                    self.state = "stopped"
                    raise  # the driver is stopped: no retry can succeed
                # On the console too: a wrong key in the configuration showed nowhere but
                # in a UART transcript, while the site stayed silent.
                print("wizfi250: %s failed (%s), again in %d s" % (self.state, e.args[-1] if e.args else type(e).__name__, backoff // 1000))
                self.state = "retrying: %r" % (e,)
                await asyncio.sleep(backoff / 1000)
                backoff = min(backoff * 2, self.max_backoff_ms)

"""Ring buffer and parser tests that run unchanged under CPython and MicroPython.

No pytest import here: ``test_core.py`` collects these for pytest and
``mp_runner.py`` runs them under the MicroPython unix port with a small heap.
"""


from check import eq, errors
from gen import MAX_ITEMS, RandomChooser, Script, chunks, cutter
from wizfi250 import header
from wizfi250 import parser as P
from wizfi250.ring import Ring


class Output(Script):
    """Every kind of line the module prints, with frames inside lines and prompts.

    Here rather than in gen.py: the engine tests do not need it, and under
    MicroPython every imported function costs heap.
    """

    def line(self, text, kind, arg=None, event=False, splittable=True):
        """A line, maybe with frames inserted at random positions inside it."""
        raw = (b"\r\n" if event else b"") + text + b"\r\n"
        if splittable and self.pick.int(0, 3) == 0:
            at = self.pick.int(0, len(raw))
            raw = raw[:at] + self.frame_bytes() + raw[at:]
        self.out.append(raw)
        self.lines.append((kind, arg, text))

    def prompt(self, sid, n):
        """The SSEND prompt, printed in two calls: frames or events may land between."""
        text = b"[%d,,,%d]" % (sid, n)
        at = len(self.lines)
        self.out.append(text[:-1])
        split = False  # an event ends the first half's line: its ']' comes alone later
        for _ in range(self.pick.int(0, 2)):
            if self.pick.int(0, 1):
                self.frame()
            else:
                self.event()
                split = True
        self.out.append(b"]\r\n")
        self.lines.insert(at, (P.PROMPT, (sid, n), text[:-1] if split else text))

    def event(self):
        pick = self.pick
        k = pick.int(0, 4)
        if k < 3:
            kind, name = ((P.CONNECT, b"CONNECT"), (P.DISCONNECT, b"DISCONNECT"), (P.LISTEN, b"LISTEN"))[k]
            sid = pick.int(0, 7)
            self.line(b"[%s %d]" % (name, sid), kind, sid, event=True, splittable=False)
        elif k == 3:
            self.line(b"[Link-Down Event]", P.LINK_DOWN, event=True, splittable=False)
        else:
            ip = "10.%d.0.%d" % (pick.int(0, 255), pick.int(1, 254))
            self.line(b"[Link-Up Event]", P.LINK_UP, event=True, splittable=False)
            self.line(b"  IP Addr    : " + ip.encode(), P.IP_ADDR, ip)
            self.line(b"  Gateway    : 10.0.0.1", P.GATEWAY, "10.0.0.1")

    def anything(self):
        """One random message of any kind the module prints in command mode."""
        pick = self.pick
        k = pick.int(0, 9)
        if k <= 2:
            self.frame()
        elif k == 3:
            self.event()
        elif k == 4:
            text = (b"[OK]", b"[ERROR]", b"[ERROR: INVALID INPUT]")[pick.int(0, 2)]
            self.line(text, P.OK if text == b"[OK]" else P.ERROR)
        elif k == 5:
            self.line(b"STA/MyAP/10.0.0.5/10.0.0.1/00:08:DC:11:22:33/31/45", P.INFO)
        elif k == 6:
            self.line(b"%d/TCN/10.0.0.2:%d/30412/0" % (pick.int(0, 7), pick.int(1, 65535)), P.INFO)
        elif k == 7:
            self.prompt(pick.int(0, 7), pick.int(1, 1400))
        elif k == 8:
            self.line(b"Joining : MyAP", P.JOIN)
        else:
            self.line(b"[TCP Send Error]", P.SEND_ERROR, event=True, splittable=False)


class Recorder:
    """Parser sink that keeps everything, and can refuse payload to test back-pressure."""

    def __init__(self, room=-1):
        self.lines = []
        self.frames = []
        self.payload = {}
        self.errors = []
        self.room = room  # bytes of payload accepted before refusing; -1: unlimited
        self.parser = None

    def line(self, kind, arg, text):
        self.lines.append((kind, arg, text))

    def frame(self, sid, length):
        self.frames.append((sid, length))
        if sid not in self.payload:
            self.payload[sid] = bytearray()
        self.sid = sid
        return self

    def write(self, mv, start, end):
        n = end - start
        if self.room >= 0:
            n = min(n, self.room)
            self.room -= n
        self.payload[self.sid] += mv[start : start + n]
        return n

    def error(self, code, text):
        self.errors.append((code, text))


def parse_all(data, cut=None, max_line=256, size=512):
    rec = Recorder()
    parser = P.Parser(rec, size, max_line)
    for piece in chunks(data, cut or (lambda n: n)):
        assert parser.feed(piece) == len(piece)
    return rec, parser


def kinds(rec):
    return [k for k, a, t in rec.lines]


CUTS = (lambda n: 1, lambda n: 2, lambda n: 3, lambda n: 7, lambda n: n)

# --- ring buffer ---------------------------------------------------------------


def test_ring_keeps_order_across_compaction():
    ring = Ring(16)
    out = bytearray()
    src = bytes(range(100))
    i = 0
    while len(out) < len(src):
        i += ring.write(src, i, min(len(src), i + 5))
        out += ring.read(3)
    eq(bytes(out), src)


def test_ring_readinto_space_commit():
    ring = Ring(8)
    space = ring.space()
    space[:7] = b"hello!!"
    ring.commit(7)
    eq(ring.find(b"l"), 2)
    dst = bytearray(3)
    eq(ring.readinto(dst), 3)
    eq(bytes(dst), b"hel")
    eq(len(ring.space()), 4)  # compacted: the 4 unread bytes moved to the front
    eq(ring.read(), b"lo!!")


# --- header check ---------------------------------------------------------------

HEADERS = (  # a header, and the payload length its check must find (-1: not a header)
    (b"{0,192.168.10.23,50000,1400}", 1400),
    (b"{7,255.255.255.255,65535,16384}", 16384),  # the longest: 31 bytes, the largest length
    (b"{3,1.2.3.4,5,0}", 0),
    (b"{3,1.2.3.4,5,00012}", 12),
    (b"{8,1.2.3.4,5,6}", -1),  # socket ids are 0-7
    (b"{0;1.2.3.4,5,6}", -1),
    (b"{0,1.2.3.,5,6}", -1),  # an address of 6 bytes
    (b"{0,10.2.3.4.5.6.7.8,5,6}", -1),  # and of 16
    (b"{0,1.2.3.4,,6}", -1),
    (b"{0,1.2.3.4,123456,6}", -1),
    (b"{0,1.2.3.4,5,}", -1),
    (b"{0,1.2.3.4,5,123456}", -1),
    (b"{0,1.2.3.4,5,16385}", -1),
    (b"{0,1.2.3.4,5,6,7}", -1),
    (b"{0,1.2.3.4,5,+6}", -1),  # what int() would take but a header does not have
    (b"{0,1.2.3.4,5, 6}", -1),
    (b"{0,1.2.3.4,5,1_0}", -1),
    (b"{0,1.2.3.4,5,6x}", -1),
    (b"{0,255.255.255.255,65535,0016384}", -1),  # the '}' comes too late
    (b"{0,1.2.3.4x,5,6}", -1),  # the address and port are what "%d.%d.%d.%d,%d" prints
    (b"{0,\xff\xfe\xfd\xfc\xfb\xfa\xf9,5,6}", -1),
    (b"{0,1.2.3.4,8a,6}", -1),
    (b"{0,1.2.3.4,8.0,6}", -1),
    (b"{0,.......,0,505}", -1),
    (b"{0,1.2.3..4,5,6}", -1),
    (b"{0,1.2.3.4.,5,6}", -1),
    (b"{0,1.2.3.1234,5,6}", -1),
    (b"{0,1.2.3,5,6}", -1),
)


def test_the_header_check_takes_exactly_the_valid_headers():
    for text, length in HEADERS:
        buf = bytearray(b"{0,1" + text + b"},0}" * 2)  # bytes past tail must not count
        at, tail = 4, 4 + len(text)
        seen = header.new_seen()
        want = -1 if length < 0 else length << 6 | len(text)
        eq((text, header.scan(buf, at, tail, seen)), (text, want))
        for cut in range(at, tail):
            eq((text, cut, header.scan(buf, at, cut, seen)), (text, cut, -1))  # not whole yet


def test_a_header_one_byte_off_the_last_valid_one_is_checked_afresh():
    # The parser takes a header equal to its socket's last valid one on sight:
    # that shortcut must never change what a header after it is read as.
    good = b"{0,192.168.10.23,50000,14}"
    frame = good + b"x" * 14 + b"\r\n"
    for k in range(2, len(good) - 1):
        for c in b".,x0\xff":
            bad = bytearray(good)
            bad[k] = c
            after = bytes(bad) + b"ab\r\n[OK]\r\n"
            fresh, _ = parse_all(after)
            rec, _ = parse_all(frame + after)
            eq((bytes(bad), rec.frames[1:], rec.lines, rec.errors), (bytes(bad), fresh.frames, fresh.lines, fresh.errors))


def test_a_known_header_cut_short_waits_for_its_end():
    # Bytes past the received ones may still hold the previous frame's header.
    frame = b"{3,10.0.0.2,80,5}hello\r\n"
    for cut in range(1, len(frame)):
        rec, _ = parse_all(frame * 3, lambda n: cut)
        eq((cut, rec.frames, bytes(rec.payload[3]), rec.errors), (cut, [(3, 5)] * 3, b"hello" * 3, []))


# --- parser: every form in the protocol reference --------------------------------


def test_final_responses():
    for cut in CUTS:
        rec, _ = parse_all(
            b"[OK]\r\n[ERROR]\r\n[ERROR: INVALID INPUT]\r\n[ERROR: INVALID SCID]\r\n"
            b"[ERROR: WiFi Status]\r\n[ERROR: Mode Status]\r\n\r\n[TCP Send Error]\r\n",
            cut,
        )
        eq(kinds(rec), [P.OK, P.ERROR, P.ERROR, P.ERROR, P.ERROR, P.ERROR, P.SEND_ERROR])
        eq(rec.lines[2][2], b"[ERROR: INVALID INPUT]")


def test_events_and_boot_banner():
    data = (
        b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n\r\n[Reset Event]\r\n"
        b"Joining : MyAP\r\nSuccessfully joined : MyAP\r\nFailed to join: MyAP\r\n"
        b"\r\n[Link-Up Event]\r\n  IP Addr    : 192.168.12.10\r\n  Gateway    : 192.168.12.1\r\n"
        b"\r\n[CONNECT 3]\r\n\r\n[DISCONNECT 7]\r\n\r\n[LISTEN 0]\r\n\r\n[Link-Down Event]\r\n"
        b"\r\n[P2P Fail Event]\r\n"
    )
    for cut in CUTS:
        rec, parser = parse_all(data, cut)
        eq(kinds(rec), [P.BANNER, P.RESET, P.JOIN, P.JOIN, P.JOIN, P.LINK_UP, P.IP_ADDR, P.GATEWAY,
                        P.CONNECT, P.DISCONNECT, P.LISTEN, P.LINK_DOWN, P.UNKNOWN])  # fmt: skip
        eq(rec.lines[6][1], "192.168.12.10")
        eq(rec.lines[7][1], "192.168.12.1")
        eq([a for k, a, t in rec.lines[8:11]], [3, 7, 0])
        eq(errors(parser)["unknown_line"], 1)  # [P2P Fail Event] is reported, not hidden


def test_a_banner_behind_what_the_restart_cut_short_is_still_a_banner():
    # A line, a stray byte, the first half of a split prompt: the restart went unnoticed.
    banner = b"WizFi250 Version 1.0.5.2 (WIZnet Co.Ltd)\r\n"
    for before in (b"Number of Sockets : 1 (SCID/Mo", b"\x00", b"[0,,,5{1,10.0.0.1,80,3}abc\r\n"):
        for cut in CUTS:
            rec, parser = parse_all(before + banner + b"[OK]\r\n", cut)
            eq((kinds(rec), errors(parser)["unknown_line"]), ([P.BANNER, P.OK], 0))
    rec, parser = parse_all(b"001/WizFi250 Version 2/00:11:22:33:44:55/-45/72.2/Infra/Open/2.4/6\r\n")
    eq(kinds(rec), [P.INFO])  # a scan row naming such a network is no restart


def test_an_event_with_an_id_the_module_never_prints_is_reported_not_taken():
    # The module prints ids 0-7 with %x: anything else in an event's place is not one,
    # and taking it would open, close or move a listener on the wrong socket.
    bad = (b"[CONNECT 8]", b"[CONNECT 10]", b"[CONNECT ]", b"[CONNECT x]", b"[DISCONNECT a]",
           b"[LISTEN 01]", b"[CONNECT 1)", b"[CONNECTS1]", b"[DISCONNECT  2]")  # fmt: skip
    data = b"".join(b"\r\n" + line + b"\r\n" for line in bad) + b"\r\n[DISCONNECT 0]\r\n\r\n[LISTEN 7]\r\n"
    for cut in CUTS:
        rec, parser = parse_all(data, cut)
        eq([(k, a, t) for k, a, t in rec.lines if k != P.UNKNOWN], [(P.DISCONNECT, 0, b"[DISCONNECT 0]"), (P.LISTEN, 7, b"[LISTEN 7]")])
        eq([t for k, a, t in rec.lines if k == P.UNKNOWN], list(bad))
        eq(errors(parser)["unknown_line"], len(bad))


def test_ssend_prompt_forms():
    rec, _ = parse_all(b"[0,,,5]\r\n[3,10.0.0.2,5000,1400]\r\n[1,,,20,3000]\r\n")
    eq([(k, a) for k, a, t in rec.lines], [(P.PROMPT, (0, 5)), (P.PROMPT, (3, 1400)), (P.PROMPT, (1, 20))])


def test_command_output_is_info():
    rec, _ = parse_all(
        b"IF/SSID/IP-Addr/Gateway/MAC/TxPower(dBm)/RSSI(-dBm)\r\n"
        b"STA/MyAP/192.168.1.23/192.168.1.1/00:08:DC:11:22:33/31/45\r\n"
        b"Number of Sockets : 1 (SCID/Mode/Remote/Local/DataMode)\r\n0/TCN/192.168.12.23:5000/30412/0\r\n"
        b"[OK]\r\n"
    )
    eq(kinds(rec), [P.INFO, P.INFO, P.INFO, P.INFO, P.OK])


def test_frame_payload_is_binary_and_counted():
    body = b"[OK]\r\n{0,1.2.3.4,5,6}\x00\xff\r{"
    data = b"{0,192.168.12.23,5000,%d}" % len(body) + body + b"\r\n[OK]\r\n"
    for cut in CUTS:
        rec, _ = parse_all(data, cut)
        eq(rec.frames, [(0, len(body))])
        eq(bytes(rec.payload[0]), body)
        eq(kinds(rec), [P.OK])


def test_empty_frame():
    rec, _ = parse_all(b"{2,10.0.0.1,80,0}\r\n[OK]\r\n")
    eq(rec.frames, [(2, 0)])
    eq(kinds(rec), [P.OK])


def test_frame_inside_a_line_and_inside_the_prompt():
    frame = b"{1,10.0.0.7,40000,3}abc\r\n"
    data = b"STA/My" + frame + b"AP/1.2.3.4\r\n[0,,,5" + frame + b"]\r\n[0,,,6\r\n[CONNECT 2]\r\n]\r\n"
    for cut in CUTS:
        rec, _ = parse_all(data, cut)
        eq(bytes(rec.payload[1]), b"abcabc")
        eq(rec.lines, [(P.INFO, None, b"STA/MyAP/1.2.3.4"), (P.PROMPT, (0, 5), b"[0,,,5]"),
                       (P.PROMPT, (0, 6), b"[0,,,6"), (P.CONNECT, 2, b"[CONNECT 2]")])  # fmt: skip


def test_a_cut_frame_ends_the_line_it_interrupted():
    # The engine cuts a frame whose bytes stopped coming. The line it interrupted was then
    # glued to the next one: a scan row's "001/" hid the "[OK]" after it.
    for cut in CUTS:
        rec, parser = parse_all(b"001/{1,6.6.6.6,6,1400}x", cut)
        eq(parser.cut(), 1399)
        parser.feed(b"[OK]\r\n")
        eq((rec.lines, errors(parser)["cut_frame"]), ([(P.INFO, None, b"001/"), (P.OK, None, b"[OK]")], 1))


def test_a_header_the_sink_refuses_is_line_text_and_what_follows_it_is_parsed():
    # The sink knows more than the bytes: a TCP socket's frames all come from its one peer.
    class Refusing(Recorder):
        def frame(self, sid, length):
            return None if self.parser.frame_peer() == ("6.6.6.6", 6) else Recorder.frame(self, sid, length)

    frame = b"{1,10.0.0.7,40000,3}abc\r\n"
    fake = b"{1,6.6.6.6,6,4}EVIL"
    data = b"001/" + fake + b"/00:11:22:33:44:55/-45\r\n" + fake + b"\r\n" + frame + b"[OK]\r\n"
    for cut in CUTS:
        rec = Refusing()
        parser = rec.parser = P.Parser(rec, 512, 256)
        for piece in chunks(data, cut):
            assert parser.feed(piece) == len(piece)
        eq(bytes(rec.payload[1]), b"abc")
        eq([t for k, a, t in rec.lines], [b"001/" + fake + b"/00:11:22:33:44:55/-45", fake, b"[OK]"])
        eq((rec.errors, errors(parser)["bad_header"]), ([], 0))


def test_garbage_bad_headers_and_overlong_lines_lose_nothing_after_them():
    data = (
        b"\xff\xfe garbage\r\n{9,1.2.3.4,5,3}xyz\r\n{0,1.2.3.4,5,99999}\r\n{0,1.2.3.4,5,-1}\r\n"
        + b"A" * 600 + b"\r\n"
        + b"{0,1.2.3.4,5,4}data\r\n[OK]\r\n"
    )  # fmt: skip
    for cut in CUTS:
        rec, parser = parse_all(data, cut)
        eq(bytes(rec.payload[0]), b"data")
        eq(kinds(rec)[-1], P.OK)
        eq(errors(parser)["bad_header"], 3)
        eq(errors(parser)["overlong"], 1)


def test_a_line_of_exactly_max_line_is_kept_wherever_a_read_ends():
    # Split between its CR and LF, the line counted its CR and was dropped as overlong.
    line = b"I" * 256
    for cut in CUTS + (lambda n: 257,):
        rec, parser = parse_all(line + b"\r\n" + b"J" * 257 + b"\r\n[OK]\r\n", cut)
        eq((rec.lines[0][2], errors(parser)["overlong"], kinds(rec)), (line, 1, [P.INFO, P.OK]))
        rec, parser = parse_all(line + b"\r{0,1.2.3.4,5,2}ab\r\n\n[OK]\r\n", cut)  # a frame between CR and LF
        eq((rec.lines[0][2], errors(parser)["overlong"], kinds(rec)), (line, 0, [P.INFO, P.OK]))


def test_missing_trailer_is_reported_and_parsing_resumes():
    rec, parser = parse_all(b"{0,1.2.3.4,5,2}abXY[OK]\r\n")
    eq(bytes(rec.payload[0]), b"ab")
    eq(errors(parser)["bad_trailer"], 1)
    eq(rec.lines[-1][0], P.INFO)  # 'XY[OK]' is not mistaken for [OK]


class HeapRunsOut(Recorder):
    """A sink that finds no heap for the ``n``-th line and the ``n``-th frame."""

    def __init__(self, n):
        super().__init__()
        self.n = n
        self.calls = {"line": 0, "frame": 0}

    def _fail(self, name):
        self.calls[name] += 1
        if self.calls[name] == self.n:
            raise MemoryError

    def line(self, kind, arg, text):
        self._fail("line")
        super().line(kind, arg, text)

    def frame(self, sid, length):
        self._fail("frame")
        return super().frame(sid, length)


def test_a_line_or_frame_without_heap_is_lost_alone():
    # The lost frame's payload holds line-like text: it must be skipped by its length.
    data = (b"[CONNECT 1]\r\n{1,1.2.3.4,5,6}[OK]\r\n\r\n{1,1.2.3.4,5,4}abcd\r\n"
            b"[CONNECT 2]\r\n{2,1.2.3.4,5,4}efgh\r\n[OK]\r\n")  # fmt: skip
    for cut in CUTS:
        rec = HeapRunsOut(2)
        parser = P.Parser(rec, 64, 24)
        for piece in chunks(data, cut):
            eq(parser.feed(piece), len(piece))
        eq(rec.lines, [(P.CONNECT, 1, b"[CONNECT 1]"), (P.OK, None, b"[OK]")])  # [CONNECT 2] had no heap
        eq(rec.frames, [(1, 6), (2, 4)])  # the second frame had no heap
        eq((bytes(rec.payload[1]), bytes(rec.payload[2])), (b"[OK]\r\n", b"efgh"))
        eq(errors(parser)["no_memory"], 2)


def test_a_buffer_too_small_for_a_line_is_refused():
    # It would fill with a line still short of max_line, and the reader would spin.
    try:
        P.Parser(Recorder(), 256, 256)
    except ValueError:
        return
    raise AssertionError("no ValueError")


def test_a_long_line_with_a_header_cut_at_the_buffer_end_does_not_fill_it():
    # 229 bytes of a line, then a header that only the bytes after a full buffer
    # would complete: the line is overlong already, so it must go (reported) and
    # the buffer keep only the header, or it fills and the reader spins on it.
    # (A 256-byte buffer for 200-byte lines, as the engine tests use.)
    frame = b"{0,192.168.100.200,50000,00003}abc\r\n\r\n[OK]\r\n"  # 31-byte header, the longest
    # The line is 229 bytes, or 485: one full buffer already dropped as overlong.
    for data in (b"x" * 229 + frame, b"x" * 485 + frame):
        for size in (199, len(data)):  # the first read ends inside the line, or nowhere
            rec = Recorder()
            parser = P.Parser(rec, 256, 200)
            taken = took = parser.feed(data[:size])
            while took and taken < len(data):  # as the reader: what fits, until nothing does
                took = parser.feed(data[taken:])
                taken += took
            eq(taken, len(data))
            eq(bytes(rec.payload[0]), b"abc")
            eq(rec.lines[-1][0], P.OK)
            eq(errors(parser)["overlong"], 1)


def test_full_payload_target_pauses_the_parser():
    rec = Recorder(room=3)
    parser = P.Parser(rec, 64, 24)
    data = b"{0,1.2.3.4,5,8}abcdefgh\r\n[OK]\r\n"
    eq(parser.feed(data), len(data))
    eq(bytes(rec.payload[0]), b"abc")
    eq(kinds(rec), [])  # nothing after the paused payload is parsed yet
    rec.room = -1
    assert parser.parse()
    eq(bytes(rec.payload[0]), b"abcdefgh")
    eq(kinds(rec), [P.OK])


def test_random_module_output_seeded():
    """The hypothesis property, with seeded randomness, so MicroPython runs it too."""
    for seed in range(25):
        random_output(RandomChooser(seed))


def random_output(pick):
    """Random valid output, cut at random byte boundaries, parses to exactly its messages."""
    script = Output(pick)
    for _ in range(pick.int(1, MAX_ITEMS)):
        script.anything()
    rec, parser = parse_all(script.data(), cutter(pick))
    eq(rec.lines, script.lines)
    eq(rec.frames, script.frames)
    for sid, body in script.payload.items():
        eq(rec.payload[sid], body)
    eq(errors(parser)["bad_header"] + errors(parser)["overlong"] + errors(parser)["bad_trailer"], 0)

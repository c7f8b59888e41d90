"""The UART transcript: bounded, in order, whole chunks; CPython and MicroPython."""

import gc

from fakeuart import FakeUART, Module, eq, run, settle
from wizfi250.engine import Engine
from wizfi250.transcript import FROM_MODULE, TO_MODULE, Recording, Transcript


def test_transcript_keeps_the_newest_whole_chunks_in_order_within_its_size():
    t = Transcript(100)
    for i in range(40):
        t.record(FROM_MODULE if i % 2 else TO_MODULE, b"chunk %02d" % i, 8)  # 15 bytes with its header
    chunks = list(t.chunks())
    eq([data for _, _, data in chunks], [b"chunk %02d" % i for i in range(34, 40)])  # 6 * 15 fit in 100
    eq([d for d, _, _ in chunks], [TO_MODULE, FROM_MODULE] * 3)
    assert t.used <= 100


def test_a_chunk_across_the_end_of_the_ring_comes_back_whole():
    t = Transcript(64)
    for i in range(7):  # offsets move by 7 + 13: chunks straddle the end
        t.record(FROM_MODULE, bytearray(b"%02d-abcdefghij" % i), 13)
        eq(list(t.chunks())[-1][2], b"%02d-abcdefghij" % i)


def test_a_chunk_bigger_than_the_ring_keeps_its_end():
    t = Transcript(32)
    t.record(TO_MODULE, b"old", 3)
    data = bytes(range(100))
    t.record(FROM_MODULE, memoryview(data), 100)
    eq([(d, x) for d, _, x in t.chunks()], [(FROM_MODULE, data[-25:])])


def test_lines_are_the_emulator_format():
    t = Transcript(1024)
    t.record(TO_MODULE, b"AT\r", 3)
    t.record(FROM_MODULE, b"\r\n[OK]\r\n", 8)
    lines = list(t.lines())
    eq([line.split(" ", 1)[1] for line in lines], ["> b'AT\\r'\n", "< b'\\r\\n[OK]\\r\\n'\n"])
    for line in lines:
        seconds = line.split(" ", 1)[0]
        assert seconds.replace(".", "", 1).isdigit(), line


def _allocated_per_record(t, data):
    from micropython import mem_total

    t.record(FROM_MODULE, data, len(data))
    gc.collect()
    before = mem_total()
    for _ in range(20):
        t.record(FROM_MODULE, data, len(data))
    return (mem_total() - before) // 20


def test_recording_allocates_per_chunk_not_per_byte():
    try:
        import micropython  # noqa: F401
    except ImportError:
        return  # CPython: nothing to measure; the MicroPython run is the one that counts
    t = Transcript(4096)
    small = _allocated_per_record(t, bytearray(10))
    big = _allocated_per_record(t, bytearray(2000))
    assert big <= small + 64 and big < 1000, (small, big)  # a few small objects, the bytes copied in place


def test_recording_transport_sees_both_directions_of_an_engine_session():
    async def main():
        module = Module()
        module.replies[b"AT"] = b"[OK]\r\n"
        transcript = Transcript(2048)
        engine = Engine(Recording(module.uart, transcript), rx_size=256, max_line=200, socket_rx=512)
        engine.start()
        await engine.command(b"AT")
        module.uart.emit(b"\r\n[CONNECT 1]\r\n{1,10.0.0.9,4000,5}hello\r\n")
        await settle()
        engine.stop()
        sent = b"".join(d for direction, _, d in transcript.chunks() if direction == TO_MODULE)
        heard = b"".join(d for direction, _, d in transcript.chunks() if direction == FROM_MODULE)
        eq(sent, b"AT\r")
        eq(heard, b"[OK]\r\n\r\n[CONNECT 1]\r\n{1,10.0.0.9,4000,5}hello\r\n")
        eq(engine.table[1].rx.read(), b"hello")

    run(main())


def test_reading_while_recording_skips_what_was_overwritten_and_stops():
    t = Transcript(100)
    for i in range(6):
        t.record(FROM_MODULE, b"chunk %02d" % i, 8)
    reader = t.chunks()
    eq(next(reader)[2], b"chunk 00")
    for i in range(6, 9):  # three more push out chunks 0 to 2
        t.record(TO_MODULE, b"chunk %02d" % i, 8)
    eq([data for _, _, data in reader], [b"chunk 03", b"chunk 04", b"chunk 05"])  # not 6-8: newer than the read


def test_the_wifi_key_is_sent_but_not_recorded():
    async def main():
        uart = FakeUART()
        t = Transcript(512)
        recording = Recording(uart, t)
        for cmd in (b"AT+WSEC=1,WPA2AES,secret99\r", b"AT+WSEC=0,,sec,ret\r", b"AT+WSET=0,MyAP\r"):
            await recording.write(cmd)
        eq(bytes(uart.written), b"AT+WSEC=1,WPA2AES,secret99\rAT+WSEC=0,,sec,ret\rAT+WSET=0,MyAP\r")
        eq([data for _, _, data in t.chunks()], [b"AT+WSEC=1,WPA2AES,***\r", b"AT+WSEC=0,,***\r", b"AT+WSET=0,MyAP\r"])

    run(main())

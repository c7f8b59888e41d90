"""Hypothesis: random module output, random chunking, exact reconstruction.

The properties themselves live in the portable case modules (seeded there,
so MicroPython runs them too); here hypothesis drives every random choice,
which lets it shrink a failure to the smallest output that shows it.
"""

from cases_interleave import interleaved_ssend
from cases_parser import random_output
from fakeuart import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class DataChooser:
    """The generators' ``int(lo, hi)`` and ``bytes(n)`` drawn from hypothesis."""

    def __init__(self, data):
        self.data = data

    def int(self, lo, hi):
        return self.data.draw(st.integers(lo, hi))

    def bytes(self, n):
        return self.data.draw(st.binary(min_size=n, max_size=n))


@EXAMPLES
@given(st.data())
def test_parser_reconstructs_random_output_at_any_chunking(data):
    random_output(DataChooser(data))


@EXAMPLES
@given(st.data())
def test_engine_delivers_everything_interleaved_with_ssend(data):
    run(interleaved_ssend(DataChooser(data)))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_engine_delivers_everything_while_the_senders_own_reader_waits(data):
    # Each ring lent takes 10 ms of waiting: fewer examples than the others.
    run(interleaved_ssend(DataChooser(data), echo=True))

"""The helpers every portable test may need (MicroPython has no pytest rewriting)."""

from wizfi250.parser import ERROR_NAMES


def eq(a, b):
    assert a == b, "%r != %r" % (a, b)


def errors(parser):
    """The parser's rejections by name: its codes are private constants (no qstrs on a board)."""
    return dict(zip(ERROR_NAMES, parser.errors))

"""The one assertion helper the portable tests share (MicroPython has no pytest rewriting)."""


def eq(a, b):
    assert a == b, "%r != %r" % (a, b)

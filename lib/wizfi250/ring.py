"""A bounded byte FIFO over one preallocated buffer.

Used for the UART receive buffer (the reader ``readinto``s its free space and
the parser reads it in place) and for each socket's receive buffer. Unlike a
classic ring it never wraps: when the free space at the end runs short, the
unread bytes are moved to the front in one ``memmove``. The unread bytes are
therefore always one contiguous run, so ``find`` and slices work on them
directly, with no per-byte Python code and no copying on the read side.
"""


class Ring:
    def __init__(self, size):
        self.buf = bytearray(size)
        self.size = size  # len(buf) without a call, for write()
        self.mv = memoryview(self.buf)
        self.head = 0  # first unread byte
        self.tail = 0  # one past the last unread byte
        self.next = None  # type: Ring | None  # a ring lent to take what comes after these bytes (Engine._lend)

    def __len__(self):
        return self.tail - self.head

    def free(self):
        return len(self.buf) - self.tail + self.head

    def clear(self):
        self.head = self.tail = 0

    def _compact(self):
        head = self.head
        if head:
            tail = self.tail
            if tail > head:
                self.mv[: tail - head] = self.mv[head:tail]
            self.tail = tail - head
            self.head = 0

    def space(self):
        """The free space as a writable memoryview, for ``readinto``; then ``commit``."""
        if self.head == self.tail:
            self.head = self.tail = 0
            return self.mv  # the usual case once parsed: no new memoryview
        if len(self.buf) - self.tail < len(self.buf) >> 2:
            self._compact()  # a short read would follow: move the few unread bytes instead
        return self.mv[self.tail :]

    def commit(self, n):
        self.tail += n

    def write(self, src, start, end):
        """Append ``src[start:end]``; return how many bytes fitted."""
        # Runs once or twice per received frame: kept to a few locals and one slice store.
        tail = self.tail
        n = end - start
        if n > self.size - tail:
            self._compact()
            tail = self.tail
            if n > self.size - tail:
                n = self.size - tail
                if not n:
                    return 0  # full: no slice, so a reader polling for room allocates nothing
        self.mv[tail : tail + n] = src[start : start + n]
        self.tail = tail + n
        return n

    def find(self, sub):
        """Offset of ``sub`` from the first unread byte, or -1."""
        i = self.buf.find(sub, self.head, self.tail)
        return i - self.head if i >= 0 else -1

    def readinto(self, dst, n=-1):
        """Move up to ``n`` (default: as many as fit) bytes into ``dst``."""
        head = self.head
        avail = self.tail - head
        if n < 0 or n > len(dst):
            n = len(dst)
        if n > avail:
            n = avail
        if n:
            dst[:n] = self.mv[head : head + n]
            self.head = head + n
        return n

    def read(self, n=-1):
        """Remove and return up to ``n`` bytes (all if ``n`` < 0) as ``bytes``."""
        head = self.head
        avail = self.tail - head
        if n < 0 or n > avail:
            n = avail
        data = bytes(self.mv[head : head + n])
        self.head = head + n
        return data

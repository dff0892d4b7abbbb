"""Identifiers made in bulk."""

from __future__ import annotations

import os


def uuid4s(count: int) -> list[str]:
    """`count` random (version 4) UUIDs in their canonical text form, from one read of the
    system's randomness.

    `uuid.uuid4()` reads it once per id, and each read lets go of the GIL: a worker thread making
    thousands of ids while the event loop runs then waits to get it back as many times. Setting
    the version and variant bits on the bytes, then formatting their hex, costs a third of making
    `uuid.UUID` objects and their `str`.
    """
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = bytes(b & 0x0F | 0x40 for b in raw[6::16])  # version 4
    raw[8::16] = bytes(b & 0x3F | 0x80 for b in raw[8::16])  # variant RFC 4122
    h = raw.hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-"
        f"{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, 32 * count, 32)
    ]

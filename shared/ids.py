"""Identifiers made in bulk."""

from __future__ import annotations

import os
import uuid


def uuid4s(count: int) -> list[uuid.UUID]:
    """`count` random (version 4) UUIDs from one read of the system's randomness.

    `uuid.uuid4()` reads it once per id, and each read lets go of the GIL: a worker thread making
    thousands of ids while the event loop runs then waits to get it back as many times.
    """
    raw = os.urandom(16 * count)
    return [uuid.UUID(bytes=raw[i : i + 16], version=4) for i in range(0, len(raw), 16)]

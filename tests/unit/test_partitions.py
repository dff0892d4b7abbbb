"""The relay's partitioner gives every key the partition aiokafka's default one would."""

from __future__ import annotations

import random
import uuid

from aiokafka.partitioner import DefaultPartitioner, murmur2

from shared.partitions import murmur2 as fast_murmur2
from shared.partitions import partition_of


def test_murmur2_matches_aiokafka_for_every_length_of_key() -> None:
    rng = random.Random(7)
    for length in range(0, 80):
        for _ in range(25):
            data = rng.randbytes(length)
            assert fast_murmur2(data) == murmur2(data), data


def test_a_key_goes_where_the_default_partitioner_puts_it() -> None:
    default = DefaultPartitioner()
    for count in (1, 3, 8, 12):
        partitions = list(range(count))
        for _ in range(500):
            key = str(uuid.uuid4()).encode()
            assert partition_of(key, partitions) == default(key, partitions, partitions)

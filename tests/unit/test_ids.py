"""Time-ordered UUIDs (version 7): distinct, canonical, in the order made, stamped with the time."""

from __future__ import annotations

import time
import uuid

from shared.ids import new_id, new_ids, new_uuid, texts_of


def _millisecond(value: str) -> int:
    return uuid.UUID(value).int >> 80


def test_ids_made_in_bulk_are_distinct_canonical_uuid7s_in_ascending_order() -> None:
    before = time.time_ns() // 1_000_000
    ids = new_ids(10_000)
    after = time.time_ns() // 1_000_000
    assert len(ids) == len(set(ids)) == 10_000
    parsed = [uuid.UUID(i) for i in ids]
    assert [str(u) for u in parsed] == ids  # canonical: lower case, hyphens where they go
    assert {u.version for u in parsed} == {7}
    assert {u.variant for u in parsed} == {uuid.RFC_4122}
    assert ids == sorted(ids)  # made in one millisecond, counted up all the same
    assert {_millisecond(i) for i in ids} <= set(range(before, after + 1))
    assert new_ids(0) == []


def test_ids_made_later_sort_later_and_batches_do_not_collide() -> None:
    first = new_id()
    time.sleep(0.002)
    batches = [new_ids(100) for _ in range(100)]
    assert uuid.UUID(first).version == 7
    assert all(first < batch[0] for batch in batches)
    every = [i for batch in batches for i in batch]
    assert len(set(every)) == len(every)
    # The last 32 bits are random for each id, not counted.
    assert len({uuid.UUID(i).int & 0xFFFF_FFFF for i in every}) > len(every) * 0.99


def test_an_id_as_a_uuid_is_the_same_kind() -> None:
    before = time.time_ns() // 1_000_000
    made = new_uuid()
    assert isinstance(made, uuid.UUID)
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert before <= _millisecond(str(made)) <= time.time_ns() // 1_000_000


def test_uuids_made_text_together_read_as_str_makes_them() -> None:
    ids = [new_uuid(), uuid.uuid4(), uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
    assert texts_of(ids) == [str(i) for i in ids]
    assert texts_of([]) == []

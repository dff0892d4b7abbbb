"""SQLite through `shared.sqlite_driver`: a statement takes one trip to the connection's thread
(a transaction's BEGIN goes with its first; ending none takes none; inserts whose outcome
nobody reads go with the next), and what a DBAPI cursor tells (rows, rowcount, lastrowid,
errors) is as SQLAlchemy expects."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, exc, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, insert_many, session_factory, writes_together

METADATA = MetaData()
THINGS = Table(
    "things",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("name", String(20), unique=True, nullable=False),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine of a new database file (`tmp_path / "driver.db"`) holding the table."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(METADATA.create_all)
        yield engine
    finally:
        await engine.dispose()


async def test_statements_tell_what_a_cursor_tells_in_one_trip_each(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        trips = _count_trips(driver)
        first = await connection.execute(insert(THINGS).values(name="a"))
        assert first.inserted_primary_key == (1,)  # lastrowid
        assert len(trips) == 1
        many = await connection.execute(insert(THINGS), [{"name": "b"}, {"name": "c"}])
        assert many.rowcount == 2
        returned = await connection.execute(
            insert(THINGS).values(name="d").returning(THINGS.c.id, THINGS.c.name)
        )
        assert returned.all() == [(4, "d")]
        changed = await connection.execute(
            update(THINGS).where(THINGS.c.id > 2).values(name=THINGS.c.name + "!")
        )
        assert changed.rowcount == 2
        trips.clear()
        rows = await connection.execute(select(THINGS).order_by(THINGS.c.id))
        assert rows.fetchmany(2) == [(1, "a"), (2, "b")]
        assert rows.all() == [(3, "c!"), (4, "d!")]
        assert len(trips) == 1
        nothing = await connection.execute(select(THINGS).where(THINGS.c.id > 10))
        assert nothing.all() == []
        assert list(nothing.keys()) == ["id", "name"]
        streamed = await connection.stream(select(THINGS.c.name).order_by(THINGS.c.id))
        assert [name async for name in streamed.scalars()] == ["a", "b", "c!", "d!"]
        with pytest.raises(exc.IntegrityError, match="UNIQUE"):
            await connection.execute(insert(THINGS).values(name="a"))


async def test_a_transaction_begins_with_its_first_statement(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "driver.db", timeout=0, isolation_level=None)  # no waiting
    try:
        async with engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            trips = _count_trips(driver)
            async with connection.begin():  # one that runs nothing sends nothing
                pass
            assert trips == []
            async with connection.begin():
                await connection.execute(insert(THINGS).values(name="a"))
                assert len(trips) == 1  # BEGIN IMMEDIATE went with the insert
                assert driver._conn.in_transaction
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")  # the write lock is held
            assert len(trips) == 2  # and COMMIT
            assert not driver._conn.in_transaction
            # A first statement that fails leaves nothing open; the next transaction is whole.
            with pytest.raises(exc.IntegrityError, match="UNIQUE"):
                async with connection.begin():
                    await connection.execute(insert(THINGS).values(name="a"))
            assert not driver._conn.in_transaction
            async with connection.begin():
                streamed = await connection.stream(select(THINGS.c.name))  # aiosqlite's cursor
                assert driver._conn.in_transaction
                assert [name async for name in streamed.scalars()] == ["a"]
        assert other.execute("SELECT name FROM things").fetchall() == [("a",)]
    finally:
        other.close()


async def test_ending_a_transaction_takes_a_trip_only_when_one_is_open(
    engine: AsyncEngine,
) -> None:
    sessions = session_factory(engine)
    async with sessions() as session:
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        trips = _count_trips(driver)
        await session.execute(insert(THINGS).values(name="a"))  # with the BEGIN
        await session.commit()
        assert [trip.__name__ for trip in trips] == ["_run", "commit"]
    # The session is closed and its connection back in the pool, rolled back: with nothing
    # open, that took no trip.
    assert [trip.__name__ for trip in trips] == ["_run", "commit"]
    async with sessions() as session:
        assert (await session.execute(select(THINGS.c.name))).scalars().all() == ["a"]
        assert driver._conn.in_transaction  # the same pooled connection, reading
    # Its read ended by the one rollback there was something to end.
    assert [trip.__name__ for trip in trips] == ["_run", "commit", "_run", "rollback"]
    assert not driver._conn.in_transaction


async def test_deferred_statements_go_with_the_next_trip_and_fail_it(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        driver = (await (await session.connection()).get_raw_connection()).driver_connection
        trips = _count_trips(driver)
        await insert_many(session, THINGS, [(0, "z")], columns=("id", "name"))  # (the BEGIN's)
        trips.clear()
        async with writes_together(session):  # (`OneTripConnection.defer`)
            await insert_many(session, THINGS, [(1, "a"), (2, "b")], columns=("id", "name"))
            await insert_many(session, THINGS, [(3, "c")], columns=("id", "name"))
        assert trips == []
        # A statement that reads goes after them, in the same trip, and sees their rows.
        names = (await session.execute(select(THINGS.c.name).order_by(THINGS.c.id))).scalars()
        assert names.all() == ["z", "a", "b", "c"]
        assert [trip.__name__ for trip in trips] == ["_run"]
        async with writes_together(session):
            await insert_many(session, THINGS, [(4, "d")], columns=("id", "name"))
    assert [trip.__name__ for trip in trips] == ["_run", "_commit"]  # with the COMMIT
    assert not driver._conn.in_transaction

    # One that fails fails the COMMIT it went with; nothing of the transaction stays.
    with pytest.raises(exc.IntegrityError, match="UNIQUE"):
        async with sessions() as session, session.begin(), writes_together(session):
            await insert_many(session, THINGS, [(7, "g")], columns=("id", "name"))
            await insert_many(session, THINGS, [(8, "a")], columns=("id", "name"))
    assert not driver._conn.in_transaction
    # A rollback drops what waits, unsent; the next transaction is whole.
    async with sessions() as session:
        await session.begin()
        async with writes_together(session):
            await insert_many(session, THINGS, [(9, "i")], columns=("id", "name"))
        await session.rollback()
        async with writes_together(session):
            await insert_many(session, THINGS, [(10, "j")], columns=("id", "name"))
        await session.commit()
    # aiosqlite's own cursor (a stream) opens after them too.
    async with sessions() as session, session.begin():
        await session.execute(select(THINGS.c.id))  # (the BEGIN's)
        async with writes_together(session):
            await insert_many(session, THINGS, [(11, "k")], columns=("id", "name"))
        streamed = await session.stream_scalars(select(THINGS.c.name).order_by(THINGS.c.id))
        assert [name async for name in streamed] == ["z", "a", "b", "c", "d", "j", "k"]


def _count_trips(driver: Any) -> list[Any]:
    """Each trip to the connection's thread from now on (the work is still the driver's)."""
    trips: list[Any] = []
    execute = driver._execute

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(fn)
        return await execute(fn, *args, **kwargs)

    driver._execute = counted
    return trips

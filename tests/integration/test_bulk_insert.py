"""`insert_many` on both databases: the values as SQLAlchemy would store them, conflicts left
out, refused or merged into the row there, the ids of the rows inserted, statements sent
together (`writes_together`); and `select_all`, the rows as SQLAlchemy would read them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    bindparam,
    event,
    exc,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import (
    SQLITE_MAX_PARAMETERS,
    UTCDateTime,
    create_engine,
    insert_many,
    on_postgres,
    select_all,
    session_factory,
    writes_together,
)

METADATA = MetaData()
ITEMS = Table(
    "bulk_items",
    METADATA,
    Column("id", String(36), primary_key=True),
    Column("email", String(254), unique=True, nullable=False),
    Column("count", Integer, nullable=True),
    Column("at", UTCDateTime, nullable=False),
    Column("note", Text, nullable=True),
)
COUNTERS = Table(
    "bulk_counters",
    METADATA,
    Column("day", String(10), primary_key=True),
    Column("metric", String(20), primary_key=True),
    Column("value", BigInteger, nullable=False),
    Column("doc", JSON, nullable=False),
    Column("at", UTCDateTime, nullable=True),
)
JST = timezone(timedelta(hours=9))


@contextlib.asynccontextmanager
async def bulk_tables(
    database_url: Callable[[str], Any], name: str
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions of a new database `name` holding this module's tables."""
    engine = create_engine(await database_url(name))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(METADATA.create_all)
        yield session_factory(engine)
    finally:
        await engine.dispose()


def item(n: int, email: str | None = None, **values: Any) -> dict[str, Any]:
    row = {
        "id": f"id-{n}",
        "email": email or f"e{n}@x.jp",
        "count": n,
        "at": datetime(2026, 3, 1, 9, 0, n, tzinfo=JST),
        "note": f"note {n} '\"\\ ü 🎉\n\t\x01",  # (on PostgreSQL, inside JSON text)
    }
    return {**row, **values}


async def test_rows_go_in_as_sqlalchemy_stores_them_and_conflicts_are_left_out(
    database_url: Callable[[str], Any],
) -> None:
    async with bulk_tables(database_url, "bulk") as sessions:
        made = datetime(2026, 3, 1, tzinfo=UTC)  # one time shared by a run of rows
        first = [item(1, at=made), item(2, at=made, count=None, note=None), item(3)]
        async with sessions() as session, session.begin():
            assert await insert_many(session, ITEMS, first) == []
        again = [item(4), item(5, email="e1@x.jp"), item(6)]  # 5 repeats 1's email
        async with sessions() as session, session.begin():
            inserted = await insert_many(
                session, ITEMS, again, skip_conflicts_on=["email"], returning="id"
            )
        assert sorted(inserted) == ["id-4", "id-6"]
        async with sessions() as session:
            stored = (await session.execute(select(ITEMS).order_by(ITEMS.c.id))).all()
        expected = [item(n) for n in (1, 2, 3, 4, 6)]
        expected[0].update(at=made)
        expected[1].update(at=made, count=None, note=None)
        assert [row._asdict() for row in stored] == [
            {**row, "at": row["at"].astimezone(UTC)} for row in expected
        ]
        async with sessions() as session:
            assert await insert_many(session, ITEMS, []) == []
            with pytest.raises(exc.IntegrityError):  # a conflict, not left out: refused
                await insert_many(session, ITEMS, [item(7, email="e2@x.jp")])
        async with sessions() as session:
            # The column's own check: raised as it is (PostgreSQL, values processed before the
            # statement) or wrapped by SQLAlchemy (executemany).
            with pytest.raises((ValueError, exc.StatementError), match="naive datetimes"):
                await insert_many(session, ITEMS, [item(8, at=datetime(2026, 3, 1))])


async def test_more_rows_than_one_statement_takes_all_go_in(
    database_url: Callable[[str], Any],
) -> None:
    """SQLite takes at most SQLITE_MAX_PARAMETERS parameters a statement: rows past them go in
    the next one, and every inserted id comes back (the repeated email left out)."""
    async with bulk_tables(database_url, "bulk_many") as sessions:
        count = SQLITE_MAX_PARAMETERS // len(item(1)) * 2 + 3  # three statements
        rows = [{**item(1), "id": f"id-{n}", "email": f"e{n}@x.jp"} for n in range(count)]
        rows.append({**item(1), "id": "id-again", "email": "e5@x.jp"})
        async with sessions() as session, session.begin():
            inserted = await insert_many(
                session, ITEMS, rows, skip_conflicts_on=["email"], returning="id"
            )
        assert sorted(inserted) == sorted(f"id-{n}" for n in range(count))
        async with sessions() as session:
            stored = await session.scalar(select(func.count()).select_from(ITEMS))
        assert stored == count


async def test_conflicting_rows_update_the_row_there_replacing_or_adding(
    database_url: Callable[[str], Any],
) -> None:
    async with bulk_tables(database_url, "bulk_upsert") as sessions:
        at = datetime(2026, 3, 1, 9, tzinfo=JST)

        def counter(day: str, metric: str, value: int, **values: Any) -> dict[str, Any]:
            return {"day": day, "metric": metric, "value": value, "doc": {}, "at": None, **values}

        async def upsert(rows: list[dict[str, Any]]) -> None:
            async with sessions() as session, session.begin():
                key = ["day", "metric"]
                await insert_many(
                    session, COUNTERS, rows, update_conflicts_on=key, adding=["value"]
                )

        await upsert([counter("03-01", "mqls", 2), counter("03-01", "sqls", 1, doc={"a": 1})])
        await upsert(
            [
                counter("03-01", "mqls", 3, doc={"b": [1, 2]}, at=at),  # adds 3, replaces the rest
                counter("03-02", "mqls", -1),
            ]
        )
        async with sessions() as session:
            stored = (await session.execute(select(COUNTERS).order_by("day", "metric"))).all()
        assert [tuple(row) for row in stored] == [
            ("03-01", "mqls", 5, {"b": [1, 2]}, at.astimezone(UTC)),
            ("03-01", "sqls", 1, {"a": 1}, None),
            ("03-02", "mqls", -1, {}, None),
        ]
        async with sessions() as session:
            with pytest.raises(ValueError, match="either skips"):
                await insert_many(
                    session,
                    COUNTERS,
                    [counter("x", "y", 1)],
                    skip_conflicts_on=["day"],
                    update_conflicts_on=["day"],
                )
            with pytest.raises(ValueError, match="not have"):
                await insert_many(
                    session,
                    COUNTERS,
                    [counter("x", "y", 1)],
                    update_conflicts_on=["day", "metric"],
                    adding=["hits"],
                )


DAYS = Table(
    "bulk_days",
    METADATA,
    Column("day", Date, primary_key=True),
    Column("at", UTCDateTime, nullable=True),
    Column("hits", BigInteger, nullable=False),
)


async def test_writes_together_go_in_one_statement_or_trip_and_fail_together(
    database_url: Callable[[str], Any],
) -> None:
    async with bulk_tables(database_url, "bulk_together") as sessions:
        sent = _statements_sent(sessions)
        many = SQLITE_MAX_PARAMETERS // len(item(1)) + 3  # two statements on SQLite
        rows = [{**item(1), "id": f"id-{n}", "email": f"e{n}@x.jp"} for n in range(many)]
        day = {"day": "2026-03-01", "metric": "mql", "doc": {}, "at": None}
        async with sessions() as session, session.begin():
            await insert_many(session, COUNTERS, [{**day, "value": 1}])
            sent.clear()
            async with writes_together(session):
                await insert_many(session, ITEMS, rows)
                await insert_many(
                    session,
                    COUNTERS,
                    [{**day, "value": 2}, {**day, "metric": "sql", "value": 5}],
                    update_conflicts_on=["day", "metric"],
                    adding=["value"],
                )
                # One that returns what it did goes at once.
                returned = await insert_many(session, ITEMS, [other(1)], returning="id")
                assert returned == ["x-1"]
                assert len(sent) == 1
            # PostgreSQL: one statement as the block ends; SQLite: with the next statement.
            assert len(sent) == (2 if on_postgres(sessions) else 1)
            counted = select(func.count()).select_from(ITEMS)
            assert await session.scalar(counted) == many + 1
        async with sessions() as session:
            totals = await session.execute(select(COUNTERS.c.metric, COUNTERS.c.value))
            assert sorted(totals.all()) == [("mql", 3), ("sql", 5)]

        # A row that fails fails them all, as the block ends (PostgreSQL) or with the COMMIT.
        with pytest.raises(exc.IntegrityError):
            async with sessions() as session, session.begin(), writes_together(session):
                await insert_many(session, COUNTERS, [{**day, "metric": "won", "value": 1}])
                await insert_many(session, ITEMS, [other(2), other(3, email="e1@x.jp")])
        async with sessions() as session:
            assert await session.scalar(counted) == many + 1
            won = select(COUNTERS).where(COUNTERS.c.metric == "won")
            assert (await session.execute(won)).all() == []


def other(n: int, **values: Any) -> dict[str, Any]:
    """A row of another id and email than `item`'s."""
    return {**item(n), "id": f"x-{n}", "email": f"x{n}@x.jp", **values}


def _statements_sent(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    """Each statement SQLAlchemy sends through `sessions`' engine from now on."""
    sent: list[str] = []
    engine: Engine = sessions.kw["bind"].sync_engine

    @event.listens_for(engine, "before_cursor_execute")
    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    return sent


async def test_rows_given_as_values_in_the_order_of_their_columns_go_in_alike(
    database_url: Callable[[str], Any],
) -> None:
    """Rows as tuples (`columns` naming their values) are stored as the same rows as mappings,
    a day as SQLAlchemy stores it (on SQLite its own text, made in one call)."""
    async with bulk_tables(database_url, "bulk_values") as sessions:
        at = datetime(2026, 3, 1, 9, tzinfo=JST)
        columns = ("day", "at", "hits")
        rows = [(date(2026, 3, 1), at, 2), (date(999, 12, 31), None, 1)]
        async with sessions() as session, session.begin():
            assert await insert_many(session, DAYS, rows, columns=columns) == []
            await insert_many(  # the same day again: adds to the hits there
                session,
                DAYS,
                [(date(2026, 3, 1), None, 3)],
                columns=columns,
                update_conflicts_on=["day"],
                adding=["hits"],
            )
        async with sessions() as session:
            stored = (await session.execute(select(DAYS).order_by(DAYS.c.day))).all()
            assert [tuple(row) for row in stored] == [
                (date(999, 12, 31), None, 1),
                (date(2026, 3, 1), None, 5),
            ]
            if not on_postgres(sessions):  # the text SQLAlchemy's own processor makes
                texts = await session.scalars(text("SELECT day FROM bulk_days ORDER BY day"))
                assert list(texts) == ["0999-12-31", "2026-03-01"]
            with pytest.raises(ValueError, match="2 values for 3 columns"):
                await insert_many(session, DAYS, [(date(2026, 3, 2), None)], columns=columns)


async def test_times_are_stored_as_the_text_sqlalchemy_makes_of_them(
    database_url: Callable[[str], Any],
) -> None:
    """A column of times (made the driver's at once, on SQLite) holds each time as SQLAlchemy's
    own DATETIME would store it in UTC, and reads back as the same time."""
    times = [
        datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 9, tzinfo=UTC),  # no microseconds
        datetime(2026, 3, 1, 18, 0, 0, 5, tzinfo=JST),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        None,
    ]
    async with bulk_tables(database_url, "bulk_times") as sessions:
        rows = [(f"d{n}", "m", n, {}, at) for n, at in enumerate(times)]
        async with sessions() as session, session.begin():
            await insert_many(
                session, COUNTERS, rows, columns=("day", "metric", "value", "doc", "at")
            )
        async with sessions() as session:
            stored = await session.scalars(select(COUNTERS.c.at).order_by(COUNTERS.c.day))
            assert list(stored) == [at and at.astimezone(UTC) for at in times]
            if not on_postgres(sessions):
                raw = await session.scalars(text("SELECT at FROM bulk_counters ORDER BY day"))
                dialect = session.get_bind().dialect
                general = DateTime().dialect_impl(dialect).bind_processor(dialect)
                utc = [at and at.astimezone(UTC).replace(tzinfo=None) for at in times]
                assert list(raw) == [general(at) for at in utc]


async def test_json_documents_are_written_by_orjson_and_read_back_alike(
    database_url: Callable[[str], Any],
) -> None:
    """A JSON column's value is stored as orjson's compact text (keys that are not text made
    text, as the standard library makes them), through `insert_many` and SQLAlchemy's own
    statements alike, and reads back as the same document."""
    doc = {"2026-03-01": 2, "list": [1.5, "a", None], 7: True}
    async with bulk_tables(database_url, "bulk_json") as sessions:
        async with sessions() as session, session.begin():
            row = {"day": "d1", "metric": "m", "value": 1, "doc": doc, "at": None}
            await insert_many(session, COUNTERS, [row])
            await session.execute(COUNTERS.insert().values({**row, "day": "d2"}))
        async with sessions() as session:
            docs = await session.scalars(select(COUNTERS.c.doc).order_by(COUNTERS.c.day))
            texts = await session.scalars(
                text("SELECT CAST(doc AS TEXT) FROM bulk_counters ORDER BY day")
            )
            read, stored = list(docs), list(texts)
    same = {"2026-03-01": 2, "list": [1.5, "a", None], "7": True}
    assert read == [same, same]
    assert stored == ['{"2026-03-01":2,"list":[1.5,"a",null],"7":true}'] * 2


async def test_select_all_reads_the_rows_sqlalchemy_reads(
    database_url: Callable[[str], Any],
) -> None:
    """`select_all` (on SQLite, the rows as one JSON document) gives each row's values as
    SQLAlchemy's own result does: times aware, JSON documents, NULLs, text with quotes and
    backslashes, 64-bit integers; bound lists expanded; no rows, an empty list. A column that
    JSON would not carry exactly is refused on SQLite."""
    doc = {"2026-03-01": 2, "list": [1.5, "a", None]}
    at = datetime(2026, 3, 1, tzinfo=JST)
    counters = [
        {"day": "d1", "metric": "m", "value": 2**62 + 1, "doc": doc, "at": None},
        {"day": "d2", "metric": "m", "value": -1, "doc": [], "at": at},
    ]
    among = select(ITEMS).where(ITEMS.c.id.in_(bindparam("ids", expanding=True)))
    async with bulk_tables(database_url, "bulk_select") as sessions:
        async with sessions() as session, session.begin():
            await insert_many(session, ITEMS, [item(1), item(2, count=None, note=None), item(3)])
            await insert_many(session, COUNTERS, counters)
        async with sessions() as session:
            connection = await session.connection()
            for statement, parameters in (
                (among, {"ids": ["id-1", "id-2", "id-9"]}),
                (among, {"ids": ["id-9"]}),
                (select(COUNTERS).order_by(COUNTERS.c.day), {}),
            ):
                expected = [list(row) for row in await connection.execute(statement, parameters)]
                assert await select_all(connection, statement, parameters) == expected
            assert await select_all(connection, among, {"ids": ["id-9"]}) == []
            two = await select_all(connection, among, {"ids": ["id-1", "id-2"]})
            assert sorted(two) == [
                [n["id"], n["email"], n["count"], n["at"].astimezone(UTC), n["note"]]
                for n in (item(1), item(2, count=None, note=None))
            ]
            amounts = select(func.cast(COUNTERS.c.value, Numeric(30, 2)))
            if on_postgres(sessions):
                assert len(await select_all(connection, amounts, {})) == 2
            else:
                with pytest.raises(TypeError, match="exactly"):
                    await select_all(connection, amounts, {})


async def test_columns_json_would_not_carry_exactly_are_refused_on_postgresql(
    database_url: Callable[[str], Any],
) -> None:
    """On PostgreSQL the rows go as one JSON document: a column whose values it would not carry
    exactly (a decimal, bytes) is refused before anything is sent. SQLite binds them."""
    amounts = Table("bulk_amounts", MetaData(), Column("amount", Numeric(30, 2)))
    async with (
        bulk_tables(database_url, "bulk_refused") as sessions,
        sessions() as session,
        session.begin(),
    ):
        await session.run_sync(lambda sync: amounts.create(sync.connection()))
        rows = [(Decimal("0.10"),)]
        if on_postgres(sessions):
            with pytest.raises(TypeError, match=r"bulk_amounts\.amount"):
                await insert_many(session, amounts, rows, columns=["amount"])
        else:
            await insert_many(session, amounts, rows, columns=["amount"])
            assert await session.scalar(select(amounts.c.amount)) == Decimal("0.10")

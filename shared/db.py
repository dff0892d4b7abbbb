"""Async SQLAlchemy engines and sessions for SQLite (aiosqlite, WAL) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Select,
    Table,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from shared import sqlite_driver

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# An auto-incrementing 64-bit key on PostgreSQL that is still SQLite's ROWID alias.
BigIntKey = BigInteger().with_variant(Integer(), "sqlite")


# How SQLAlchemy's SQLite DATETIME stores a time by default (isoformat(" ", "microseconds")).
_SQLITE_DATETIME_FORMAT = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)


def _refuse_naive(value: datetime) -> datetime:
    """`value`, refused if it has no time zone."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored; give a time zone")
    return value


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC; SQLite hands it back aware too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return _refuse_naive(value).astimezone(UTC).replace(tzinfo=None)
        return _refuse_naive(value)  # asyncpg sends an aware time as UTC itself

    def bind_processor(self, dialect: Any) -> Any:
        return _sqlite_utc_text if self._sqlite_text(dialect) else super().bind_processor(dialect)

    def column_bind_processor(
        self, dialect: Any
    ) -> Callable[[Sequence[Any]], Sequence[Any]] | None:
        """What makes a whole column of times the driver's at once (see `insert_many`), where
        there is a faster way than one by one: SQLite's text; elsewhere (asyncpg) the column as
        it is, once none of its times is naive."""
        if dialect.name != "sqlite":
            return _aware_times
        return _sqlite_utc_texts if self._sqlite_text(dialect) else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return _utc_time(value)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        if self._sqlite_text(dialect):
            return _sqlite_utc_time
        impl = self.impl_instance.dialect_impl(dialect)
        if dialect.name != "sqlite" and impl.result_processor(dialect, coltype) is None:
            return _utc_time  # (the driver's own datetime)
        return super().result_processor(dialect, coltype)

    def _sqlite_text(self, dialect: Any) -> bool:
        """Whether the column is SQLite's text in SQLAlchemy's own DATETIME format (which the
        processors here make and read in C calls)."""
        impl = self.impl_instance.dialect_impl(dialect)
        return (
            dialect.name == "sqlite"
            and getattr(impl, "_storage_format", None) == _SQLITE_DATETIME_FORMAT
        )


def _aware_times(values: Sequence[Any]) -> Sequence[Any]:
    """`values`, times the driver takes as they are if aware, refused if one is naive: one pass
    over the column, with no call a time (a fact row written holds up to a dozen)."""
    for value in values:
        if value is not None and value.tzinfo is None:
            _refuse_naive(value)
    return values


def _utc_time(value: datetime | None) -> datetime | None:
    """`value` in UTC, aware (a naive time is one in UTC)."""
    if value is None or value.tzinfo is UTC:  # (asyncpg's are)
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_utc_time(value: str | None) -> datetime | None:
    """The time of SQLite's DATETIME text (UTC, without an offset), aware, in one C call: a
    third of the time of SQLAlchemy's parser and `_utc_time` after it (a fact row loaded holds
    up to a dozen times)."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # (not the text SQLAlchemy writes: an offset of its own, say)
        return _utc_time(datetime.fromisoformat(value))


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """The text SQLite's DATETIME would make of the UTC time, made in one C call: the general
    processor formats each field through a dict, a third of a bulk insert's time. A time
    already in UTC (most are) is formatted as it is and its offset cut off."""
    if value is None:
        return None
    text = value.isoformat(" ", "microseconds")
    if text.endswith("+00:00"):
        return text[:-6]
    utc = _refuse_naive(value).astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(" ", "microseconds")


def _sqlite_utc_texts(values: Sequence[Any]) -> list[Any]:
    """`_sqlite_utc_text` of each of `values`, a column's worth at once: orjson writes a UTC
    time with its microseconds as "2026-01-31T09:00:00.000000Z", which becomes the text in
    two C calls (a fifth of `_sqlite_utc_text`'s time); any other value is made one by one."""
    try:
        texts = orjson.loads(orjson.dumps(values, option=orjson.OPT_UTC_Z))
    except TypeError:  # (a value JSON has no form for: refused one by one below)
        return [_sqlite_utc_text(value) for value in values]
    return [
        text[:26].replace("T", " ")
        if type(value) is datetime and len(text) == 27
        else _sqlite_utc_text(value)
        for value, text in zip(values, texts, strict=True)
    ]


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


class PlumbingBase(DeclarativeBase):
    """Tables every service has: the outbox, the inbox and the idempotency records."""

    metadata = new_metadata()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def on_postgres(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """Whether `sessions` are of a PostgreSQL database (several writers at once; SQLite has one)."""
    return bool(sessions.kw["bind"].dialect.name == "postgresql")


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An engine for `url`; SQLite files get WAL, a busy timeout and their folder created, and
    take one trip to their connection's thread per statement (`shared.sqlite_driver`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            echo=echo,
            connect_args={"timeout": 30},
            module=sqlite_driver.DBAPI,
            json_serializer=_json_text,
            json_deserializer=orjson.loads,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        json_serializer=_json_text,
        json_deserializer=orjson.loads,
    )
    event.listen(engine.sync_engine, "checkout", _reconnect_if_closed)
    return engine


def _json_text(value: Any) -> str:
    """The text of a JSON column's value, made by orjson: compact, and in a fifth of the
    standard library's time (a fact row written holds one; keys that are not text become
    text, as the standard library makes them)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _reconnect_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # In place of a ping (a round trip) each time a connection leaves the pool: one the server
    # has closed (a restart, an idle timeout) is known locally, as the driver saw its socket
    # close. The pool then connects anew and drops every connection older than this one.
    if dbapi_connection.driver_connection.is_closed():
        raise InvalidatePoolError("the database closed the connection")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is switched off so that BEGIN IMMEDIATE (below) is ours.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # Taking the write lock at BEGIN avoids SQLITE_BUSY deadlocks between read-then-write
    # transactions (a deferred transaction cannot upgrade its lock while another writer waits).
    # A transaction begun by `read_only` takes no lock: in WAL, readers and the writer do not
    # wait on each other. The BEGIN goes to the connection's thread with the transaction's
    # first statement, in the same trip (`sqlite_driver`).
    read_only = connection.get_execution_options().get(_READ_ONLY, False)
    connection.connection.dbapi_connection.begin_with_next_statement(
        "BEGIN" if read_only else "BEGIN IMMEDIATE"
    )


_READ_ONLY = "baton_read_only"
_TOGETHER = "baton_writes_together"


async def read_only(session: AsyncSession) -> None:
    """Begin the session's transaction as one that only reads (before its first statement).

    On SQLite every other transaction takes the database's one write lock as it begins, so that
    transactions that read and then write cannot deadlock; one that only reads need not, and
    then neither waits for a writer nor holds one up (a GET answered while the consumer
    commits, and the other way round). Elsewhere nothing changes.
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.connection(execution_options={_READ_ONLY: True})


@contextlib.asynccontextmanager
async def writes_together(session: AsyncSession) -> AsyncIterator[None]:
    """The block's `insert_many` statements that return nothing, in the session's transaction,
    sent together rather than one by one. They must not touch the same rows, nor be read in the
    block (what they do is seen after it).

    Each statement is a trip to the database, whose answer waits for the event loop to take it:
    while the loop is busy (the KPI service handles the next fetch while one writes), a
    transaction of many short statements takes many times their own time. Together:
    - on PostgreSQL they are one statement, each a data-modifying `WITH` of it (sent as the
      block ends). All see the database as it was before it, hence the rule above;
    - on SQLite they go with the transaction's next statement, or with its COMMIT, in its trip
      to the connection's thread (`sqlite_driver.OneTripConnection.defer`).
    One that fails fails the statement or the COMMIT it went with, and the transaction is
    rolled back."""
    connection = await session.connection()
    together: list[tuple[str, Any]] = []
    await connection.execution_options(**{_TOGETHER: together})  # (in place)
    try:
        yield
    finally:
        await connection.execution_options(**{_TOGETHER: None})
    if not together:
        return
    if connection.dialect.name == "postgresql":
        statement = _with_statements(tuple(sql for sql, _ in together))
        documents = {f"rows_{n}": rows for n, (_, rows) in enumerate(together)}
        await connection.execute(statement, documents)
    else:
        driver = (await connection.get_raw_connection()).dbapi_connection
        for sql, parameters in together:
            cast(sqlite_driver.OneTripConnection, driver).defer(sql, parameters)


@functools.cache
def _with_statements(statements: tuple[str, ...]) -> Any:
    """On PostgreSQL, `statements` (each `_json_insert`'s, its rows the parameter `rows`) as one:
    each a data-modifying `WITH`, its rows the parameter `rows_<its position>`."""
    parts = []
    for n, sql in enumerate(statements):
        if sql.count(_JSON_ROWS) != 1:
            raise ValueError(f"not a statement of `_json_insert`: {sql}")
        parts.append(f"w_{n} AS ({sql.replace(_JSON_ROWS, f'CAST(:rows_{n} AS TEXT)')})")
    return text(f"WITH {', '.join(parts)} SELECT 1")


@contextlib.asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[Any]:
    """A connection of `engine`'s pool as its driver's own, with no transaction open, for a hot
    path's statements without SQLAlchemy (whose own work per statement costs the event loop
    many times what a short one costs the database): on SQLite a `sqlite_driver`
    connection, to `run` a function on its thread; on PostgreSQL asyncpg's connection. A
    transaction begun on it must end before the block does."""
    async with engine.connect() as connection:
        pooled = await connection.get_raw_connection()
        if engine.dialect.name == "sqlite":
            yield pooled.dbapi_connection
        else:
            yield pooled.driver_connection


def driver_values(
    dialect: Any, table: Table, columns: tuple[str, ...], rows: Sequence[Mapping[str, Any]]
) -> list[Sequence[Any]]:
    """Each of `columns`' values in `rows`, as the driver takes them (the bind processor of
    each column's type applied: SQLite's text of a time, a JSON document), for statements run
    without SQLAlchemy (`driver_connection`)."""
    return _driver_columns(dialect, table, columns, _by_column(columns, rows, by_name=True))


def _driver_columns(
    dialect: Any, table: Table, columns: tuple[str, ...], by_column: list[Sequence[Any]]
) -> list[Sequence[Any]]:
    """Each column's values (`by_column`, in the order of `columns`) as the driver takes them."""
    processors = _column_processors(dialect, table, columns)
    return [
        values if process is None else process(values)
        for values, process in zip(by_column, processors, strict=True)
    ]


def driver_value(dialect: Any, column: Any, value: Any) -> Any:
    """`value` of `column` as the driver takes it (see `driver_values`)."""
    (process,) = _bind_processors(dialect, column.table, (column.name,))
    return value if process is None else process(value)


def sqlite_insert_sql(
    dialect: Any,
    table: Table,
    columns: tuple[str, ...],
    *,
    skip_conflicts_on: Sequence[str] | None = None,
    returning: str | None = None,
) -> tuple[str, str, str]:
    """On SQLite, for statements run without SQLAlchemy: `INSERT INTO t (columns)`, one row's
    `(?, ...)`, and what follows the `VALUES` (as `insert_many` makes them)."""
    conflict = _conflict(columns, skip_conflicts_on, None, ())
    return _values_insert(dialect, table, columns, conflict, returning)


@functools.cache
def _bind_processors(dialect: Any, table: Table, columns: tuple[str, ...]) -> list[Any]:
    """Each column's bind processor (what makes a value the driver's), made once."""
    return [_bind_processor(dialect, table.c[name].type) for name in columns]


_ColumnProcessor = Callable[[Sequence[Any]], Sequence[Any]]


@functools.cache
def _column_processors(
    dialect: Any, table: Table, columns: tuple[str, ...]
) -> list[_ColumnProcessor | None]:
    """Each column's processor of all its values at once (None: they go as they are)."""
    processors = _bind_processors(dialect, table, columns)
    return [
        _over_column(dialect, table.c[name].type, process)
        for name, process in zip(columns, processors, strict=True)
    ]


def _over_column(dialect: Any, column_type: Any, process: Any) -> _ColumnProcessor | None:
    """The bind processor `process` (or None) applied to a whole column: the type's own way,
    if it has one (`column_bind_processor`), else value by value (`_processed`)."""
    if process is None:
        return None
    column_wise = getattr(column_type, "column_bind_processor", None)
    if column_wise is not None and (whole := column_wise(dialect)) is not None:
        return cast(_ColumnProcessor, whole)
    return functools.partial(_processed, process)


# How SQLAlchemy's SQLite DATE stores a day by default: what `date.isoformat` makes.
_SQLITE_DATE_FORMAT = "%(year)04d-%(month)02d-%(day)02d"


def _bind_processor(dialect: Any, column_type: Any) -> Any:
    """The bind processor of a column of `column_type`. A day on SQLite becomes its text in one
    C call (`date.isoformat`), the same text as the general processor's, which formats each
    field through a dict (a tenth of the KPI ingest's writing)."""
    impl = column_type.dialect_impl(dialect)
    process = impl.bind_processor(dialect)
    if (
        dialect.name != "sqlite"
        or not isinstance(column_type, Date)
        or getattr(impl, "_storage_format", None) != _SQLITE_DATE_FORMAT
    ):
        return process

    def day_text(value: Any) -> Any:
        if type(value) is date:  # (a datetime is a date too: the general processor's)
            return value.isoformat()
        return process(value)

    return day_text


def insert_skipping_conflicts(
    session: AsyncSession, table: Any, index_elements: Sequence[str] | None = None
) -> Any:
    """INSERT ... ON CONFLICT [(index_elements)] DO NOTHING, for the session's database."""
    dialect = session.get_bind().dialect.name
    return _insert_skipping_conflicts(dialect, table, tuple(index_elements or ()) or None)


@functools.cache
def _insert_skipping_conflicts(dialect: str, table: Any, index_elements: Any) -> Any:
    # Made once per table: building the construct costs more than executing it, and it is
    # immutable (`.values()`, `.returning()` return new ones).
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing(index_elements=index_elements)


async def insert_many(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]],
    *,
    columns: Sequence[str] | None = None,
    skip_conflicts_on: Sequence[str] | None = None,
    update_conflicts_on: Sequence[str] | None = None,
    adding: Sequence[str] = (),
    returning: str | None = None,
) -> list[Any]:
    """Insert `rows` (each naming the same columns; or, given `columns`, each the values of those
    columns in that order, which spares a mapping per row); the `returning` column of each row
    inserted (or updated).

    A row that conflicts on `skip_conflicts_on` is left out; one that conflicts on
    `update_conflicts_on` updates the row there instead: each of its other columns takes the new
    value, but those in `adding`, to which the new value is added (a counter). The rows of one
    call must not conflict with each other on it (PostgreSQL refuses to update a row twice).

    SQLAlchemy's executemany would process each row's parameters one by one, which costs more
    than the insert. So each column's values are made what the driver takes in one pass over the
    column (once for a run of the same object, such as the time they were all made), and:
    on PostgreSQL the rows go as one JSON document, which orjson writes (`_json_insert`: for a
    row of the KPI service's facts, 0.8 µs of the event loop's time and 9 of wall time, against
    7.6 and 13 with an array per column through `unnest`, which asyncpg encodes); on SQLite as
    multi-row `VALUES` statements, as many rows each as SQLite's parameters allow. Not the
    driver's executemany: it steps the statement once a row, and the sqlite3 module takes the
    GIL back after each step, a switch interval's wait a row while the event loop is busy (see
    `select_all`).
    """
    if not rows:
        return []
    names = tuple(columns) if columns is not None else tuple(cast(Mapping[str, Any], rows[0]))
    conflict = _conflict(names, skip_conflicts_on, update_conflicts_on, adding)
    return await _insert(session, table, names, rows, columns is None, conflict, returning)


async def _insert(
    session: AsyncSession,
    table: Table,
    names: tuple[str, ...],
    rows: Sequence[Any],
    by_name: bool,
    conflict: _Conflict | None,
    returning: str | None,
) -> list[Any]:
    """`insert_many`'s statements: the `returning` column of the rows inserted."""
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        by_column = _by_column(names, rows, by_name=by_name)
        return await _insert_sqlite(session, table, names, by_column, conflict, returning)
    statement = _json_insert(dialect, table, names, conflict, returning)
    if by_name or any(_column_processors(dialect, table, names)):
        by_column = _driver_columns(dialect, table, names, _by_column(names, rows, by_name=by_name))
        rows = list(zip(*by_column, strict=True))
    document = orjson.dumps(rows).decode()
    connection = await session.connection()
    if returning is None and (together := _together(connection)) is not None:
        together.append((statement.text, document))
        return []
    result = await connection.execute(statement, {"rows": document})
    return [] if returning is None else list(result.scalars())


def _together(connection: AsyncConnection) -> list[tuple[str, Any]] | None:
    """Where `writes_together` holds the statements of the connection's transaction back (each
    its text and parameters); None outside it."""
    options = cast(Connection, connection.sync_connection).get_execution_options()
    return cast(list[tuple[str, Any]] | None, options.get(_TOGETHER))


def _by_column(
    names: tuple[str, ...], rows: Sequence[Any], *, by_name: bool
) -> list[Sequence[Any]]:
    """The values of each of `names` in `rows` (mappings `by_name`, or sequences in that order)."""
    if by_name:
        return [[row[name] for row in rows] for name in names]
    by_column: list[Sequence[Any]] = [list(column) for column in zip(*rows, strict=True)]
    if len(by_column) != len(names):
        raise ValueError(f"rows of {len(by_column)} values for {len(names)} columns")
    return by_column


# What a row that conflicts on the key (the columns; all constraints if empty) does: nothing, or
# update each of the columns named, taking the new value or (True) adding it to the one there.
_Conflict = tuple[tuple[str, ...], tuple[tuple[str, bool], ...] | None]


def _conflict(
    columns: tuple[str, ...],
    skip_on: Sequence[str] | None,
    update_on: Sequence[str] | None,
    adding: Sequence[str],
) -> _Conflict | None:
    if update_on is None:
        if adding:
            raise ValueError("adding is for rows that update on a conflict")
        return None if skip_on is None else (tuple(skip_on), None)
    if skip_on is not None:
        raise ValueError("a conflict either skips the row or updates the one there")
    if unknown := set(adding) - set(columns):
        raise ValueError(f"adding names columns the rows do not have: {sorted(unknown)}")
    key = tuple(update_on)
    if not key:
        raise ValueError("update_conflicts_on names no column")
    return key, tuple((name, name in adding) for name in columns if name not in key)


# Parameters of one SQLite statement at most (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
SQLITE_MAX_PARAMETERS = 32_766


async def _insert_sqlite(
    session: AsyncSession,
    table: Table,
    columns: tuple[str, ...],
    by_column: list[Sequence[Any]],
    conflict: _Conflict | None,
    returning: str | None,
) -> list[Any]:
    connection = await session.connection()
    head, one, tail = _values_insert(connection.dialect, table, columns, conflict, returning)
    values = _driver_columns(connection.dialect, table, columns, by_column)
    together = None if returning is not None else _together(connection)
    inserted: list[Any] = []
    per_statement = SQLITE_MAX_PARAMETERS // len(columns)
    for start in range(0, len(values[0]), per_statement):
        part = [column[start : start + per_statement] for column in values]
        count = len(part[0])
        flat = tuple(itertools.chain.from_iterable(zip(*part, strict=True)))
        statement = f"{head} VALUES {', '.join([one] * count)}{tail}"
        if together is not None:
            together.append((statement, flat))
            continue
        result = await connection.exec_driver_sql(statement, flat)
        if returning is not None:
            inserted += result.scalars()
    return inserted


@functools.cache
def _values_insert(
    dialect: Any,
    table: Table,
    columns: tuple[str, ...],
    conflict: _Conflict | None,
    returning: str | None,
) -> tuple[str, str, str]:
    """On SQLite, `INSERT INTO t (columns)`, one row's `(?, ...)`, and what follows the
    `VALUES`."""
    quote = dialect.identifier_preparer.quote
    head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in columns)})"
    one = f"({', '.join('?' * len(columns))})"
    return head, one, _insert_tail(quote, table, conflict, returning)


def _insert_tail(
    quote: Any, table: Table, conflict: _Conflict | None, returning: str | None
) -> str:
    """What follows the inserted values: the `ON CONFLICT` clause of `conflict`, and
    `RETURNING returning`."""
    tail = ""
    if conflict is not None:
        key, updates = conflict
        target = f"({', '.join(quote(name) for name in key)}) " if key else ""
        if not updates:
            tail += f" ON CONFLICT {target}DO NOTHING"
        else:
            sets = ", ".join(
                f"{quote(name)} = "
                + (f"{quote(table.name)}.{quote(name)} + " if add else "")
                + f"excluded.{quote(name)}"
                for name, add in updates
            )
            tail += f" ON CONFLICT {target}DO UPDATE SET {sets}"
    if returning is not None:
        tail += f" RETURNING {quote(returning)}"
    return tail


def _processed(process: Any, values: Sequence[Any]) -> list[Any]:
    """`process` applied to each of `values`; once for a run of the same object (the rows of a
    bulk insert often share one, such as the time they were made)."""
    out, last, result = [], _NOTHING, None
    for value in values:
        if value is not last:
            last, result = value, process(value)
        out.append(result)
    return out


_NOTHING = object()


# Where `_json_insert`'s statement takes its rows.
_JSON_ROWS = "CAST(:rows AS TEXT)"


@functools.cache
def _json_insert(
    dialect: Any,
    table: Table,
    columns: tuple[str, ...],
    conflict: _Conflict | None,
    returning: str | None,
) -> Any:
    """On PostgreSQL, `INSERT .. SELECT` each row of one JSON array of rows (each an array of
    `columns`' values, the driver's; the parameter `rows`), each value cast from its text to
    its column's type. Columns whose values JSON would not carry exactly (bytes, numbers that
    are not integers) are refused."""
    values = []
    for index, name in enumerate(columns):
        column_type = table.c[name].type
        if not _exact_in_json(column_type):
            raise TypeError(f"{table.name}.{name}: its values would not go exactly as JSON")
        values.append(f"CAST(row_ ->> {index} AS {column_type.compile(dialect=dialect)})")
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in columns)
    sql = (
        f"INSERT INTO {quote(table.name)} ({names}) SELECT {', '.join(values)}"
        f" FROM jsonb_array_elements(CAST({_JSON_ROWS} AS JSONB)) AS row_"
    )
    return text(sql + _insert_tail(quote, table, conflict, returning))


def _exact_in_json(column_type: Any) -> bool:
    """Whether JSON carries a column's values exactly (not bytes, nor numbers that are not
    integers), for the statements that send or read rows as one JSON document."""
    return not isinstance(getattr(column_type, "impl_instance", column_type), Numeric | LargeBinary)


async def select_all(
    connection: AsyncConnection, statement: Select[Any], parameters: Mapping[str, Any]
) -> list[list[Any]]:
    """The rows of `statement`, each its columns' values as SQLAlchemy's own result holds them.

    On SQLite the database makes them one JSON document (`json_group_array`), which the
    statement returns in one step. The sqlite3 module lets go of the GIL around each step of a
    statement and takes it back after, so a statement of many rows, run on the connection's
    thread while the event loop is busy, waits a switch interval of the GIL a row (in a
    throw-away script, with a thread busy beside it, 260 against 3 µs a row). Columns whose
    values JSON would not carry exactly (bytes, floating point) are refused."""
    dialect = connection.dialect
    if dialect.name != "sqlite":
        return [list(row) for row in await connection.execute(statement, parameters)]
    document, processors = _as_one_document(dialect, statement)
    rows = orjson.loads((await connection.execute(document, parameters)).scalar_one())
    if not any(processors):
        return cast(list[list[Any]], rows)
    return [
        [
            value if process is None else process(value)
            for value, process in zip(row, processors, strict=True)
        ]
        for row in rows
    ]


@functools.cache
def _as_one_document(dialect: Any, statement: Select[Any]) -> tuple[Select[Any], list[Any]]:
    """On SQLite, `statement`'s rows as one JSON array of arrays; each column's result
    processor."""
    columns = list(statement.selected_columns)
    for column in columns:
        if not _exact_in_json(column.type):
            raise TypeError(f"{column}: its values would not come back exactly as JSON")
    rows = statement.subquery()
    document = select(func.json_group_array(func.json_array(*rows.c)))
    processors = [column.type.result_processor(dialect, None) for column in columns]
    return document, processors


async def insert_if_absent(session: AsyncSession, table: Any, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True if the row was inserted."""
    result = await session.execute(insert_skipping_conflicts(session, table).values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def session_factory(
    engine: AsyncEngine, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, info=info or {})

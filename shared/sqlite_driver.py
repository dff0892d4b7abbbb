"""aiosqlite for SQLAlchemy with one trip to the connection's thread per statement.

aiosqlite runs each sqlite3 call on the connection's own thread; SQLAlchemy's adapter makes one
such call to open a cursor, one to execute, one to fetch the rows and one to close it. Each trip
is a hand-over between threads (a queue, a wake-up, the GIL, the event loop's self-pipe), about
0.3 ms on a busy two-core machine: most of a short transaction's time. Here a statement is one
trip that does all four; the rows, the description, `rowcount` and `lastrowid` come back
together. Everything else is SQLAlchemy's own aiosqlite dialect, handed this module as its DBAPI
(`create_async_engine(..., module=DBAPI)`).

A transaction's BEGIN takes no trip of its own either (`begin_with_next_statement`): it goes
with the transaction's first statement, and a transaction that runs none sends nothing at all.
A COMMIT or ROLLBACK with no transaction open on SQLite's side (the pool's rollback of a
connection it gets back, most often) takes none.
Server-side cursors stay aiosqlite's own, a trip per call (a pending BEGIN is sent before one
opens).

A statement whose outcome nobody reads may wait for the next trip (`OneTripConnection.defer`):
it goes before the next statement, or before the COMMIT, in that one's trip; so a transaction
that writes several such statements and commits takes one trip for all of them. What fails in
it fails there (and a COMMIT it fails before is a ROLLBACK).

A hot path may also hand the connection's thread a function of its own (`OneTripConnection.run`):
a whole transaction of several statements in one trip, without SQLAlchemy.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

_Outcome = tuple[Any, Sequence[Any], int, int | None]
_Result = TypeVar("_Result")
# Statements deferred to the next trip: each its text and parameters.
_Deferred = Sequence[tuple[str, Sequence[Any]]]


def _send_pending(connection: sqlite3.Connection, begin: str | None, deferred: _Deferred) -> None:
    """On the connection's thread: the transaction begun (if `begin`), the `deferred`
    statements executed."""
    if begin is not None:
        connection.execute(begin).close()
    for operation, parameters in deferred:
        connection.execute(operation, parameters).close()


def _run(
    connection: sqlite3.Connection,
    begin: str | None,
    deferred: _Deferred,
    operation: str,
    parameters: Any,
    many: bool,
) -> _Outcome:
    """On the connection's thread: the transaction begun (if `begin`), the `deferred`
    statements executed, then the statement, its rows fetched, its cursor closed."""
    _send_pending(connection, begin, deferred)
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else ()
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _commit(connection: sqlite3.Connection, begin: str | None, deferred: _Deferred) -> None:
    """On the connection's thread: the `deferred` statements executed (after `begin`, if
    any), then the transaction committed; rolled back if any of them failed."""
    try:
        _send_pending(connection, begin, deferred)
    except BaseException:
        if connection.in_transaction:
            connection.rollback()
        raise
    connection.commit()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement, rows and close take one trip to the connection's thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")
    _awaitable_cursor_close = False  # nothing is left open to close

    def __init__(self, adapt_connection: Any) -> None:  # no aiosqlite cursor of its own
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._trip(operation, parameters, many=False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(self._trip(operation, seq_of_parameters, many=True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _trip(self, operation: str, parameters: Any, *, many: bool) -> None:
        adapt_connection = cast("OneTripConnection", self._adapt_connection)
        outcome = await adapt_connection._with_pending(_run, operation, parameters, many)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    def close(self) -> None:
        self._rows.clear()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_begin", "_deferred")
    _cursor_cls = OneTripCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._begin: str | None = None
        self._deferred: list[tuple[str, Sequence[Any]]] = []

    def begin_with_next_statement(self, begin: str) -> None:
        """Begin a transaction (`begin`: BEGIN, BEGIN IMMEDIATE) in the same trip as the next
        statement, rather than in one of its own."""
        self._begin = begin

    def defer(self, operation: str, parameters: Sequence[Any]) -> None:
        """Execute `operation` in the next trip, before that trip's statement or COMMIT: for a
        statement in a transaction whose rows, count and errors nobody reads before the next
        one's (an error then fails that one, or the COMMIT). A ROLLBACK drops it."""
        self._deferred.append((operation, parameters))

    async def _with_pending(self, function: Callable[..., _Result], *args: Any) -> _Result:
        """`function(the sqlite3 connection, the pending BEGIN or None, the deferred
        statements, *args)` on the connection's thread, in one trip. What is pending is taken
        before the trip: if it fails, the transaction is over either way (SQLite ends it, or
        it never began), and its ROLLBACK is then harmless."""
        async with self._execute_mutex:
            begin, deferred = self._begin, self._deferred
            self._begin, self._deferred = None, []
            connection = self._connection
            result = await connection._execute(function, connection._conn, begin, deferred, *args)
        return cast("_Result", result)

    async def run(self, function: Callable[..., _Result], *args: Any) -> _Result:
        """`function(the sqlite3 connection, *args)` on the connection's thread, in one trip;
        what it returns. A transaction it begins, it ends: call it on a connection on which
        SQLAlchemy has none open (`shared.db.driver_connection`)."""
        async with self._execute_mutex:
            connection = self._connection
            result = await connection._execute(function, connection._conn, *args)
        return cast("_Result", result)

    def cursor(self, server_side: bool = False) -> Any:
        if server_side and (self._begin is not None or self._deferred):
            try:  # (aiosqlite's own cursor: the BEGIN and what waits first)
                await_(self._with_pending(_send_pending))
            except Exception as error:
                self._handle_exception(error)
        return super().cursor(server_side)

    def commit(self) -> None:
        if self._deferred:  # what waits, then the COMMIT, in one trip
            try:
                await_(self._with_pending(_commit))
            except Exception as error:
                self._handle_exception(error)
        elif self._open_on_sqlite():
            super().commit()

    def rollback(self) -> None:
        self._deferred = []
        if self._open_on_sqlite():
            super().rollback()

    def _open_on_sqlite(self) -> bool:
        """Whether a transaction is open on SQLite's side, the one to end. A BEGIN still pending
        was never sent: dropped, nothing to end. Without a transaction, sqlite3's commit and
        rollback do nothing, and are not worth a trip: the pool rolls back every connection it
        gets back, most of them with their transaction already ended."""
        if self._begin is not None:
            self._begin = None
            return False
        try:
            return bool(self._connection._conn.in_transaction)
        except (ValueError, sqlite3.ProgrammingError):  # closed: the driver says so, as before
            return True


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        connection = self.aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True  # as SQLAlchemy's own: exiting does not wait on it
        return OneTripConnection(self, await_(connection))


DBAPI = OneTripDBAPI(aiosqlite, sqlite3)

"""Group commit: the writes of concurrent requests committed together, a transaction per group.

A caller's `submit` returns once the transaction holding its item has committed, with what the
write gave for its item: each answer is as durable as with a transaction of its own, but the
transaction's fixed costs (a connection, BEGIN and COMMIT, on SQLite the one write lock, on
PostgreSQL the flush of its log) are shared by every item that arrived while the group before it
was being written. A group is written as soon as a writer is free, held back no longer than
one turn of the event loop to gather more: a caller alone waits no longer than with a
transaction of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

# Writes a group's items in one transaction of its own, committed before it returns; for each
# item, in order, its result or the exception that refused it (the others still commit).
GroupWrite = Callable[[Sequence[Item]], Awaitable[list[Result | Exception]]]
_Waiting = list[tuple[Item, "asyncio.Future[Result]"]]


class GroupCommit(Generic[Item, Result]):
    """Items submitted while a group is written go into the next one, up to `max_group` items;
    up to `writers` groups are written side by side (one on SQLite, whose writers take turns).

    A group whose transaction fails is written again an item at a time, so that a failure (a
    constraint, a lost connection) reaches only the callers whose item it is.
    """

    def __init__(
        self,
        write: GroupWrite[Item, Result],
        *,
        writers: int = 1,
        max_group: int = 500,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        self._write = write
        self._max_writers = writers
        self._max_group = max_group
        self._observe = observe  # told each transaction's number of items
        self._waiting: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._writers: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        """Write `item` in the next group; its result once that group has committed."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if len(self._writers) < self._max_writers:
            writer = asyncio.create_task(self._drain(), name="group-commit")
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)  # also if cancelled before it runs
        # A caller that goes away before its group is taken has its item left out; after that,
        # the item's group is written all the same (in the writer's task, not the caller's).
        return await future

    async def _drain(self) -> None:
        """Write groups until nobody waits."""
        try:
            while self._waiting:
                group: _Waiting[Item, Result] = []  # filled by `_write_group`
                try:
                    await self._write_group(group)
                except asyncio.CancelledError:  # stopped with the process: nobody waits forever
                    for _, future in [*group, *self._waiting]:
                        future.cancel()
                    raise
                except Exception as exc:  # a bug, not a hang
                    log.exception("a group commit failed")
                    for _, future in group:
                        _settle(future, exc)
        finally:
            # At once, not in the task's done callback: the callers answered last run before
            # it, and an item one of them submits meanwhile would find this writer still
            # counted, and wait for a writer nobody starts.
            self._writers.discard(asyncio.current_task())

    def _take(self, group: _Waiting[Item, Result]) -> None:
        """Into `group`, the items waiting now (up to `max_group`) whose callers still wait."""
        while self._waiting and len(group) < self._max_group:
            item, future = self._waiting.popleft()
            if not future.done():
                group.append((item, future))

    async def _write_group(self, group: _Waiting[Item, Result], *, taken: bool = False) -> None:
        """One transaction: the group (unless `taken`, the items waiting now)."""
        if not taken:
            # The loop's turn first: the requests it has ready to run (read in the same turn
            # as the one that started this writer, or answered by the group before and sending
            # their next) submit theirs and join this group rather than make the next one. A
            # caller alone waits a turn of the loop; under load a group then holds about every
            # caller at once, and the service does more with the same CPU.
            await asyncio.sleep(0)
            self._take(group)
        if not group:
            return
        try:
            results = await self._write([item for item, _ in group])
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0][1], exc)
                return
            log.info(
                "a group's transaction failed; writing its items one at a time",
                extra={"items": len(group), "error": repr(exc)},
            )
            for one in group:
                await self._write_group([one], taken=True)
            return
        if len(results) != len(group):  # a bug (committed all the same: not written again)
            error = RuntimeError(f"{len(results)} results for {len(group)} items")
            for _, future in group:
                _settle(future, error)
            return
        if self._observe is not None:
            self._observe(len(group))
        for (_, future), result in zip(group, results, strict=True):
            _settle(future, result)


def _settle(future: asyncio.Future[Result], outcome: Result | BaseException) -> None:
    if future.done():  # its caller went away
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)

"""Group commit: the commits of concurrent runs folded into one world transaction.

Every turn a worker commits (a step's result with the run's next commands) would be one
transaction of its own; under load most of a transaction's cost is the round trip, not
the rows. The first caller leads: it yields once so the others that are ready join, then
commits everyone's writes together, and keeps committing what queued meanwhile until
nothing is left. Each caller gets back the results of its own writes. While the world
cannot take writes (disk full, a lock held elsewhere) it retries with backoff (see
:mod:`.outage`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..errors import WorldUnavailableError
from ..worlds.base import Commit, CommitResult, RunWrite, World, WriteResult
from .outage import Outage

__all__ = ["GroupCommit"]

_Waiter = asyncio.Future[list[WriteResult]]


class GroupCommit:
    """Folds the commits of concurrent runs into one world transaction."""

    def __init__(
        self,
        world: World,
        owner: str,
        lease_seconds: float,
        on_new_work: Callable[[], None] | None = None,
    ) -> None:
        self.world = world
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.on_new_work = on_new_work
        self._queue: list[tuple[list[RunWrite], _Waiter]] = []
        self._leading = False
        self.concurrent = 0  # how many callers are likely to commit soon
        self.outage = Outage("committing")

    async def commit(self, writes: list[RunWrite]) -> list[WriteResult]:
        """Commit ``writes`` atomically (possibly together with other callers' writes)."""
        if self._leading:
            fut: _Waiter = asyncio.get_running_loop().create_future()
            self._queue.append((writes, fut))
            return await fut
        self._leading = True
        try:
            if self.concurrent > 1:
                await asyncio.sleep(0)  # let the others that are ready join this batch
            mine: list[WriteResult] | None = None
            batch: list[tuple[list[RunWrite], _Waiter | None]]
            batch = [(writes, None), *self._queue]
            self._queue = []
            while batch:
                # Alone (a sequential run's common case), the writes need no flattening.
                flat = writes if len(batch) == 1 and mine is None else _flat(batch)
                commit = Commit(flat, owner=self.owner, lease_seconds=self.lease_seconds)
                try:
                    if self.outage.failures:
                        result = await self._commit(commit)
                    else:
                        try:  # the common case, one coroutine less to await per turn
                            result = await self.world.commit(commit)
                        except WorldUnavailableError as e:
                            await asyncio.sleep(self.outage.failed(e))
                            result = await self._commit(commit)
                except BaseException as e:
                    # Those who queued meanwhile must hear it too, not wait for a commit
                    # that may never come.
                    for _, f in [*batch, *self._queue]:
                        if f is not None and not f.done():
                            f.set_exception(e)
                    self._queue = []
                    if mine is None:
                        raise
                    break
                if result.new_work and self.on_new_work is not None:
                    self.on_new_work()
                if flat is writes:
                    mine = result.results
                else:
                    i = 0
                    for ws, f in batch:
                        part = result.results[i : i + len(ws)]
                        i += len(ws)
                        if f is None:
                            mine = part
                        elif not f.done():
                            f.set_result(part)
                batch = list(self._queue)
                self._queue = []
            assert mine is not None
            return mine
        finally:
            self._leading = False

    async def commit_now(self, writes: list[RunWrite]) -> list[WriteResult]:
        """Commit ``writes`` alone and once: an outage of the world (disk full) raises
        instead of being waited out, for a caller that must hear of it (``start()``)."""
        result = await self.world.commit(
            Commit(writes, owner=self.owner, lease_seconds=self.lease_seconds)
        )
        if result.new_work and self.on_new_work is not None:
            self.on_new_work()
        return result.results

    async def _commit(self, commit: Commit) -> CommitResult:
        """Commit, retrying while the world cannot take writes (disk full, its write
        lock held elsewhere): nothing was stored, so the same commit is safe to retry,
        and the runs go on as soon as it goes through."""
        while True:
            try:
                result = await self.world.commit(commit)
            except WorldUnavailableError as e:
                await asyncio.sleep(self.outage.failed(e))
                continue
            self.outage.recovered()
            return result


def _flat(batch: list[tuple[list[RunWrite], _Waiter | None]]) -> list[RunWrite]:
    """The writes of every caller in a batch, in order."""
    return [w for ws, _ in batch for w in ws]

"""Group commit (durably.worker.group_commit): concurrent commits share a transaction."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from durably.worker.group_commit import GroupCommit
from durably.worlds.base import Commit, CommitResult, RunWrite, World, WriteResult


class _World:
    """Records each commit; optionally fails them."""

    def __init__(self, fail: BaseException | None = None, new_work: bool = False) -> None:
        self.commits: list[Commit] = []
        self.fail = fail
        self.new_work = new_work

    async def commit(self, commit: Commit) -> CommitResult:
        self.commits.append(commit)
        await asyncio.sleep(0.01)  # a round trip, during which others queue
        if self.fail is not None:
            raise self.fail
        return CommitResult(
            [WriteResult(w.run_id, True, i + 1) for i, w in enumerate(commit.writes)],
            new_work=self.new_work,
        )


def _committer(world: _World, **kw: Any) -> GroupCommit:
    return GroupCommit(cast(World, world), "me", 12.0, **kw)


async def test_ready_callers_share_one_commit_and_get_their_own_results() -> None:
    world = _World()
    gc = _committer(world)
    gc.concurrent = 3
    results = await asyncio.gather(
        gc.commit([RunWrite("a")]),
        gc.commit([RunWrite("b"), RunWrite("c")]),
        gc.commit([RunWrite("d")]),
    )
    assert len(world.commits) == 1
    commit = world.commits[0]
    assert [w.run_id for w in commit.writes] == ["a", "b", "c", "d"]
    assert (commit.owner, commit.lease_seconds) == ("me", 12.0)
    assert [[r.run_id for r in rs] for rs in results] == [["a"], ["b", "c"], ["d"]]


async def test_callers_arriving_during_a_commit_go_in_the_next_one() -> None:
    world = _World()
    gc = _committer(world)
    first = asyncio.ensure_future(gc.commit([RunWrite("a")]))
    await asyncio.sleep(0)  # the first leads and is in its round trip
    later = await asyncio.gather(gc.commit([RunWrite("b")]), gc.commit([RunWrite("c")]))
    assert [r.run_id for r in await first] == ["a"]
    assert [[r.run_id for r in rs] for rs in later] == [["b"], ["c"]]
    assert [[w.run_id for w in c.writes] for c in world.commits] == [["a"], ["b", "c"]]


async def test_a_failed_commit_fails_everyone_waiting_on_it() -> None:
    gc = _committer(_World(fail=ConnectionError("down")))
    first = asyncio.ensure_future(gc.commit([RunWrite("a")]))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(gc.commit([RunWrite("b")]))
    for fut in (first, second):
        with pytest.raises(ConnectionError):
            await fut
    # The committer leads again afterwards.
    gc.world = cast(World, _World())
    assert [r.run_id for r in await gc.commit([RunWrite("c")])] == ["c"]


async def test_new_work_is_announced() -> None:
    woken: list[int] = []
    gc = _committer(_World(new_work=True), on_new_work=lambda: woken.append(1))
    await gc.commit([RunWrite("a")])
    assert woken == [1]

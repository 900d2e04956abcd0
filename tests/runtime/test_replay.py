"""Replay: another worker continues a run from its log; changed code is detected;
a sticky run does not replay at all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import durably
from durably import NonDeterminismError, WorkflowRunFailedError, Workflows, sleep
from durably.events import Event
from durably.runtime import instance as instance_mod


def _url(tmp_path: Path, kind: str) -> str:
    return f"memory://{tmp_path.name}" if kind == "memory" else f"sqlite:///{tmp_path / 'r.db'}"


async def _until_waiting(run: durably.Run) -> None:
    for _ in range(500):
        if any(s.status == "waiting" for s in await run.steps()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("run never reached its sleep")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_gather_replays_identically_on_another_worker(tmp_path: Path, kind: str) -> None:
    ran: list[str] = []
    drawn: list[int] = []

    def registry() -> Workflows:
        wf = Workflows(world=_url(tmp_path, kind))

        @wf.step
        async def work(i: int) -> int:
            await asyncio.sleep(0.001 * (5 - i))
            ran.append(f"work{i}")
            return i * i

        @wf.step
        async def remember(r: int) -> None:
            drawn.append(r)

        @wf.workflow
        async def pipeline() -> list[int]:
            first = await asyncio.gather(*[work(i) for i in range(5)])
            r = durably.random().randint(0, 10**9)
            await remember(r)
            await sleep("1h")
            second = await asyncio.gather(*[work(i + 5) for i in range(3)])
            return [*first, *second, r]

        return wf

    a = registry()
    run = await a.start("pipeline")
    await _until_waiting(run)
    await a.aclose()
    b = registry()
    try:
        again = await b.get_run(run.run_id)
        assert await again.wake() == 1
        result = await again.return_value(timeout=30)
        assert result == [0, 1, 4, 9, 16, 25, 36, 49, drawn[0]]
        assert len(drawn) == 1
        assert sorted(ran) == sorted(f"work{i}" for i in range(8))  # none ran twice
    finally:
        await b.aclose()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_changed_code_fails_with_non_determinism(tmp_path: Path, kind: str) -> None:
    def registry(version: int) -> Workflows:
        wf = Workflows(world=_url(tmp_path, kind))

        @wf.step
        async def charge() -> str:
            return "charged"

        @wf.step
        async def refund() -> str:
            return "refunded"

        @wf.workflow
        async def order() -> str:
            if version == 1:
                await charge()
            else:
                await refund()
            await sleep("1h")
            return "done"

        return wf

    v1 = registry(1)
    run = await v1.start("order")
    await _until_waiting(run)
    await v1.aclose()
    v2 = registry(2)
    try:
        again = await v2.get_run(run.run_id)
        await again.wake()
        with pytest.raises(WorkflowRunFailedError) as info:
            await again.return_value(timeout=30)
        cause = info.value.cause
        assert isinstance(cause, NonDeterminismError)
        assert "call #0" in str(cause)
        assert "'charge'" in str(cause) and "'refund'" in str(cause)
    finally:
        await v2.aclose()


@pytest.fixture
def fed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the events fed into run instances (a replay feeds the whole log; a step
    settled in the log may skip feed() itself, but not the log)."""
    count = [0]
    real_feed_log = instance_mod.RunInstance.feed_log

    def counting_feed_log(
        self: instance_mod.RunInstance, events: list[Event], *rest: object
    ) -> None:
        count[0] += len(events)
        real_feed_log(self, events, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(instance_mod.RunInstance, "feed_log", counting_feed_log)
    return count


def _long_registry(url: str) -> Workflows:
    wf = Workflows(world=url)

    @wf.step
    async def noop() -> None:
        return None

    @wf.workflow
    async def long(n: int) -> int:
        for _ in range(n):
            await noop()
        return n

    return wf


async def test_sticky_run_never_replays(tmp_path: Path, fed: list[int]) -> None:
    wf = _long_registry(f"sqlite:///{tmp_path / 's.db'}")
    try:
        run = await wf.start("long", 400)
        assert await run.return_value(timeout=60) == 400
        # A cold start reads the run's first event; the sticky body never replays again
        # (naive replay would feed ~400*401 events).
        assert fed[0] < 10
    finally:
        await wf.aclose()


async def test_replay_mode_does_replay(
    tmp_path: Path, fed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counter above can fail: with the cache off, the same run feeds quadratically."""
    monkeypatch.setenv("DURABLY_MAX_CACHED_RUNS", "0")
    wf = _long_registry(f"memory://{tmp_path.name}")
    try:
        run = await wf.start("long", 40)
        assert await run.return_value(timeout=60) == 40
        assert fed[0] > 40 * 40
    finally:
        await wf.aclose()


async def test_body_cannot_reach_threads_or_sockets(wf: Workflows) -> None:
    @wf.workflow
    async def sneaky() -> list[str]:
        out = []
        for attempt in (
            lambda: asyncio.get_running_loop().run_in_executor(None, print),
            lambda: asyncio.to_thread(print),
            lambda: asyncio.get_running_loop().create_connection(asyncio.Protocol, "x", 1),
        ):
            try:
                coro = attempt()
                if asyncio.iscoroutine(coro):
                    await coro
            except durably.SandboxError as e:
                out.append(str(e).split(" is not")[0])
        return out

    run = await sneaky.start()
    out = await run.return_value(timeout=30)
    assert len(out) == 3


async def test_a_cold_replay_opens_only_the_payloads_the_body_consumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The arguments of settled steps are neither re-encoded nor decrypted by a replay
    (their recorded size still counts toward the run's payload budget)."""
    url = f"sqlite:///{tmp_path / 'r.db'}"

    def registry() -> Workflows:
        wf = Workflows(world=url)

        @wf.step
        async def double(i: int) -> int:
            return 2 * i

        @wf.workflow
        async def many(n: int) -> int:
            total = 0
            for i in range(n):
                total += await double(i)
            await sleep("1h")
            return total + await double(1000)

        return wf

    a = registry()
    run = await a.start("many", 20)
    await _until_waiting(run)
    await a.aclose()

    from durably.crypto import Sealer

    opened: list[str] = []
    real_open = Sealer.open_event

    def counted(self: Sealer, run_id: str, seq: int, type_: str, *rest: object) -> bytes:
        opened.append(type_)
        return real_open(self, run_id, seq, type_, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(Sealer, "open_event", counted)
    encoded: list[str] = []
    real_encode = instance_mod.CallShape.encode_args

    def encode(self: instance_mod.CallShape, *args: object) -> bytes:
        encoded.append(self.name)
        return real_encode(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(instance_mod.CallShape, "encode_args", encode)
    b = registry()
    async with b:
        resumed = await b.get_run(run.run_id)
        await resumed.wake()
        assert await resumed.return_value(timeout=30) == 2 * sum(range(20)) + 2000
    # The replay opened the input and the 20 results, not the 20 settled steps'
    # arguments; the new step's own arguments were encoded, once. (Reads after the
    # run's end, for its result, open what they read.)
    assert opened[:21] == ["run_created"] + ["step_completed"] * 20, opened
    assert encoded == ["double"]

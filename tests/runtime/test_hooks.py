"""Hooks: waiting for the outside world without holding compute."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from pydantic import BaseModel

import durably
from durably import (
    BaseHook,
    HookConflictError,
    HookNotFoundError,
    SerializationError,
    WorkflowRunFailedError,
    Workflows,
    start,
)
from tests.support import live_hook_token


@dataclass
class Approval(BaseHook):
    approved: bool
    by: str = "someone"


class Comment(BaseHook, BaseModel):
    text: str


async def _hook_of(run: durably.Run, wf: Workflows) -> str:
    return await live_hook_token(wf, run.run_id)


async def test_await_hook_and_resume(wf: Workflows) -> None:
    sent: list[str] = []

    @wf.step
    async def send_email(token: str) -> None:
        sent.append(token)

    @wf.workflow
    async def refund(order_id: str) -> str:
        async with Approval.wait(token=f"refund:{order_id}", metadata={"o": order_id}) as h:
            await send_email(h.token)
            approval = await h
            return f"{approval.approved} by {approval.by}"

    run = await start(refund, "o1")
    await _hook_of(run, wf)
    info = await durably.get_hook_by_token("refund:o1")
    assert info.run_id == run.run_id and info.metadata == {"o": "o1"}
    assert await Approval(approved=True, by="ada").resume("refund:o1") == run.run_id
    assert await run.return_value(timeout=30) == "True by ada"
    assert sent == ["refund:o1"]
    with pytest.raises(HookNotFoundError, match="refund:o1"):
        await Approval(approved=False).resume("refund:o1")  # disposed with the block
    hook_step = next(s for s in await run.steps() if s.kind == "hook")
    assert hook_step.status == "disposed" and hook_step.name == "Approval"


async def test_generated_tokens_are_unguessable_and_stable(wf: Workflows) -> None:
    tokens: list[str] = []

    @wf.step
    async def publish(token: str) -> None:
        tokens.append(token)

    @wf.workflow
    async def waiter() -> str:
        hook = Comment.wait()
        await publish(hook.token)
        comment = await hook
        await durably.sleep(0.01)  # a replay after this must see the same token
        return f"{hook.token}:{comment.text}"

    run = await start(waiter)
    token = await _hook_of(run, wf)
    assert len(token) >= 30
    await Comment(text="hi").resume(token)
    assert await run.return_value(timeout=30) == f"{token}:hi"
    assert tokens == [token]


async def test_many_resumes_with_async_for(wf: Workflows) -> None:
    @wf.workflow
    async def collect(n: int) -> list[str]:
        out = []
        async with Comment.wait(token="chat") as hook:
            async for comment in hook:
                out.append(comment.text)
                if len(out) == n:
                    break
        return out

    run = await start(collect, 3)
    await _hook_of(run, wf)
    for text in ("a", "b", "c"):
        await Comment(text=text).resume("chat")
    assert await run.return_value(timeout=30) == ["a", "b", "c"]


async def test_token_conflict(wf: Workflows) -> None:
    @wf.workflow
    async def holder() -> str:
        async with Approval.wait(token="shared") as hook:
            return str((await hook).approved)

    @wf.workflow
    async def intruder() -> str:
        try:
            async with Approval.wait(token="shared"):
                return "entered"
        except HookConflictError as e:
            return "conflict: " + str(e)[:30]

    first = await start(holder)
    await _hook_of(first, wf)
    second = await start(intruder)
    assert (await second.return_value(timeout=30)).startswith("conflict: hook token 'shared'")
    await Approval(approved=True).resume("shared")
    assert await first.return_value(timeout=30) == "True"


async def test_unknown_token_and_bad_payload(wf: Workflows) -> None:
    @wf.workflow
    async def waits() -> bool:
        return bool((await Approval.wait(token="t1")).approved)

    with pytest.raises(HookNotFoundError, match="nope"):
        await Approval(approved=True).resume("nope")
    run = await start(waits)
    await _hook_of(run, wf)
    with pytest.raises(SerializationError, match="approved"):
        await durably.resume_hook("t1", {"approved": "not a bool at all"})
    with pytest.raises(TypeError, match="Approval"):
        await Comment(text="x").resume("t1")
    events_before = len(await run.events())
    assert await run.status() == "running"
    await durably.resume_hook("t1", {"approved": True})
    assert await run.return_value(timeout=30) is True
    assert len(await run.events()) > events_before


async def test_durable_race_hook_against_timeout(wf: Workflows) -> None:
    @wf.workflow
    async def approval_or_timeout() -> str:
        async with Approval.wait(token="race") as hook:
            try:
                approval = await asyncio.wait_for(hook, timeout=0.1)
                return f"approved={approval.approved}"
            except TimeoutError:
                return "timed out"

    run = await start(approval_or_timeout)
    assert await run.return_value(timeout=30) == "timed out"


async def test_wait_outside_a_workflow_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="inside a workflow"):
        Approval.wait()


async def test_run_end_disposes_hooks(wf: Workflows) -> None:
    @wf.workflow
    async def leaves_hook_open() -> None:
        Approval.wait(token="left-open")
        await durably.sleep(0.01)

    run = await start(leaves_hook_open)
    await run.return_value(timeout=30)
    with pytest.raises(HookNotFoundError):
        await Approval(approved=True).resume("left-open")


async def test_cancel_a_run_waiting_on_a_hook(wf: Workflows) -> None:
    cleaned: list[str] = []

    @wf.step
    async def cleanup(why: str) -> None:
        cleaned.append(why)

    @wf.workflow
    async def patient() -> None:
        try:
            await Approval.wait(token="forever")
        except asyncio.CancelledError:
            await cleanup("cancelled")
            raise

    run = await start(patient)
    await _hook_of(run, wf)
    await run.cancel(reason="no longer needed")
    with pytest.raises(durably.RunCancelledError, match="no longer needed"):
        await run.return_value(timeout=30)
    assert await run.status() == "cancelled"
    assert cleaned == ["cancelled"]
    with pytest.raises(HookNotFoundError):
        await Approval(approved=True).resume("forever")


async def test_hook_conflict_uncaught_fails_the_run(wf: Workflows) -> None:
    @wf.workflow
    async def a() -> None:
        await Approval.wait(token="dup")

    @wf.workflow
    async def b() -> None:
        async with Approval.wait(token="dup"):
            pass

    first = await start(a)
    await _hook_of(first, wf)
    second = await start(b)
    with pytest.raises(WorkflowRunFailedError) as info:
        await second.return_value(timeout=30)
    assert isinstance(info.value.cause, HookConflictError)
    await first.cancel()

"""Hook payloads are validated against their class and held to the registry's limits,
and so are stream chunks; webhooks are opt-in and generate their tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from durably import (
    BaseHook,
    ConfigurationError,
    Limits,
    PayloadTooLargeError,
    SerializationError,
    WorkflowRunFailedError,
    Workflows,
    get_writable,
    start,
)
from tests.support import live_hook_token


@dataclass
class LimitApproval(BaseHook):
    approved: bool
    note: str = ""


async def test_a_dataclass_payload_is_validated_on_resume(wf: Workflows) -> None:
    @wf.workflow
    async def waits() -> bool:
        return (await LimitApproval.wait(token="check")).approved

    run = await start(waits)
    await live_hook_token(wf, run.run_id)
    events_before = len(await run.events())
    with pytest.raises(SerializationError, match="approved"):
        await LimitApproval(approved="notabool").resume("check")  # type: ignore[arg-type]
    assert len(await run.events()) == events_before  # nothing was recorded
    await LimitApproval(approved="yes").resume("check")  # type: ignore[arg-type]  # lax, as webhooks
    assert await run.return_value(timeout=30) is True


async def test_hook_payloads_and_stream_chunks_keep_the_payload_limit(make_wf: Any) -> None:
    wf: Workflows = make_wf(limits=Limits(max_payload_bytes=2000))

    @wf.workflow
    async def waits() -> str:
        return (await LimitApproval.wait(token="big")).note

    @wf.step(max_retries=0)
    async def chatty(n: int) -> None:
        await get_writable().write("x" * n)

    @wf.workflow
    async def streams(n: int) -> None:
        await chatty(n)

    run = await start(waits)
    await live_hook_token(wf, run.run_id)
    with pytest.raises(PayloadTooLargeError, match="2,000"):
        await LimitApproval(approved=True, note="x" * 5000).resume("big")
    await LimitApproval(approved=True, note="fits").resume("big")
    assert await run.return_value(timeout=30) == "fits"

    ok = await start(streams, 100)
    await ok.return_value(timeout=30)
    too_big = await start(streams, 5000)
    with pytest.raises(WorkflowRunFailedError) as info:
        await too_big.return_value(timeout=30)
    assert isinstance(info.value.cause, PayloadTooLargeError)
    assert [c async for c in too_big.chunks()] == []


def test_a_webhook_generates_its_token() -> None:
    with pytest.raises(ConfigurationError, match=r"webhook=True\) generates its token"):
        LimitApproval.wait(token="refund:o1", webhook=True)

"""chat_app over a real uvicorn: the UI stream of stream_chat, reconnects by index,
retried model steps, and tool approvals through the chat POST and through webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

import durably
from durably import RetryableError, Workflows
from durably.ai import DurablyDurability, chat_app, stream_chat
from durably.http import app as http_app
from durably.worlds.base import RunFilter
from tests.support import serve

from .chat_support import sse, texts, user

WORDS = [f"word{i} " for i in range(30)]
ANSWER = "".join(WORDS)


@pytest.fixture(params=[True, False], ids=["capability", "plain-agent"])
def durable(request: pytest.FixtureRequest) -> bool:
    """Agents with DurablyDurability (its steps) and without (stream_chat's own)."""
    return bool(request.param)


def make_agent(stream: Any, durable: bool, *, webhooks: bool = False) -> Agent[None, str]:
    caps = [DurablyDurability(webhooks=webhooks)] if durable else []
    return Agent(FunctionModel(stream_function=stream), name="support", capabilities=caps)


def slow_agent(durable: bool, delay: float = 0.01) -> Agent[None, str]:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        for w in WORDS:
            await asyncio.sleep(delay)
            yield w

    return make_agent(stream, durable)


def chat_workflow(wf: Workflows, agent: Agent[Any, Any]) -> Any:
    @wf.workflow
    async def support_chat(messages: list[dict[str, Any]]) -> str:
        return await stream_chat(agent, messages)

    return support_chat


async def test_post_streams_the_answer_token_by_token(wf: Workflows, durable: bool) -> None:
    chat = chat_workflow(wf, slow_agent(durable))
    async with serve(chat_app(wf, chat)) as base, httpx.AsyncClient(timeout=30) as client:
        headers, events = await sse(
            client, "POST", f"{base}/api/chat", json_body={"messages": [user("hi")]}
        )
    run_id = headers["x-workflow-run-id"]
    assert [e["type"] for e in events][:3] == ["start", "start-step", "text-start"]
    assert events[-1]["type"] == "finish"
    deltas = [e for e in events if e["type"] == "text-delta"]
    assert len(deltas) == len(WORDS)  # one chunk per token, written as the model streamed
    assert texts(events) == [ANSWER]
    run = await wf.get_run(run_id)
    assert await run.return_value() == ANSWER
    # Text ids are the model step's id and the part's index: stable across retries.
    step = next(s for s in await run.steps() if s.name == "support.model")
    assert deltas[0]["id"] == f"{run_id}.{step.call}:0"


async def test_dropped_client_resumes_by_index_nothing_lost_or_repeated(
    wf: Workflows, durable: bool
) -> None:
    chat = chat_workflow(wf, slow_agent(durable, delay=0.03))
    async with serve(chat_app(wf, chat)) as base, httpx.AsyncClient(timeout=30) as client:
        headers, first = await sse(
            client, "POST", f"{base}/api/chat", json_body={"messages": [user("hi")]}, stop_after=8
        )
        run_id = headers["x-workflow-run-id"]
        run = await wf.get_run(run_id)
        assert await run.status() == "running"  # dropped in the middle of the answer
        _, rest = await sse(client, "GET", f"{base}/api/chat/{run_id}/stream?startIndex=8")
        _, whole = await sse(client, "GET", f"{base}/api/chat/{run_id}/stream?startIndex=0")
    assert len(first) == 8
    assert first + rest == whole
    assert texts(first + rest) == [ANSWER]
    assert rest[-1]["type"] == "finish"


async def test_negative_start_index_reads_the_tail_and_says_where_it_was(
    wf: Workflows, durable: bool
) -> None:
    chat = chat_workflow(wf, slow_agent(durable, delay=0))
    async with serve(chat_app(wf, chat)) as base, httpx.AsyncClient(timeout=30) as client:
        headers, whole = await sse(
            client, "POST", f"{base}/api/chat", json_body={"messages": [user("hi")]}
        )
        run_id = headers["x-workflow-run-id"]
        tail_headers, tail = await sse(
            client, "GET", f"{base}/api/chat/{run_id}/stream?startIndex=-3"
        )
        missing = await client.get(f"{base}/api/chat/run_NOPE/stream?startIndex=0")
    assert tail == whole[-3:]
    assert int(tail_headers["x-workflow-stream-tail-index"]) == len(whole) - 1
    assert missing.status_code == 404
    assert missing.json()["error"] == "run_not_found"


async def test_core_streams_read_negative_start_indexes(wf: Workflows, durable: bool) -> None:
    chat = chat_workflow(wf, slow_agent(durable, delay=0))
    run = await durably.start(chat, [user("hi")])
    await run.return_value()
    everything = [c async for c in run.readable(namespace="ui")]
    assert [c async for c in run.readable(start_index=-3, namespace="ui")] == everything[-3:]


def flaky_agent(durable: bool, retry_words: list[str]) -> tuple[Agent[None, str], list[int]]:
    """The model streams 5 words of its answer, then fails (attempt 1); its retry
    streams ``retry_words``."""
    attempts: list[int] = []

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        attempts.append(1)
        if len(attempts) == 1:
            for w in WORDS[:5]:
                yield w
            await asyncio.sleep(0.3)  # the client has these words by now
            raise RetryableError("the model's connection dropped", retry_after=0.05)
        for w in retry_words:
            yield w

    return make_agent(stream, durable), attempts


async def test_retried_model_step_repeating_its_text_leaves_exact_text(
    wf: Workflows, durable: bool
) -> None:
    agent, attempts = flaky_agent(durable, WORDS)
    chat = chat_workflow(wf, agent)
    async with serve(chat_app(wf, chat)) as base, httpx.AsyncClient(timeout=30) as client:
        headers, events = await sse(
            client, "POST", f"{base}/api/chat", json_body={"messages": [user("hi")]}
        )
    assert len(attempts) == 2
    assert texts(events) == [ANSWER]  # one part, each word once
    assert sum(e["type"] == "text-start" for e in events) == 1
    assert sum(e["type"] == "start-step" for e in events) == 1
    run = await wf.get_run(headers["x-workflow-run-id"])
    # The stored stream has both attempts' chunks; a committed reader sees the retry's only.
    stored = [c async for c in run.chunks(namespace="ui")]
    assert {c.attempt for c in stored if c.call is not None} == {1, 2}
    committed = [c async for c in run.readable(namespace="ui", committed=True)]
    assert texts(committed) == [ANSWER]


async def test_retried_model_step_with_other_text_discards_the_torn_part(
    wf: Workflows, durable: bool
) -> None:
    other = ["Something ", "else ", "entirely."]
    agent, attempts = flaky_agent(durable, other)
    chat = chat_workflow(wf, agent)
    async with serve(chat_app(wf, chat)) as base, httpx.AsyncClient(timeout=30) as client:
        headers, events = await sse(
            client, "POST", f"{base}/api/chat", json_body={"messages": [user("hi")]}
        )
        # A client that reconnects anywhere gets the same events.
        run_id = headers["x-workflow-run-id"]
        _, again = await sse(client, "GET", f"{base}/api/chat/{run_id}/stream?startIndex=4")
    assert len(attempts) == 2
    assert texts(events) == ["".join(other)]
    discarded = [e for e in events if e["type"] == "text-end" and e.get("providerMetadata")]
    assert len(discarded) == 1
    assert again == events[4:]
    assert await (await wf.get_run(run_id)).return_value() == "".join(other)


def approval_agent(durable: bool, *, webhooks: bool = False) -> Agent[None, str]:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        returns = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
        if returns:
            yield f"Refund: {returns[-1].content}"
            return
        yield "I will refund it."
        yield {1: DeltaToolCall(name="refund", json_args='{"order": "A1"}', tool_call_id="t1")}

    agent = make_agent(stream, durable, webhooks=webhooks)

    @agent.tool_plain(requires_approval=True)
    async def refund(order: str) -> str:
        return f"{order} refunded"

    return agent


def answered(events: list[dict[str, Any]], approved: bool) -> dict[str, Any]:
    """The assistant message useChat sends back once the user answered the approval."""
    request = next(e for e in events if e["type"] == "tool-approval-request")
    return {
        "id": "a1",
        "role": "assistant",
        "parts": [
            {"type": "text", "text": "I will refund it.", "state": "done"},
            {
                "type": "tool-refund",
                "toolCallId": request["toolCallId"],
                "state": "approval-responded",
                "input": {"order": "A1"},
                "approval": {"id": request["approvalId"], "approved": approved},
            },
        ],
    }


async def test_approval_through_the_chat_post_resumes_the_waiting_run(
    wf: Workflows, durable: bool
) -> None:
    chat = chat_workflow(wf, approval_agent(durable))
    async with serve(chat_app(wf, chat)) as base, httpx.AsyncClient(timeout=30) as client:
        headers, first = await sse(
            client, "POST", f"{base}/api/chat", json_body={"messages": [user("refund A1")]}
        )
        run_id = headers["x-workflow-run-id"]
        assert first[-1] == {"type": "finish", "finishReason": "tool-calls"}
        assert await (await wf.get_run(run_id)).status() == "running"  # waiting on the hook
        messages = [user("refund A1"), answered(first, approved=True)]
        headers2, rest = await sse(
            client, "POST", f"{base}/api/chat", json_body={"messages": messages}
        )
        # A reconnect of the continuation is addressed by what the POST said.
        _, again = await sse(
            client, "GET", f"{base}/api/chat/{headers2['x-workflow-run-id']}/stream?startIndex=1"
        )
    assert headers2["x-workflow-run-id"] == f"{run_id}~1"  # the same run, its next message
    assert rest[0]["type"] == "start"
    assert {"type": "tool-output-available", "toolCallId": "t1", "output": "A1 refunded"} in rest
    assert texts(rest) == ["Refund: A1 refunded"]
    assert again == rest[1:]
    run = await wf.get_run(run_id)
    assert await run.return_value() == "Refund: A1 refunded"
    assert len(await (await wf.open()).list_runs(RunFilter())) == 1  # no second run


async def test_approval_through_the_webhook_continues_the_stream(
    wf: Workflows, durable: bool
) -> None:
    chat = chat_workflow(wf, approval_agent(durable, webhooks=True))
    async with (
        serve(chat_app(wf, chat)) as base,
        serve(http_app(wf)) as hooks,
        httpx.AsyncClient(timeout=30) as client,
    ):
        headers, first = await sse(
            client, "POST", f"{base}/api/chat", json_body={"messages": [user("refund A1")]}
        )
        run_id = headers["x-workflow-run-id"]
        token = next(e for e in first if e["type"] == "tool-approval-request")["approvalId"]
        resp = await client.post(f"{hooks}/hooks/{token}", json={"approved": False})
        assert resp.status_code == 200, resp.text
        _, rest = await sse(client, "GET", f"{base}/api/chat/{run_id}~1/stream?startIndex=0")
    assert {"type": "tool-output-denied", "toolCallId": "t1"} in rest
    assert rest[-1]["type"] == "finish"
    run = await wf.get_run(run_id)
    assert (await run.return_value()).startswith("Refund: ")

"""AI SDK UI message streams from a durable agent run: :func:`stream_chat`.

Inside a workflow, ``await stream_chat(agent, messages)`` turns the AI SDK ``UIMessage``
list into the agent's message history (pydantic-ai's Vercel AI adapter,
``pydantic_ai.ui.vercel_ai``), runs the agent, and writes the agent's events as AI SDK UI
message chunks (``start``, ``start-step``, ``text-start``/``text-delta``/``text-end``,
``tool-input-available``, ``tool-output-available``, ``tool-approval-request``,
``finish-step``, ``finish``) to the run's stream ``namespace``, where
:func:`durably.ai.chat_app` (or any reader) picks them up.

Where each chunk is written:

- A model request is a step (``{agent}.model``). Its chunks are written from inside the
  step while the model streams, token by token, so a reader sees them live; the step
  records the model's response, and a replay returns it without asking the model again
  (and without writing its chunks again).
- What happens in the workflow body (a tool's call and result, an approval request, the
  ``start`` and ``finish`` of the message) is written by a small step, ``{agent}.ui``,
  recorded once like any step.

Chunk ids are stable across retries and replays: a text part's id is the model step's
``step_id`` and the part's index in that step's response (``"{step_id}:0"``), a tool
part's is its tool call id (recorded with the response). A model step that fails after
streaming part of its answer and is retried writes its chunks again under the same ids;
each chunk records the step attempt that wrote it. Readers choose (see docs/chat.md):

- ``run.readable(namespace="ui", committed=True)``: only the chunks of attempts whose
  completion is recorded, so never a duplicate, at the cost of seeing a model step's
  chunks only once it completed.
- :func:`durably.ai.chat_app` reads live and reconciles attempts by those ids (see
  :mod:`durably.ai.chat`): a retry's text that repeats what the failed attempt already
  streamed is not sent again, only what follows it; a retry whose text differs closes
  the failed attempt's part with ``providerMetadata.durably.discarded`` and streams its
  own under a new id.

Tool approvals (``requires_approval=True``): the run waits on a
:class:`~durably.ai.ToolApproval` hook per call (no compute while waiting). The wait is
announced with a ``tool-approval-request`` chunk per call whose ``approvalId`` is the
hook's token, then the message's ``finish`` (so that a client can answer) and the next
message's ``start``. A resume (``ToolApproval(approved=True).resume(token)``, ``POST
/hooks/{token}`` for webhooks, or a chat POST carrying the approval, see
:func:`durably.ai.chat_app`) continues the same run and its stream. With
:class:`~durably.ai.DurablyDurability` the capability waits and announces (step
``{agent}.approval``); without it, the agent's run ends with pydantic-ai's
``DeferredToolRequests`` and ``stream_chat`` waits on webhooks of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import TypeAdapter
from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults, ToolApproved, ToolDenied
from pydantic_ai.messages import (
    FinalResultEvent,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    PartDeltaEvent,
    PartEndEvent,
    PartStartEvent,
)
from pydantic_ai.models import (
    CompletedStreamedResponse,
    Model,
    ModelRequestParameters,
    StreamedResponse,
)
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext
from pydantic_ai.ui.vercel_ai import VercelAIAdapter, VercelAIEventStream
from pydantic_ai.ui.vercel_ai.request_types import UIMessage

from ..api import run_step
from ..runtime.context import current_instance, get_step_metadata
from ..streams import get_writable
from ._callbacks import step_callbacks
from .approvals import ApprovalRequest, ToolApproval
from .durability import DurablyDurability

__all__ = ["stream_chat", "ui_messages_to_history"]

#: The AI SDK major whose chunks are written (6: tool approvals exist; 7 is the same wire).
SDK_VERSION: Literal[6] = 6

_ui_messages: TypeAdapter[list[UIMessage]] = TypeAdapter(list[UIMessage])
_MODEL_STREAM_EVENTS = (PartStartEvent, PartDeltaEvent, PartEndEvent, FinalResultEvent)


def ui_messages_to_history(messages: Sequence[dict[str, Any]]) -> list[ModelMessage]:
    """AI SDK ``UIMessage`` dicts as pydantic-ai message history (the Vercel AI adapter's
    conversion), without the text parts a retried model step discarded."""
    return VercelAIAdapter.load_messages(_ui_messages.validate_python(_kept(messages)))


def _kept(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` without parts marked ``providerMetadata.durably.discarded`` (text a
    failed model attempt streamed before its retry wrote other text: see chat.py)."""

    def discarded(part: Any) -> bool:
        meta = part.get("providerMetadata") if isinstance(part, dict) else None
        durably = meta.get("durably") if isinstance(meta, dict) else None
        return isinstance(durably, dict) and bool(durably.get("discarded"))

    return [
        {**m, "parts": [p for p in m.get("parts") or [] if not discarded(p)]}
        if isinstance(m, dict)
        else m
        for m in messages
    ]


class _Chunks(VercelAIEventStream[Any, Any]):
    """pydantic-ai's Vercel AI event stream with ids from a stable prefix (a step id)."""

    def __init__(self, prefix: str) -> None:
        super().__init__(None, sdk_version=SDK_VERSION)
        self._prefix = prefix
        self._parts = 0

    def new_message_id(self) -> str:
        self.message_id = f"{self._prefix}:{self._parts}"
        self._parts += 1
        return self.message_id

    async def chunks(self, event: Any) -> list[dict[str, Any]]:
        return [json.loads(c.encode(SDK_VERSION)) async for c in self.handle_event(event)]


async def _write(namespace: str, chunks: list[dict[str, Any]], close: bool = False) -> None:
    """Step body: append ``chunks`` to the run's stream ``namespace`` (then close it)."""
    out = get_writable(namespace)
    for chunk in chunks:
        await out.write(chunk)
    if close:
        await out.close()


async def _write_model_events(namespace: str, events: AsyncIterable[Any]) -> None:
    """Inside a model step: the live events of the model's response as UI chunks, each
    written as it comes; text ids from the step's id (stable across its attempts)."""
    conv = _Chunks(get_step_metadata().step_id)
    out = get_writable(namespace)
    await out.write({"type": "start-step"})
    async for event in events:
        for chunk in await conv.chunks(event):
            await out.write(chunk)
    await out.write({"type": "finish-step"})


def _approval_chunks(requests: list[ApprovalRequest], message_id: str) -> list[dict[str, Any]]:
    """A message's end while its run waits for approvals: each call and its request (the
    ``approvalId`` is the hook token), ``finish``, and the next message's ``start``."""
    chunks: list[dict[str, Any]] = []
    for r in requests:
        chunks.append(
            {
                "type": "tool-input-available",
                "toolCallId": r.tool_call_id,
                "toolName": r.tool_name,
                "input": r.args,
            }
        )
        chunks.append(
            {"type": "tool-approval-request", "approvalId": r.token, "toolCallId": r.tool_call_id}
        )
    chunks.append({"type": "finish", "finishReason": "tool-calls"})
    chunks.append({"type": "start", "messageId": message_id})
    return chunks


class _StepModel(WrapperModel):
    """A model whose every request is a durable step that streams its chunks live.

    Used when the agent carries no durability capability of its own: the request runs in
    step ``{agent}.model``, its events become UI chunks written from inside the step as
    they come, and the step records the response (as JSON); the workflow body sees the
    recorded response.
    """

    def __init__(self, wrapped: Model | str, agent_name: str, namespace: str) -> None:
        super().__init__(wrapped)
        self._step_name = f"{agent_name}.model"
        self._namespace = namespace

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        wrapped = self.wrapped
        namespace = self._namespace

        async def request() -> Any:
            async with wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                await _write_model_events(namespace, stream)
                response = stream.get()
            return ModelMessagesTypeAdapter.dump_python([response], mode="json")[0]

        data = await run_step(self._step_name, request)
        response = ModelMessagesTypeAdapter.validate_python([data])[0]
        assert isinstance(response, ModelResponse)
        yield CompletedStreamedResponse(
            response, model_request_parameters=model_request_parameters, replay_events=True
        )


class _BodyEvents:
    """The run's events seen in the workflow body, written as chunks by ``{agent}.ui``
    steps (the model's own events were written live by its step)."""

    def __init__(self, agent_name: str, namespace: str) -> None:
        self.step = f"{agent_name}.ui"
        self.namespace = namespace
        self.conv = _Chunks("body")

    async def write(self, chunks: list[dict[str, Any]], *, close: bool = False) -> None:
        if chunks or close:
            await run_step(self.step, _write, args=(self.namespace, chunks, close))

    async def __call__(self, ctx: RunContext[Any], events: AsyncIterable[Any]) -> None:
        async for event in events:
            if isinstance(event, _MODEL_STREAM_EVENTS):
                continue
            await self.write(await self.conv.chunks(event))


async def stream_chat(
    agent: Agent[Any, Any],
    messages: Sequence[dict[str, Any]],
    *,
    namespace: str = "ui",
    approval_timeout: float | None = None,
    deps: Any = None,
) -> str:
    """Run ``agent`` on an AI SDK chat and stream its answer as UI message chunks.

    Call it in a workflow body. The messages (AI SDK ``UIMessage`` dicts, as ``useChat``
    sends them) become the agent's history; the agent's events are written to the run's
    stream ``namespace`` as AI SDK UI message chunks as they are produced (see the
    module's notes for where and with which ids). A tool call that needs approval
    suspends the run on a :class:`~durably.ai.ToolApproval` hook whose token is the
    chunk's ``approvalId``; then the run goes on.

    With :class:`~durably.ai.DurablyDurability` on the agent, its steps are the
    capability's (``{name}.model``, ``{name}.tool.{tool}``, ``{name}.approval``, its
    approval timeout); without it, each model request is made a step here (tools then
    run in the workflow body, so they must be ``async``) and approvals wait at most
    ``approval_timeout`` seconds.

    Args:
        agent: a pydantic-ai agent (its ``name`` names the steps).
        messages: the chat so far, the user's new message last.
        namespace: the run stream the chunks go to.
        approval_timeout: without the capability: deny a pending approval after this
            many seconds (``None``: wait for ever).
        deps: the agent's dependencies for this run.

    Returns:
        The final text output.
    """
    inst = current_instance()
    if inst is None:
        raise RuntimeError("stream_chat() works only inside a workflow body")
    name = agent.name or "agent"
    ui = _UIMessages.of(agent, messages)
    body = _BodyEvents(name, namespace)
    message_id = f"msg-{inst.run_id}"
    await body.write([{"type": "start", "messageId": message_id}])
    if _durable(agent):

        async def model_events(ctx: RunContext[Any], events: AsyncIterable[Any]) -> None:
            await _write_model_events(namespace, events)

        async def approval_requested(requests: list[ApprovalRequest]) -> None:
            await _write(namespace, _approval_chunks(requests, message_id))

        with step_callbacks(
            model_events=model_events, approval_requested=approval_requested, run_events=False
        ):
            result = await agent.run(
                message_history=ui.history,
                deferred_tool_results=ui.deferred,
                event_stream_handler=body,
                deps=deps,
            )
    else:
        result = await _run_with_step_model(agent, ui, body, message_id, approval_timeout, deps)
    await body.write([{"type": "finish", "finishReason": "stop"}], close=True)
    return str(result.output)


def _durable(agent: Agent[Any, Any]) -> bool:
    """Whether the agent carries :class:`~durably.ai.DurablyDurability`."""
    found = False

    def visit(cap: Any) -> None:
        nonlocal found
        found = found or isinstance(cap, DurablyDurability)

    root = getattr(agent, "root_capability", None)
    if root is not None and hasattr(root, "apply"):
        root.apply(visit)
    return found


async def _run_with_step_model(
    agent: Agent[Any, Any],
    ui: _UIMessages,
    body: _BodyEvents,
    message_id: str,
    approval_timeout: float | None,
    deps: Any,
) -> Any:
    """The agent without a durability capability: each model request a step of ours,
    approvals through the run's ``DeferredToolRequests`` output and hooks of ours."""
    name = agent.name or "agent"
    model = _StepModel(_agent_model(agent), name, body.namespace)
    output_type: Any = [agent.output_type, DeferredToolRequests]
    history, deferred = ui.history, ui.deferred
    while True:
        result = await agent.run(
            message_history=history,
            deferred_tool_results=deferred,
            model=model,
            output_type=output_type,
            event_stream_handler=body,
            deps=deps,
        )
        if not isinstance(result.output, DeferredToolRequests):
            return result
        history = result.all_messages()
        deferred = await _ask_approvals(body, result.output, message_id, approval_timeout)


async def _ask_approvals(
    body: _BodyEvents, requests: DeferredToolRequests, message_id: str, timeout: float | None
) -> DeferredToolResults:
    """Announce each approval on a webhook, end the message so that a client can answer,
    and wait for the answers (durably; a timeout denies)."""
    approvals: dict[str, bool | ToolApproved | ToolDenied] = {}
    async with contextlib.AsyncExitStack() as stack:
        hooks = []
        for call in requests.approvals:
            hook = await stack.enter_async_context(
                ToolApproval.wait(
                    metadata={"tool_name": call.tool_name, "tool_call_id": call.tool_call_id},
                    webhook=True,
                )
            )
            hooks.append(
                (
                    ApprovalRequest(
                        hook.token,
                        call.tool_call_id,
                        call.tool_name,
                        call.args_as_dict(),
                        body.step,
                    ),
                    hook,
                )
            )
        await body.write(_approval_chunks([r for r, _ in hooks], message_id))
        for request, hook in hooks:
            try:
                answer = await asyncio.wait_for(hook, timeout)
            except TimeoutError:
                answer = ToolApproval(approved=False, reason="the approval timed out")
            approvals[request.tool_call_id] = (
                ToolApproved(override_args=answer.override_args)
                if answer.approved
                else ToolDenied(message=answer.reason or "The user denied this tool call.")
            )
    return DeferredToolResults(approvals=approvals)


@dataclass
class _UIMessages:
    history: list[ModelMessage]
    deferred: DeferredToolResults | None

    @classmethod
    def of(cls, agent: Agent[Any, Any], messages: Sequence[dict[str, Any]]) -> _UIMessages:
        # The adapter's own reading: the history, and approvals answered in the messages
        # (a chat that answered an approval of a run no longer waiting for it).
        adapter = VercelAIAdapter(agent, _request(messages), sdk_version=SDK_VERSION)
        return cls(adapter.messages, adapter.deferred_tool_results)


def _request(messages: Sequence[dict[str, Any]]) -> Any:
    from pydantic_ai.ui.vercel_ai.request_types import SubmitMessage

    return SubmitMessage(id="chat", messages=_ui_messages.validate_python(_kept(messages)))


def _agent_model(agent: Agent[Any, Any]) -> Model | str:
    model = agent.model
    if model is None:
        raise ValueError(f"agent {agent.name!r} has no model: give Agent(model=...)")
    return model

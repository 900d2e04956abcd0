"""Human input on durably hooks: tool approvals and pydantic-ai's external-event waits.

A run that waits for a person holds no compute: it suspends on a hook
(:class:`~durably.BaseHook`) until the hook is resumed (``ToolApproval(approved=True)
.resume(token)`` from any process of the world, the chat endpoint, or ``POST
/hooks/{token}`` of the HTTP app when the capability makes webhooks), raced durably against
an optional timeout (``asyncio.wait_for`` in a workflow body is a durable timer).

Each wait first records its hooks, then runs one step that announces their tokens (the
callbacks of :func:`durably.ai.step_callbacks`, e.g. a ``tool-approval-request`` chunk to
the UI stream), then suspends. A replay finds the same hooks, tokens and announcement in
the log and announces nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import JsonValue
from pydantic_ai.external_events import ExternalEventError, ExternalEventWaiter
from pydantic_ai.messages import ToolCallPart
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, ToolApproved, ToolDenied

from .. import BaseHook, HookWait, run_step
from ._callbacks import carried, carry_into_step

__all__ = [
    "ApprovalRequest",
    "EventRequest",
    "ExternalEvent",
    "HookEventWaiter",
    "ToolApproval",
    "wait_for_approvals",
]


@dataclass
class ToolApproval(BaseHook):
    """The decision on one tool call that needs approval (``requires_approval=True``).

    Resume the hook whose token was announced for the call: ``await
    ToolApproval(approved=True).resume(token)``, or ``POST /hooks/{token}`` with
    ``{"approved": false, "reason": "not today"}`` when the capability makes webhooks.

    Attributes:
        approved: run the tool (``True``) or tell the model it was denied (``False``).
        reason: why it was denied; the model reads it.
        override_args: arguments to call the tool with instead of the model's.
    """

    approved: bool
    reason: str | None = None
    override_args: dict[str, Any] | None = None


@dataclass
class ExternalEvent(BaseHook):
    """What resolves a run's wait for an external event (pydantic-ai's
    ``wait_for_external_event``, the ``RequestInput`` capability).

    Attributes:
        payload: the JSON payload the wait returns (for ``RequestInput``: the JSON form of
            ``DeferredToolResults``).
        error: end the wait with this reason instead (it raises ``ExternalEventError``).
    """

    payload: Any = None
    error: str | None = None


@dataclass(frozen=True)
class ApprovalRequest:
    """A tool call waiting for approval, as announced to the outside world.

    Attributes:
        token: the hook token to resume with a :class:`ToolApproval`.
        tool_call_id: the model's id of the call (the AI SDK's ``toolCallId``).
        tool_name: the tool's name.
        args: the arguments the model gave.
        agent: the agent's name.
    """

    token: str
    tool_call_id: str
    tool_name: str
    args: dict[str, Any] = field(default_factory=dict)
    agent: str = ""


@dataclass(frozen=True)
class EventRequest:
    """A wait for an external event whose ``ask`` handed its token out.

    Attributes:
        token: the hook token to resume with an :class:`ExternalEvent`.
        name: the wait's name (``RequestInput(name=...)``).
        agent: the agent's name.
    """

    token: str
    name: str
    agent: str = ""


def _args(call: ToolCallPart) -> dict[str, Any]:
    try:
        return call.args_as_dict()
    except ValueError:  # arguments the model sent as broken JSON: announce them as text
        return {"_raw": call.args if isinstance(call.args, str) else repr(call.args)}


async def _await_within(aw: Awaitable[Any], timeout: timedelta | None) -> Any:
    if timeout is None:
        return await aw
    return await asyncio.wait_for(aw, timeout.total_seconds())


async def _next(hook: HookWait[Any]) -> Any:
    return await hook


class HookEventWaiter(ExternalEventWaiter):
    """pydantic-ai's ``ExternalEventWaiter`` on a durably hook (installed for each agent run
    inside a workflow by :class:`~durably.ai.DurablyDurability`).

    Args:
        agent: the agent's name (the steps are ``{agent}.ask.{name}``).
        webhook: make the hooks webhooks (resumable with ``POST /hooks/{token}``).
    """

    def __init__(self, agent: str, *, webhook: bool = False) -> None:
        self.agent = agent
        self.webhook = webhook

    async def wait(
        self,
        name: str,
        *,
        ask: Callable[[str], Awaitable[JsonValue]],
        timeout: timedelta | None,
    ) -> JsonValue:
        """Create a hook, run ``ask`` with its token in a step, and unless it answered,
        suspend until the hook is resumed or ``timeout`` passes."""
        callbacks = carried()
        meta = {"agent": self.agent, "wait": name}
        async with ExternalEvent.wait(metadata=meta, webhook=self.webhook) as hook:
            token = hook.token

            async def ask_step() -> JsonValue:
                with carry_into_step(callbacks):
                    answer = await ask(token)
                    if answer is None and callbacks.event_requested is not None:
                        await callbacks.event_requested(EventRequest(token, name, self.agent))
                    return answer

            answer = await run_step(f"{self.agent}.ask.{name}", ask_step)
            if answer is not None:
                return answer  # type: ignore[no-any-return]
            try:
                event: ExternalEvent = await _await_within(_next(hook), timeout)
            except TimeoutError:
                raise ExternalEventError(f"No resolution arrived within {timeout}.") from None
        if event.error is not None:
            raise ExternalEventError(event.error)
        return event.payload  # type: ignore[no-any-return]


async def wait_for_approvals(
    agent: str,
    requests: DeferredToolRequests,
    *,
    timeout: timedelta | None,
    webhook: bool,
) -> DeferredToolResults | None:
    """Suspend until every pending approval of ``requests`` is decided (one hook per call),
    or ``timeout`` passes (the undecided ones are denied). ``None`` when none is pending."""
    if not requests.approvals:
        return None
    callbacks = carried()
    decisions: dict[str, ToolApproval] = {}
    async with AsyncExitStack() as stack:
        # Every hook is created before the first await: all are recorded in one turn.
        made = [
            ToolApproval.wait(
                metadata={
                    "agent": agent,
                    "tool_name": call.tool_name,
                    "tool_call_id": call.tool_call_id,
                },
                webhook=webhook,
            )
            for call in requests.approvals
        ]
        hooks: list[tuple[ApprovalRequest, HookWait[ToolApproval]]] = []
        for call, wait in zip(requests.approvals, made, strict=True):
            hook = await stack.enter_async_context(wait)
            pending = ApprovalRequest(
                token=hook.token,
                tool_call_id=call.tool_call_id,
                tool_name=call.tool_name,
                args=_args(call),
                agent=agent,
            )
            hooks.append((pending, hook))
        announced = [p for p, _ in hooks]

        async def announce(**_summary: Any) -> None:
            with carry_into_step(callbacks):
                if callbacks.approval_requested is not None:
                    await callbacks.approval_requested(announced)

        await run_step(
            f"{agent}.approval",
            announce,
            kwargs={"tool_calls": [{"id": p.tool_call_id, "tool": p.tool_name} for p in announced]},
        )

        async def decide(pending: ApprovalRequest, hook: HookWait[ToolApproval]) -> None:
            decisions[pending.tool_call_id] = await hook

        try:
            await _await_within(asyncio.gather(*(decide(p, h) for p, h in hooks)), timeout)
        except TimeoutError:
            pass
    approvals: dict[str, bool | ToolApproved | ToolDenied] = {}
    for pending, _ in hooks:
        decision = decisions.get(pending.tool_call_id)
        if decision is None:
            approvals[pending.tool_call_id] = ToolDenied(
                f"No decision on this tool call arrived within {timeout}."
            )
        elif decision.approved:
            approvals[pending.tool_call_id] = ToolApproved(override_args=decision.override_args)
        else:
            approvals[pending.tool_call_id] = ToolDenied(
                decision.reason or "The tool call was denied."
            )
    return requests.build_results(approvals=approvals)

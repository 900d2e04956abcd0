"""DurablyDurability: a pydantic-ai agent whose model requests and tool calls are steps.

Built on pydantic-ai's public durable-execution surface (``pydantic_ai.durable_exec``): a
``BaseDurabilityCapability`` whose operation backend runs each operation as
``durably.run_step`` (see :mod:`._backend`). Inside a workflow body:

- every model request is the step ``{agent}.model``; every tool call the step
  ``{agent}.tool.{tool_name}``. A replay (after a crash, on another worker) returns the
  recorded response or result instead of asking the model or running the tool again.
- a tool with ``metadata={"durably": "workflow"}`` runs in the workflow body itself, so it
  may await hooks, ``durably.sleep`` and steps; ``metadata={"durably": {"max_retries": 5,
  "timeout": "30s"}}`` sets a tool step's options.
- tools that need approval (``requires_approval=True``) and pydantic-ai's external-event
  waits suspend the run on hooks (:mod:`.approvals`), raced against an optional timeout.
- the run's attributes ``ai.model``, ``ai.requests``, ``ai.input_tokens`` and
  ``ai.output_tokens`` follow its model requests.

Outside a workflow (and inside a step) the agent is plain pydantic-ai.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from weakref import WeakKeyDictionary

from pydantic_ai._utils import disable_threads
from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.capabilities.abstract import WrapRunHandler
from pydantic_ai.durable_exec import (
    JSON_CODEC,
    BaseDurabilityCapability,
    DurabilityEngineSpec,
    DurableOperationId,
    RoleBasedOperationConfig,
    conversation_id_from_run_id,
)
from pydantic_ai.exceptions import UserError
from pydantic_ai.external_events import external_event_scope
from pydantic_ai.messages import AgentStreamEvent, ModelResponse
from pydantic_ai.models import Model, ModelRequestContext
from pydantic_ai.run import AgentRunResult
from pydantic_ai.tools import AgentDepsT, DeferredToolRequests, DeferredToolResults, RunContext
from pydantic_ai.toolsets import ToolsetTool

from .. import FatalError, in_workflow, now, set_attributes, uuid4
from ..durations import parse_duration
from ._backend import STEP_OPTIONS, StepBackend, StepOptions
from ._callbacks import carried
from .approvals import HookEventWaiter, wait_for_approvals

__all__ = ["DurablyDurability"]

#: The tool metadata key read by the capability.
METADATA_KEY = "durably"


@dataclass
class _Usage:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


# The usage of a run's body so far, by the body's event loop: each live body has a loop of
# its own, so a replay on a cold start counts again from zero through the recorded
# responses, and the attributes it sets are the ones the first execution set.
_usage: WeakKeyDictionary[asyncio.AbstractEventLoop, _Usage] = WeakKeyDictionary()


def _checked(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Step options, refusing a key ``durably.run_step`` does not take."""
    unknown = sorted(set(options) - STEP_OPTIONS)
    if unknown:
        raise UserError(
            f"{where}: unknown step option(s) {unknown}; a step takes "
            f"{sorted(STEP_OPTIONS)} (as durably.run_step)"
        )
    return dict(options)


@dataclass(init=False, kw_only=True)
class DurablyDurability(BaseDurabilityCapability[AgentDepsT]):
    """Make a pydantic-ai agent durable on durably: attach it with
    ``Agent(..., name="support", capabilities=[DurablyDurability()])`` and run the agent
    inside a workflow body.

    Args:
        models: more models by id, for switching models at run time (pydantic-ai's rules:
            a ``Model`` instance used at run time must be registered here).
        event_stream_handler: called inside each model step with the live events of the
            streamed response (and in a step per event for the run's other events).
            Per-run callbacks: :func:`durably.ai.step_callbacks`.
        name: the agent's name in step names (default: the agent's ``name``).
        model_step: options of model steps (``max_retries``, ``retry_after``, ``timeout``).
        tool_step: default options of tool steps (a tool's ``metadata={"durably": {...}}``
            overrides them).
        approval_timeout: how long a run waits for a tool approval (a duration: ``"2d"``,
            seconds, ``timedelta``) before denying the call; ``None``: no limit.
        approvals: wait for approvals on hooks inside workflows (``True``); ``False``
            leaves them to other capabilities (or to the run's ``DeferredToolRequests``
            output).
        webhooks: make the hooks of approvals and external events webhooks, which the HTTP
            app resumes from ``POST /hooks/{token}``.
    """

    engine_spec = DurabilityEngineSpec(
        engine_name="durably",
        durable_unit_noun="step",
        durable_unit_plural="steps",
        durable_container_noun="workflow",
        # Step results are stored by durably's serde, which takes JSON data: pydantic-ai
        # reduces each result to JSON in the step and validates it back in the body.
        codec=JSON_CODEC,
        serialization_failure=lambda exc: FatalError(
            f"the result of an agent step cannot be stored as JSON ({exc}); a retry would "
            "fail alike: return JSON-compatible values (or pydantic models) from tools"
        ),
        wrapped_toolset_kinds=frozenset({"function", "mcp", "dynamic"}),
        toolset_lifecycles={
            "function": "enter-always",
            # A step runs on the worker's event loop, the body on a loop of its own: a
            # session the run held would be opened on one loop and closed on the other.
            # Each MCP step connects for itself (Temporal's choice, for the same reason).
            "mcp": "enter-outside-durable",
            "dynamic": "enter-never",
        },
        tool_call_result_upgrade_lenient=False,
        journal_discovery=True,
        sequential_tools_in_durable_context=False,
        # Toolsets given to one run are not wrapped: their calls would run unrecorded.
        unsupported_runtime_toolset_kinds=frozenset({"function", "mcp", "dynamic"}),
        tool_config_key=None,  # read by this capability itself (see _tool_options)
    )

    def __init__(
        self,
        *,
        models: Mapping[str, Model] | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        name: str | None = None,
        model_step: StepOptions | None = None,
        tool_step: StepOptions | None = None,
        approval_timeout: str | float | timedelta | None = None,
        approvals: bool = True,
        webhooks: bool = False,
    ) -> None:
        super().__init__(models=models, event_stream_handler=event_stream_handler, name=name)
        self._model_step = _checked(model_step or {}, "model_step")
        self._tool_step = _checked(tool_step or {}, "tool_step")
        self._approval_timeout = (
            None
            if approval_timeout is None
            else timedelta(seconds=parse_duration(approval_timeout))
        )
        self._approvals = approvals
        self._webhooks = webhooks
        self._backend: StepBackend | None = None

    # -- binding -----------------------------------------------------------------------

    def _bind_to_agent(self, agent: Any) -> None:
        self._backend = StepBackend(
            agent_name=self.name,
            config=RoleBasedOperationConfig(
                model=self._model_step,
                event=self._model_step,
                capability={},
                tool=self._tool_step,
                resolve_tool=self._tool_options,
            ),
        )
        super()._bind_to_agent(agent)

    def get_durable_operation_backend(self) -> StepBackend:
        """The backend that runs this agent's operations as durably steps."""
        if self._backend is None:
            raise UserError(
                "DurablyDurability is not bound to an agent yet: pass it to "
                "Agent(..., capabilities=[DurablyDurability()])"
            )
        return self._backend

    def _tool_options(
        self, operation_id: DurableOperationId, tool: object | None, tool_name: str
    ) -> StepOptions | Literal[False]:
        """A tool call's step options, or ``False`` to run it in the workflow body."""
        metadata: Mapping[str, Any] = {}
        if isinstance(tool, ToolsetTool) and tool.tool_def.metadata:
            metadata = tool.tool_def.metadata
        chosen = metadata.get(METADATA_KEY)
        if chosen is None:
            return self._tool_step
        if chosen is False or chosen == "workflow":
            return False
        if isinstance(chosen, Mapping):
            return {**self._tool_step, **_checked(chosen, f"tool {tool_name!r}")}
        raise UserError(
            f"tool {tool_name!r} has metadata {METADATA_KEY}={chosen!r}; use "
            f'"workflow" (run it in the workflow body) or a dict of step options '
            '({"max_retries": 5, "timeout": "30s"})'
        )

    # -- the durable container -----------------------------------------------------------

    @property
    def in_durable_context(self) -> bool:
        """Whether the code runs in a workflow body."""
        return in_workflow()

    def get_default_run_id(self) -> str | None:
        """A replay-stable run id for an agent run inside a workflow."""
        return str(uuid4()) if in_workflow() else None

    def get_default_conversation_id(self, run_id: str) -> str | None:
        """A replay-stable conversation id inside a workflow."""
        return conversation_id_from_run_id(run_id) if in_workflow() else None

    def get_run_clock(self) -> Callable[[], datetime] | None:
        """The run's durable clock inside a workflow."""
        return now if in_workflow() else None

    async def get_run_start_time(self, run_id: str) -> datetime | None:
        """When the agent run started, by the run's durable clock."""
        return now() if in_workflow() else None

    def _effective_event_stream_handler(self) -> EventStreamHandler[AgentDepsT] | None:
        return carried().model_events or self._event_stream_handler

    async def _dispatch_event_stream_event(
        self, ctx: RunContext[AgentDepsT], event: AgentStreamEvent
    ) -> None:
        if carried().run_events:
            await super()._dispatch_event_stream_event(ctx, event)

    async def wrap_run(
        self, ctx: RunContext[AgentDepsT], *, handler: WrapRunHandler
    ) -> AgentRunResult[Any]:
        """Inside a workflow: external-event waits on hooks, no threads in the body."""
        if not in_workflow():
            return await handler()
        waiter = HookEventWaiter(self.name, webhook=self._webhooks)
        with external_event_scope(waiter), disable_threads():
            return await super().wrap_run(ctx, handler=handler)

    async def handle_deferred_tool_calls(
        self, ctx: RunContext[AgentDepsT], *, requests: DeferredToolRequests
    ) -> DeferredToolResults | None:
        """Inside a workflow, wait on hooks for the approvals no other capability gave."""
        if not (self._approvals and in_workflow()):
            return None
        return await wait_for_approvals(
            self.name, requests, timeout=self._approval_timeout, webhook=self._webhooks
        )

    async def after_model_request(
        self,
        ctx: RunContext[AgentDepsT],
        *,
        request_context: ModelRequestContext,
        response: ModelResponse,
    ) -> ModelResponse:
        """Keep the run's ``ai.*`` attributes current."""
        if in_workflow():
            usage = _usage.setdefault(asyncio.get_running_loop(), _Usage())
            usage.requests += 1
            usage.input_tokens += response.usage.input_tokens or 0
            usage.output_tokens += response.usage.output_tokens or 0
            attrs: dict[str, Any] = {
                "ai.requests": usage.requests,
                "ai.input_tokens": usage.input_tokens,
                "ai.output_tokens": usage.output_tokens,
            }
            if response.model_name:
                attrs["ai.model"] = response.model_name[:200]
            await set_attributes(**attrs)
        return response

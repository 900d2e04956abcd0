"""The operation backend: one pydantic-ai durable operation is one ``durably.run_step``.

pydantic-ai hands the backend an async ``body`` closure that already holds the operation's
inputs (the messages of a model request, the arguments of a tool call): the step records
only a small summary as its arguments (the model's name, the tool's arguments), never the
conversation, and its result is the operation's JSON-encoded result (a model *response*).
That is what keeps a conversation's log linear in its length.

The body runs in the step, on the worker's loop, in the step's context: what the workflow
side set for the step (the callbacks of :mod:`._callbacks`) is carried into it explicitly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic_ai.durable_exec import (
    CallableOperationBackend,
    DurableOperationId,
    ModelRequestId,
    RoleBasedOperationConfig,
    ToolsetCallToolId,
)
from pydantic_core import to_jsonable_python

from .. import run_step
from ._callbacks import carried, carry_into_step
from ._errors import fatal_for_step
from ._names import StepNamer

__all__ = ["STEP_OPTIONS", "StepBackend", "StepOptions"]

#: Step options a configuration may hold (``durably.run_step``'s keyword arguments).
StepOptions = Mapping[str, Any]
STEP_OPTIONS = frozenset({"max_retries", "retry_after", "timeout"})


class StepBackend(CallableOperationBackend[StepOptions]):
    """Runs each bound pydantic-ai operation as a named durably step."""

    def __init__(self, *, agent_name: str, config: RoleBasedOperationConfig[StepOptions]) -> None:
        super().__init__(namer=StepNamer(agent_name), config=config)

    async def execute(
        self,
        *,
        operation_id: DurableOperationId,
        name: str,
        body: Callable[[], Awaitable[object]],
        cache_key: tuple[object, ...],
        config: StepOptions,
    ) -> object:
        """Run ``body`` as the step ``name`` (recorded, retried, replayed)."""
        callbacks = carried()

        async def step(**_summary: Any) -> object:
            with carry_into_step(callbacks), fatal_for_step():
                return await body()

        options = {k: v for k, v in (config or {}).items() if k in STEP_OPTIONS}
        return await run_step(name, step, kwargs=_summary(operation_id, cache_key), **options)


def _summary(operation_id: DurableOperationId, cache_key: tuple[object, ...]) -> dict[str, Any]:
    """What a step records as its arguments: enough to read the log by, never the history."""
    if isinstance(operation_id, ModelRequestId):
        return {"model": operation_id.model_name}
    if isinstance(operation_id, ToolsetCallToolId) and len(cache_key) > 1:
        try:
            return {"args": to_jsonable_python(cache_key[1], fallback=repr)}
        except Exception:  # arguments a tool validated into something exotic: skip them
            return {}
    return {}

"""Durable AI agents on pydantic-ai (the extra ``durably[ai]``).

``DurablyDurability`` makes every model request and tool call of a pydantic-ai agent a
recorded step when the agent runs inside a workflow; tool approvals and external-event
waits suspend the run on hooks. The core of durably never imports this package.
"""

from __future__ import annotations

from .._extras import require

require("ai", "durably.ai")

from ._callbacks import StepCallbacks, step_callbacks  # noqa: E402
from .approvals import (  # noqa: E402
    ApprovalRequest,
    EventRequest,
    ExternalEvent,
    HookEventWaiter,
    ToolApproval,
)
from .durability import DurablyDurability  # noqa: E402

__all__ = [
    "ApprovalRequest",
    "DurablyDurability",
    "EventRequest",
    "ExternalEvent",
    "HookEventWaiter",
    "StepCallbacks",
    "ToolApproval",
    "step_callbacks",
]

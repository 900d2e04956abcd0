"""Durable AI agents on pydantic-ai, streamed to the AI SDK's ``useChat`` (the extra
``durably[ai]``).

- ``DurablyDurability`` makes every model request and tool call of a pydantic-ai agent a
  recorded step when the agent runs inside a workflow; tool approvals and external-event
  waits suspend the run on hooks.
- :func:`stream_chat` (:mod:`durably.ai.ui`) runs an agent on an AI SDK chat inside a
  workflow and writes its answer as AI SDK UI message chunks to the run's stream.
- :func:`chat_app` (:mod:`durably.ai.chat`) is an ASGI app that ``@workflow/ai``'s
  ``WorkflowChatTransport`` talks to unchanged (it needs ``durably[web]`` as well).

The core of durably never imports this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from .ui import stream_chat  # noqa: E402

if TYPE_CHECKING:
    from .chat import chat_app

__all__ = [
    "ApprovalRequest",
    "DurablyDurability",
    "EventRequest",
    "ExternalEvent",
    "HookEventWaiter",
    "StepCallbacks",
    "ToolApproval",
    "chat_app",
    "step_callbacks",
    "stream_chat",
]


def __getattr__(name: str) -> Any:
    if name == "chat_app":  # its Starlette comes with durably[web]
        from .chat import chat_app

        return chat_app
    raise AttributeError(f"module 'durably.ai' has no attribute {name!r}")

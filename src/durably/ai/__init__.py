"""Durable AI agents on pydantic-ai, streamed to the AI SDK's ``useChat`` (extra ``durably[ai]``).

- :func:`stream_chat` (in :mod:`durably.ai.ui`): run an agent on an AI SDK chat inside a
  workflow and write its answer as AI SDK UI message chunks to the run's stream.
- :func:`chat_app` (in :mod:`durably.ai.chat`): an ASGI app that ``@workflow/ai``'s
  ``WorkflowChatTransport`` talks to unchanged (needs ``durably[web]`` as well).

The core never imports this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._extras import require

require("ai", "durably.ai")

from .ui import ToolApproval, stream_chat  # noqa: E402

if TYPE_CHECKING:
    from .chat import chat_app

__all__ = ["ToolApproval", "chat_app", "stream_chat"]


def __getattr__(name: str) -> Any:
    if name == "chat_app":  # its Starlette comes with durably[web]
        from .chat import chat_app

        return chat_app
    raise AttributeError(f"module 'durably.ai' has no attribute {name!r}")

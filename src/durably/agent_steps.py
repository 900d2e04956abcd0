"""What the steps of a durable agent run are, read from their names (no pydantic-ai needed).

``durably.ai`` names an agent's steps ``{agent}.model`` (a model request),
``{agent}.tool.{tool_name}`` (a tool call), ``{agent}.approval`` (announcing approvals),
``{agent}.ask.{name}`` (an external-event wait), ``{agent}.events`` and ``{agent}.ui``
(writing the run's events or UI chunks), and keeps the run's attributes ``ai.model``,
``ai.requests``, ``ai.input_tokens``, ``ai.output_tokens``. The command line and the
dashboard show such steps as what they are; a run without ``ai.*`` attributes is left
alone, so a user's step that happens to be called ``x.model`` stays a step.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["agent_step_kind", "agent_summary", "is_agent_run"]

_KINDS = {"model": "model", "approval": "approval", "events": "events", "ui": "ui"}


def is_agent_run(attributes: Mapping[str, str]) -> bool:
    """Whether the run's attributes say an agent ran in it."""
    return any(k.startswith("ai.") for k in attributes)


def agent_step_kind(name: str, attributes: Mapping[str, str]) -> str | None:
    """``"model"``, ``"tool"``, ``"approval"``, ``"ask"``, ``"events"`` or ``"ui"`` for a
    step of an agent run, by its name; ``None`` for any other step."""
    if not is_agent_run(attributes):
        return None
    parts = name.split(".")
    if len(parts) >= 3 and parts[-2] in ("tool", "ask"):
        return parts[-2]
    if len(parts) >= 4 and parts[1] in ("tool", "ask"):
        return parts[1]
    if len(parts) >= 2:
        return _KINDS.get(parts[-1])
    return None


def agent_summary(attributes: Mapping[str, str]) -> str | None:
    """``"gpt-5 · 3 requests · 1,204 in / 310 out tokens"`` for an agent run, else None."""
    if not is_agent_run(attributes):
        return None

    def number(key: str) -> str:
        value = attributes.get(key, "0")
        return f"{int(value):,}" if str(value).isdigit() else str(value)

    model = attributes.get("ai.model", "?")
    return (
        f"{model} · {number('ai.requests')} requests · "
        f"{number('ai.input_tokens')} in / {number('ai.output_tokens')} out tokens"
    )

"""A conversation's log grows linearly: a model step records the model's *response*,
never the conversation again (its arguments are a small summary)."""

from __future__ import annotations

import json
from typing import Any

from pydantic_ai import Agent

from durably import Run, Workflows, start
from durably.ai import DurablyDurability
from durably.events import Event

from .agents import Chatty


def event_bytes(e: Event) -> int:
    return len(e.payload or b"") + len(json.dumps(e.data, separators=(",", ":")))


async def bytes_per_turn(run: Run, step_name: str) -> list[int]:
    """The log bytes each turn added: the events from one model step's creation to the
    next one's (the last turn runs to the end of the log)."""
    events = await run.events()
    starts = [
        i
        for i, e in enumerate(events)
        if e.type == "step_created" and e.data.get("name") == step_name
    ]
    bounds = [*starts[1:], len(events)]
    return [sum(event_bytes(e) for e in events[a:b]) for a, b in zip(starts, bounds, strict=True)]


def chat_workflow(wf: Workflows, agent: Agent[None, str]) -> Any:
    @wf.workflow
    async def conversation(turns: int) -> int:
        history: list[Any] = []
        for i in range(turns):
            result = await agent.run(f"question {i}: " + "y" * 100, message_history=history)
            history = result.all_messages()
        return len(history)

    return conversation


async def test_log_bytes_per_turn_stay_flat(tmp_path: Any) -> None:
    wf = Workflows(world=f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        model = Chatty()
        agent = Agent(model.model(), name="chat", capabilities=[DurablyDurability()])
        run = await start(chat_workflow(wf, agent), 50)
        assert await run.return_value(timeout=120) == 100
        per_turn = await bytes_per_turn(run, "chat.model")
        assert len(per_turn) == 50 and model.requests == 50
        # Turn 50 sends 50 times the history of turn 1 to the model; its log entry is
        # the same size (give or take the digits of growing counters).
        assert per_turn[49] < 1.2 * per_turn[9], per_turn
        assert per_turn[9] < 1.2 * per_turn[0], per_turn
        # What a model step records as its arguments is a summary, not the history.
        events = await run.events()
        args = [e for e in events if e.type == "step_created"]
        assert all(len(e.payload or b"") < 200 for e in args), [len(e.payload or b"") for e in args]
    finally:
        await wf.aclose()

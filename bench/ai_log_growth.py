"""Log bytes per conversation turn of a durable pydantic-ai agent, at turns 1, 10 and 50.

One workflow holds a 50-turn conversation (each turn: a 100-character question, a
210-character answer from an offline FunctionModel) on a fresh SQLite world. For each
turn it counts the bytes the turn added to the run's log (event data and stored, encrypted
payloads). ``durably.ai`` records each model *response*; the "naive" line records the
conversation sent to the model as the step's arguments, which grows with every turn.

    .venv/bin/python bench/ai_log_growth.py [--turns 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import pydantic_ai.models
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelResponse, TextPart
from pydantic_ai.models.function import FunctionModel

from durably import Workflows, run_step, start
from durably.ai import DurablyDurability

pydantic_ai.models.ALLOW_MODEL_REQUESTS = False


def answer(messages: list[Any], info: Any) -> ModelResponse:
    return ModelResponse(parts=[TextPart(f"answer {len(messages)}: " + "x" * 200)])


def event_bytes(e: Any) -> int:
    return len(e.payload or b"") + len(json.dumps(e.data, separators=(",", ":")))


async def per_turn(run: Any, step_name: str) -> list[int]:
    events = await run.events()
    starts = [
        i
        for i, e in enumerate(events)
        if e.type == "step_created" and e.data.get("name") == step_name
    ]
    bounds = [*starts[1:], len(events)]
    return [sum(event_bytes(e) for e in events[a:b]) for a, b in zip(starts, bounds, strict=True)]


async def main(turns: int) -> None:
    folder = Path(tempfile.mkdtemp())
    wf = Workflows(world=f"sqlite:///{folder / 'growth.db'}")
    agent = Agent(FunctionModel(answer), name="chat", capabilities=[DurablyDurability()])
    plain = Agent(FunctionModel(answer), name="plain")

    @wf.workflow
    async def durable_chat(n: int) -> int:
        history: list[Any] = []
        for i in range(n):
            result = await agent.run(f"question {i}: " + "y" * 100, message_history=history)
            history = result.all_messages()
        return len(history)

    async def naive_model(messages: Any) -> Any:
        history = ModelMessagesTypeAdapter.validate_python(messages)
        result = await plain.run(history[-1].parts[0].content, message_history=history[:-1])
        return ModelMessagesTypeAdapter.dump_python(result.new_messages()[-1:], mode="json")

    @wf.workflow
    async def naive_chat(n: int) -> int:
        history: list[Any] = []
        for i in range(n):
            from pydantic_ai.messages import ModelRequest, UserPromptPart

            history.append(ModelRequest(parts=[UserPromptPart(f"question {i}: " + "y" * 100)]))
            sent = ModelMessagesTypeAdapter.dump_python(history, mode="json")
            got = await run_step("naive.model", naive_model, args=(sent,))
            history.extend(ModelMessagesTypeAdapter.validate_python(got))
        return len(history)

    async with wf:
        for label, workflow, step in (
            ("durably.ai", durable_chat, "chat.model"),
            ("naive (history as step args)", naive_chat, "naive.model"),
        ):
            run = await start(workflow, turns)
            await run.return_value(timeout=600)
            sizes = await per_turn(run, step)
            shown = ", ".join(f"turn {t}: {sizes[t - 1]} B" for t in (1, 10, 50) if t <= turns)
            print(f"{label:32s} {shown}; whole log {sum(sizes)} B")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=50)
    asyncio.run(main(parser.parse_args().turns))

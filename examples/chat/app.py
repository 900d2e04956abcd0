"""A support chat: a pydantic-ai agent on durably, streamed to the AI SDK's useChat.

Run it (offline: a scripted model streams its tokens slowly; set OPENAI_API_KEY to talk
to a real model, with `pip install "pydantic-ai-slim[openai]"`):

    pip install "durably[ai,web]"
    python examples/chat/app.py            # http://127.0.0.1:8000

The page (static/index.html, static/chat.js) uses useChat with @workflow/ai's
WorkflowChatTransport; static/chat.js is built from web/main.jsx by
`npm install && npm run build` in this folder (committed, so nothing is fetched at run
time). Reload the page in the middle of an answer: it resumes where it was. Ask for a
refund: the agent looks the order up (a tool) and asks before refunding (an approval).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from durably import Workflows
from durably.ai import DurablyDurability, chat_app, stream_chat

HERE = Path(__file__).parent
#: Seconds between two tokens of the scripted model.
DELAY = float(os.environ.get("CHAT_TOKEN_DELAY", "0.08"))

GREETING = (
    "Hello! I am the support agent of this shop, running as a durable workflow. "
    "Every word you read is written to the run's stream as it is produced, so you "
    "can reload this page in the middle of an answer and it picks up where it was. "
    "Ask me about order A123, or ask me to refund it."
)
ORDERS = {"A123": "shipped on Monday, arriving Thursday", "B456": "delivered yesterday"}


def _last_user_text(messages: list[ModelMessage]) -> str:
    for m in reversed(messages):
        if isinstance(m, ModelRequest):
            for p in m.parts:
                if isinstance(p, UserPromptPart) and isinstance(p.content, str):
                    return p.content
    return ""


async def scripted(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    """A support agent's answers, token by token, without a model (offline)."""
    question = _last_user_text(messages)
    order = (re.findall(r"[A-Z]\d{3}", question) or ["A123"])[0]
    returns = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
    if returns and returns[-1].tool_name == "refund_order":
        text = f"Done: order {order} is refunded. {returns[-1].content}"
    elif returns and "refund" in question.lower():
        text = f"Order {order} is {returns[-1].content}. I can refund it for you."
        for word in re.findall(r"\S+\s*", text):
            yield word
            await asyncio.sleep(DELAY)
        yield {1: DeltaToolCall(name="refund_order", json_args=f'{{"order_id": "{order}"}}')}
        return
    elif returns:
        text = f"Order {order} is {returns[-1].content}. Anything else I can do?"
    elif "order" in question.lower() or "refund" in question.lower():
        text = f"Let me look up order {order} for you."
        for word in re.findall(r"\S+\s*", text):
            yield word
            await asyncio.sleep(DELAY)
        yield {1: DeltaToolCall(name="lookup_order", json_args=f'{{"order_id": "{order}"}}')}
        return
    else:
        text = GREETING
    for word in re.findall(r"\S+\s*", text):
        yield word
        await asyncio.sleep(DELAY)


def _model() -> Any:
    if os.environ.get("OPENAI_API_KEY"):
        return os.environ.get("CHAT_MODEL", "openai:gpt-4o-mini")
    return FunctionModel(stream_function=scripted, model_name="scripted-support")


agent = Agent(
    _model(),
    name="support",
    instructions="You are a shop's support agent. Look orders up before answering.",
    # Each model request and tool call a recorded step; approvals wait on hooks.
    capabilities=[DurablyDurability()],
)


@agent.tool_plain
def lookup_order(order_id: str) -> str:
    """Where an order is."""
    return ORDERS.get(order_id, "unknown")


@agent.tool_plain(requires_approval=True)
def refund_order(order_id: str) -> str:
    """Refund an order (a person approves it first)."""
    return f"The refund of {order_id} is on its way."


wf = Workflows()


@wf.workflow
async def support_chat(messages: list[dict[str, Any]]) -> str:
    """One answer of the support agent to the chat so far."""
    return await stream_chat(agent, messages)


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await wf.aclose()


def create_app() -> Starlette:
    """The chat API under /api/chat and the page under /."""
    chat = chat_app(wf, support_chat)
    return Starlette(
        routes=[*chat.routes, Mount("/", StaticFiles(directory=HERE / "static", html=True))],
        lifespan=_lifespan,
    )


app = create_app()

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))

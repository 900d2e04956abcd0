"""The chat endpoint: :func:`chat_app`, which ``@workflow/ai``'s ``WorkflowChatTransport``
talks to unchanged.

Routes (``path`` defaults to ``/api/chat``):

``POST {path}``                    ``{"messages": [...], ...}``: start the workflow with
                                   ``messages=`` (and the other keys it accepts) and
                                   answer with the run's UI stream as server-sent events
                                   (``data: <chunk json>``), header ``x-workflow-run-id``.
                                   A POST whose last assistant message answers a tool
                                   approval of a waiting run resumes that run's hook
                                   instead and streams the rest of its answer.
``GET {path}/{id}/stream``         ``?startIndex=N``: the same stream from chunk N; a
                                   negative N counts from the end (``-10``: the last
                                   ten) and the response says where the end was
                                   (``x-workflow-stream-tail-index``). Unknown run: 404.

**What a response carries.** One response is one assistant *message*: it ends after the
message's ``finish`` chunk. A run that waits for a tool approval writes ``finish`` (so
that ``useChat`` lets the user answer) and, once resumed, a second message (``start`` ...
``finish``) in the same stream. The first message of run R is addressed as ``R``; the
k-th after it as ``R~k``, which is the ``x-workflow-run-id`` the POST that resumed the run
answers with, so that the transport's reconnects (``GET {path}/R~k/stream?startIndex=N``,
N counted from the start of that message, as the transport counts) land in it.

**Exact text across retries.** The stream is read live (the tokens a model step writes
reach the client as they are written), attempt-aware: every stored chunk says which step
attempt wrote it, and a model step's chunk ids are stable across its attempts (step id
and part index, :mod:`durably.ai.ui`). When chunks of a later attempt of a step arrive
after those of an attempt that failed or was lost, its text parts are reconciled with
what the client already has under the same id: text the client already has is not sent
again, only what follows it; if the retry's text differs from what was streamed, the
streamed part is ended with ``providerMetadata: {"durably": {"discarded": true}}`` (the
AI SDK protocol has no way to take text back; a page hides such parts, and
:func:`durably.ai.ui.ui_messages_to_history` drops them) and the retry's text is streamed
under a new id. A repeated ``start-step`` is dropped. The reconciliation depends only on
the stored chunks and their order, so the same chunks always give the same events: chunk
indexes in this API count these events, and a reconnect from index N gets exactly the
rest. (The stored stream itself is what ``durably inspect streams`` and
``run.readable(namespace="ui", committed=True)`` read; the latter never sees a failed
attempt's chunks at all.)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import AsyncIterator
from typing import Any

from .._extras import require

require("web", "durably.ai.chat_app")

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from .. import serde  # noqa: E402
from ..errors import HookNotFoundError, RunNotFoundError, SerializationError  # noqa: E402
from ..hooks import get_hook_by_token, resume_hook  # noqa: E402
from ..registry import Workflow, Workflows  # noqa: E402
from ..run import Run  # noqa: E402
from ..streams import read_stream  # noqa: E402

__all__ = ["UIStreamReader", "chat_app"]

#: Seconds between keep-alive comments while a stream is idle.
HEARTBEAT = 15.0
_DISCARDED = {"durably": {"discarded": True}}


class _Reconcile:
    """Stored UI chunks (with the step attempt that wrote each) to the events a client
    gets: a retried model step's text is not repeated (see the module's notes)."""

    def __init__(self) -> None:
        self.latest: dict[int, int] = {}  # step call -> the latest attempt seen
        self.call_of: dict[str, int] = {}  # text id -> the step call that wrote it
        self.client: dict[str, str] = {}  # text id -> the id the client has its text under
        self.sent: dict[str, str] = {}  # client text id -> the text the client has
        self.retry: dict[str, str] = {}  # text id -> what the current retry wrote
        self.direct: set[str] = set()  # text ids the current retry streams straight through
        self.others: dict[int, list[dict[str, Any]]] = {}  # call -> its other chunks sent
        self.position: dict[int, int] = {}  # call -> how many of those its retry matched

    def feed(self, call: int | None, attempt: int, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if call is None or attempt <= 0:
            return [chunk]
        prev = self.latest.get(call)
        if prev is not None and attempt < prev:
            return []  # a lost attempt's late chunk
        if prev is not None and attempt > prev:
            for part, c in self.call_of.items():
                if c == call:
                    self.retry[part] = ""
                    self.direct.discard(part)
            self.position[call] = 0
        self.latest[call] = attempt
        kind = str(chunk.get("type"))
        tid = chunk.get("id")
        if not isinstance(tid, str) or kind not in ("text-start", "text-delta", "text-end"):
            return self._other(call, chunk)
        if tid not in self.retry:  # written by the first attempt that wrote this part
            self.call_of[tid] = call
            self.client[tid] = tid
            if kind == "text-delta":
                self.sent[tid] = self.sent.get(tid, "") + str(chunk.get("delta", ""))
            return [chunk]
        return self._retried(tid, attempt, kind, chunk)

    def _other(self, call: int, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """A chunk other than text: a retry's chunk equal to the one its failed attempt
        sent at the same place (``start-step``, a tool call, ``finish``) is not sent
        again."""
        sent = self.others.setdefault(call, [])
        at = self.position.get(call)
        if at is not None:
            self.position[call] = at + 1
            if at < len(sent) and sent[at] == chunk:
                return []
            self.position.pop(call)  # the retry has gone its own way
        sent.append(chunk)
        return [chunk]

    def _retried(
        self, tid: str, attempt: int, kind: str, chunk: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """A chunk of a retry for text part ``tid``, which the client has (some of)."""
        if kind == "text-start":
            return []
        cid = self.client[tid]
        if kind == "text-delta":
            delta = str(chunk.get("delta", ""))
            text = self.retry[tid] = self.retry[tid] + delta
            if tid in self.direct:
                self.sent[cid] += delta
                return [{**chunk, "id": cid}]
            have = self.sent.get(cid, "")
            if have.startswith(text):
                return []  # the client has this already
            if text.startswith(have):
                self.sent[cid] = text
                return [{**chunk, "id": cid, "delta": text[len(have) :]}]
            return self._diverge(tid, attempt)
        # text-end
        if tid not in self.direct and self.sent.get(cid, "") != self.retry[tid]:
            out = self._diverge(tid, attempt)
            return [*out, {**chunk, "id": self.client[tid]}]
        return [{**chunk, "id": cid}]

    def _diverge(self, tid: str, attempt: int) -> list[dict[str, Any]]:
        """The retry wrote other text than the client has: end the client's part as
        discarded and stream the retry's text under a new id."""
        old = self.client[tid]
        new = self.client[tid] = f"{tid}~{attempt}"
        text = self.sent[new] = self.retry[tid]
        self.direct.add(tid)
        return [
            {"type": "text-end", "id": old, "providerMetadata": _DISCARDED},
            {"type": "text-start", "id": new},
            {"type": "text-delta", "id": new, "delta": text},
        ]


class UIStreamReader:
    """The UI stream of a run as a client gets it: reconciled events, one message
    (``start`` ... ``finish``) after another.

    Args:
        run: the run.
        namespace: the stream :func:`durably.ai.stream_chat` wrote to.
    """

    def __init__(self, run: Run, namespace: str = "ui") -> None:
        self.run = run
        self.namespace = namespace

    async def events(self, *, follow: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Every event of every message from the start; following, until the stream is
        closed or the run ended (then an ``error`` and a ``finish`` close a message the
        run left unfinished)."""
        world = await self.run.registry.open()
        rec = _Reconcile()
        where = f"a chunk of stream {self.namespace!r} of run {self.run.run_id}"
        last = None
        async for chunk in read_stream(world, self.run.run_id, self.namespace, 0, follow=follow):
            value = serde.decode(chunk.payload, where=where)
            if not isinstance(value, dict):
                continue
            for event in rec.feed(chunk.call, chunk.attempt, value):
                last = event.get("type")
                yield event
        if follow and last != "finish":
            status = await self.run.status()
            detail = f"the run {status} before its answer was finished"
            yield {"type": "error", "errorText": detail}
            yield {"type": "finish"}

    async def message(
        self, index: int, start: int = 0, *, follow: bool = True
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of message ``index`` (0: the first) from its event ``start``."""
        current = position = 0
        async for event in self.events(follow=follow):
            if current == index:
                if position >= start:
                    yield event
                position += 1
            if event.get("type") == "finish":
                if current == index:
                    return
                current += 1

    async def count(self, index: int) -> int:
        """How many events message ``index`` has so far."""
        return sum([1 async for _ in self.message(index, follow=False)])

    async def message_of_approval(self, approval_id: str) -> int:
        """The index of the message that asked for approval ``approval_id``."""
        current = 0
        async for event in self.events(follow=False):
            if event.get("type") == "tool-approval-request":
                if event.get("approvalId") == approval_id:
                    return current
            elif event.get("type") == "finish":
                current += 1
        return current


def _handle(run_id: str, message: int) -> str:
    return run_id if message == 0 else f"{run_id}~{message}"


def _parse_handle(handle: str) -> tuple[str, int]:
    run_id, _, message = handle.partition("~")
    return run_id, int(message) if message.isdigit() else 0


async def _sse(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    """``data: <json>`` per event, a keep-alive comment while idle."""
    pending: asyncio.Future[dict[str, Any]] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=HEARTBEAT)
            if not done:
                yield ": keep-alive\n\n"
                continue
            task, pending = pending, None
            try:
                event = task.result()
            except StopAsyncIteration:
                return
            yield f"data: {json.dumps(event, separators=(',', ':'))}\n\n"
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "x-vercel-ai-ui-message-stream": "v1",
}


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


class _ChatAPI:
    def __init__(self, wf: Workflows, workflow: Workflow[Any, Any], namespace: str) -> None:
        self.wf = wf
        self.workflow = workflow
        self.namespace = namespace
        params = inspect.signature(workflow.fn).parameters
        self.any_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        self.params = set(params)

    def _stream(self, run: Run, message: int, start: int = 0, **headers: str) -> Response:
        reader = UIStreamReader(run, self.namespace)
        return StreamingResponse(
            _sse(reader.message(message, start)),
            media_type="text/event-stream",
            headers={
                **_HEADERS,
                "x-workflow-run-id": _handle(run.run_id, message),
                **headers,
            },
        )

    async def post(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "invalid_json", "the body must be JSON")
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            return _error(400, "invalid_request", 'the body must be {"messages": [...], ...}')
        resumed = await self._resume_approvals(messages)
        if resumed is not None:
            run, message = resumed
            return self._stream(run, message)
        kwargs = {
            k: v
            for k, v in body.items()
            if k == "messages" or (k not in _RESERVED and (self.any_kwargs or k in self.params))
        }
        run = await self.wf.start(self.workflow, **kwargs)
        return self._stream(run, 0)

    async def _resume_approvals(self, messages: list[Any]) -> tuple[Run, int] | None:
        """Resume the hooks of the approvals the last assistant message answers; the run
        and the message that continues it, or None when no waiting run holds them."""
        last = next(
            (m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "assistant"),
            None,
        )
        if last is None:
            return None
        found: tuple[Run, int] | None = None
        for part in last.get("parts") or []:
            approval = part.get("approval") if isinstance(part, dict) else None
            if part.get("state") != "approval-responded" or not isinstance(approval, dict):
                continue
            token = approval.get("id")
            if not isinstance(token, str) or not token:
                continue
            answer = {"approved": bool(approval.get("approved")), "reason": approval.get("reason")}
            try:
                # Only a run of this chat's workflow, waiting on this approval's token.
                hook = await get_hook_by_token(token, registry=self.wf)
                if hook.namespace != self.wf.namespace:
                    continue
                run = await self.wf.get_run(hook.run_id)
                if run.workflow_name != self.workflow.name:
                    continue
                await resume_hook(token, answer, registry=self.wf)
            except (HookNotFoundError, SerializationError):
                continue  # answered already, or not an approval: a new run answers it
            asked = await UIStreamReader(run, self.namespace).message_of_approval(token)
            found = (run, asked + 1)
        return found

    async def stream(self, request: Request) -> Response:
        run_id, message = _parse_handle(request.path_params["run_id"])
        raw = request.query_params.get("startIndex", "0")
        try:
            start = int(raw)
        except ValueError:
            return _error(400, "invalid_request", f"startIndex must be an integer, not {raw!r}")
        try:
            run = await self.wf.get_run(run_id)
        except RunNotFoundError as e:
            return _error(404, "run_not_found", str(e))
        headers: dict[str, str] = {}
        if start < 0:
            count = await UIStreamReader(run, self.namespace).count(message)
            headers["x-workflow-stream-tail-index"] = str(count - 1)
            start = max(count + start, 0)
        return self._stream(run, message, start, **headers)


_RESERVED = frozenset({"idempotency_key", "deployment", "priority", "attributes"})


def chat_app(
    wf: Workflows, workflow: Workflow[Any, Any], *, path: str = "/api/chat", namespace: str = "ui"
) -> Starlette:
    """An ASGI app serving ``workflow`` as a chat, wire-compatible with
    ``WorkflowChatTransport`` from ``@workflow/ai`` (see the module's notes).

    Args:
        wf: the registry ``workflow`` belongs to (its world holds the runs).
        workflow: a workflow taking ``messages`` (AI SDK ``UIMessage`` dicts) that calls
            :func:`durably.ai.stream_chat`; other keys of the POST body (``id``,
            ``trigger``, ...) are passed when it accepts them.
        path: where the chat is served.
        namespace: the run stream :func:`durably.ai.stream_chat` writes to.

    Returns:
        A Starlette app; mount it, or serve it as it is.
    """
    api = _ChatAPI(wf, workflow, namespace)
    path = "/" + path.strip("/")
    return Starlette(
        routes=[
            Route(path, api.post, methods=["POST"]),
            Route(path + "/{run_id}/stream", api.stream, methods=["GET"]),
        ]
    )

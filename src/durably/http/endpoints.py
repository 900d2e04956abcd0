"""The ASGI application: a thin HTTP layer over a registry's public API.

============================== ======================================================
``POST /runs/{workflow_name}``  start a run; the JSON body is the keyword arguments;
                                an ``Idempotency-Key`` header returns the run already
                                started with that key. 202 (accepted: the run is
                                recorded, not done) ``{"run_id", "workflow"}`` and a
                                ``Location`` header (the run's URL).
``GET /runs/{run_id}``          the run: status, workflow, timestamps, attributes,
                                streams, ``waiting`` (what a live run waits for, see
                                :class:`durably.Waiting`; ``null`` once it ended),
                                ``failing_step``, and ``result`` / ``error`` once it
                                ended.
``GET /runs/{run_id}/stream``   the run's stream as server-sent events (see
                                :mod:`durably.http.sse`); ``?start_index=N`` (negative
                                counts from the end: ``-1`` is the last chunk written
                                so far), ``?namespace=NS``, ``?committed=true`` (only
                                chunks of step attempts whose completion is recorded,
                                as ``Run.readable(committed=True)``), and the
                                ``Last-Event-ID`` header. 404 ``stream_not_found``
                                (with ``streams``, those the run has) when the asked
                                stream has no chunk, is not closed, and the run has
                                ended or has written other streams; a live run that has
                                written no stream yet may be followed.
``POST /runs/{run_id}/cancel``  ask the run to stop; optional body ``{"reason"}``.
                                200 ``{"run_id", "cancel_requested"}`` (false, with the
                                status, when the run already ended: nothing to do).
``POST /hooks/{token}``         a webhook: the JSON body resumes the hook (validated
                                against its payload type). 200 ``{"run_id", "token"}``.
``GET /health``                 200 ``{"status": "ok", "reachable": true, "world",
                                "latency_ms"}`` when the world answers a read; 503
                                ``{"status": "unavailable", "reachable": false,
                                "error"}`` when it does not (within 5 s).
============================== ======================================================

Only *webhooks* can be resumed over HTTP: hooks created with ``wait(webhook=True)``
(their tokens are generated, unguessable) by runs of the registry's namespace, of any
deployment (a run finishes on the code that started it, while the app may serve a newer
one). Any other hook, such as one with a custom token like ``refund:o1``, is resumed by
server code only, and the app answers 404 ``hook_not_found`` for it exactly as for an
unknown token.

Request bodies are capped (``max_body_bytes``, by default the registry's
``Limits.max_payload_bytes``): a larger one is refused with 413 before it is read
whole. A body nested too deeply to parse is a 400 ``invalid_json``.

Errors are JSON ``{"error": CODE, "detail": MESSAGE}`` with a stable ``CODE``:
``invalid_json``, ``invalid_arguments``, ``invalid_payload``, ``invalid_request`` (400),
``workflow_not_found``, ``run_not_found``, ``hook_not_found``, ``stream_not_found`` (404),
``payload_too_large`` (413), ``internal_error`` (500); and ``not_found``,
``method_not_allowed`` for a path or method the app does not serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..control import hook_not_found
from ..errors import (
    DurablyError,
    HookNotFoundError,
    PayloadTooLargeError,
    RunCancelledError,
    RunNotFoundError,
    WorkflowNotRegisteredError,
    WorkflowRunFailedError,
    redact_url,
)
from ..hooks import resume_webhook
from ..registry import Workflows
from ..waiting import absent_stream, failing_step, no_stream_message, waiting_of
from ..worlds.base import TERMINAL_STATUSES
from .payloads import to_json_data
from .sse import sse_events

__all__ = ["app"]

logger = logging.getLogger("durably.http")

#: Keyword arguments of ``Workflows.start`` itself: a workflow parameter of one of these
#: names can be given over HTTP only when it can be passed by position.
_START_OPTIONS = frozenset({"idempotency_key", "deployment", "attributes"})

#: How long ``GET /health`` waits for the world before answering 503.
HEALTH_TIMEOUT = 5.0


def app(
    wf: Workflows,
    *,
    heartbeat: float = 15.0,
    manage_registry: bool = True,
    max_body_bytes: int | None = None,
) -> Starlette:
    """The HTTP API of registry ``wf`` as a Starlette application (mount it, or serve it
    with uvicorn: ``uvicorn myapp:api`` where ``api = durably.http.app(wf)``).

    Args:
        wf: the registry whose workflows are started and whose world is read.
        heartbeat: seconds between keep-alive comments on an idle event stream.
        manage_registry: open the registry (and its embedded worker) when the server
            starts and close it when the server stops. Starlette does not run the
            lifespan of a mounted sub-application; the registry then opens on first use.
        max_body_bytes: the largest request body read (413 ``payload_too_large`` past
            it); default the registry's ``limits.max_payload_bytes``.

    An event stream stays open until the run's stream is closed; give uvicorn a
    ``--timeout-graceful-shutdown`` so that a shutdown ends the open ones (clients resume
    with ``Last-Event-ID``).
    """
    cap = wf.limits.max_payload_bytes if max_body_bytes is None else max_body_bytes
    api = _Api(wf, heartbeat, cap)
    routes = [
        Route("/runs/{workflow_name}", api.start_run, methods=["POST"], name="start_run"),
        Route("/runs/{run_id}", api.get_run, methods=["GET"], name="get_run"),
        Route("/runs/{run_id}/stream", api.stream, methods=["GET"], name="stream"),
        Route("/runs/{run_id}/cancel", api.cancel, methods=["POST"], name="cancel"),
        Route("/hooks/{token:path}", api.webhook, methods=["POST"], name="webhook"),
        Route("/health", api.health, methods=["GET"], name="health"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await wf.open()
        try:
            yield
        finally:
            await wf.aclose()

    return Starlette(
        routes=routes,
        lifespan=lifespan if manage_registry else None,
        exception_handlers={
            HTTPException: _http_error,
            DurablyError: _durably_error,
        },
    )


def error(status: int, code: str, detail: Any) -> JSONResponse:
    """An error response: ``{"error": code, "detail": detail}``."""
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    response = error(exc.status_code, code, exc.detail)
    response.headers.update(exc.headers or {})  # Allow, for a 405
    return response


async def _durably_error(request: Request, exc: Exception) -> Response:
    # What an endpoint did not turn into a client error is the server's problem.
    if isinstance(exc, RunNotFoundError):
        # Not str(exc): it names the world's URL, which may carry credentials.
        return error(404, "run_not_found", f"no run with id {exc.run_id!r}")
    if isinstance(exc, HookNotFoundError):
        return error(404, "hook_not_found", str(exc))
    if isinstance(exc, WorkflowNotRegisteredError):
        return error(404, "workflow_not_found", str(exc))
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error(500, "internal_error", f"{type(exc).__name__} (see the server's log)")


class _BadRequest(Exception):
    def __init__(self, code: str, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.response = error(status, code, detail)


async def _json_body(request: Request, default: Any, max_bytes: int) -> Any:
    too_large = _BadRequest(
        "payload_too_large",
        f"the request body is over the limit of {max_bytes:,} bytes",
        status=413,
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():  # counted as it arrives: no length is trusted
        size += len(part)
        if size > max_bytes:
            raise too_large
        parts.append(part)
    raw = b"".join(parts)
    if not raw.strip():
        return default
    try:
        return json.loads(raw)
    except ValueError as e:
        raise _BadRequest("invalid_json", f"the request body is not valid JSON: {e}") from None
    except RecursionError:
        raise _BadRequest(
            "invalid_json", "the request body is JSON nested too deeply to be read"
        ) from None


def _int_param(value: str | None, name: str, *, negative: bool = False) -> int | None:
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError:
        n = None
    if n is None or (n < 0 and not negative):
        what = "a whole number" if negative else "a whole number >= 0"
        raise _BadRequest("invalid_request", f"{name} must be {what}, got {value!r}")
    return n


def _bool_param(value: str | None, name: str) -> bool:
    if value is None or value.lower() in ("", "false", "0"):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise _BadRequest("invalid_request", f"{name} must be true or false, got {value!r}")


def _run_id(request: Request) -> str:
    run_id: str = request.path_params["run_id"]
    if "\x00" in run_id:  # no id holds one, and Postgres refuses even to look one up
        raise RunNotFoundError(run_id)
    return run_id


class _Api:
    """The endpoints, bound to one registry."""

    def __init__(self, wf: Workflows, heartbeat: float, max_body_bytes: int) -> None:
        self.wf = wf
        self.heartbeat = heartbeat
        self.max_body_bytes = max_body_bytes

    async def health(self, request: Request) -> Response:
        """200 when the world answers a read within :data:`HEALTH_TIMEOUT`, else 503;
        the body says which world (password redacted) and how long the read took."""
        started = time.monotonic()
        body: dict[str, Any] = {"world": redact_url(self.wf.world_url)}
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                world = await self.wf.open()
                await world.get_run("run_health_check")
        except Exception as e:  # any failure to reach the world is the answer
            body.update(status="unavailable", reachable=False, error=f"{type(e).__name__}: {e}")
            return JSONResponse(body, status_code=503)
        latency = round((time.monotonic() - started) * 1000, 2)
        body.update(status="ok", reachable=True, latency_ms=latency)
        return JSONResponse(body)

    async def start_run(self, request: Request) -> Response:
        name = request.path_params["workflow_name"]
        workflow = self.wf.workflows.get(name)
        if workflow is None:
            raise WorkflowNotRegisteredError(
                f"no workflow named {name!r}; registered: "
                f"{', '.join(sorted(self.wf.workflows)) or 'none'}"
            )
        try:
            body = await _json_body(request, {}, self.max_body_bytes)
            if not isinstance(body, dict):
                raise _BadRequest(
                    "invalid_arguments",
                    f"the body must be a JSON object of keyword arguments, got "
                    f"{type(body).__name__}",
                )
            # Bind here so that parameters that can go by position do, and cannot clash
            # with the options of start().
            signature = inspect.signature(workflow.fn)
            try:
                bound = signature.bind(**body)
            except TypeError as e:
                raise _BadRequest(
                    "invalid_arguments", f"workflow {name!r} takes {name}{signature}: {e}"
                ) from None
            clash = _START_OPTIONS & set(bound.kwargs)
            if clash:
                raise _BadRequest(
                    "invalid_arguments",
                    f"keyword-only parameter(s) {sorted(clash)} of workflow {name!r} "
                    "cannot be given over HTTP (they are options of start())",
                )
        except _BadRequest as e:
            return e.response
        key = request.headers.get("idempotency-key") or None
        try:
            run = await self.wf.start(workflow, *bound.args, idempotency_key=key, **bound.kwargs)
        except PayloadTooLargeError as e:
            return error(413, "payload_too_large", str(e))
        except TypeError as e:  # SerializationError included: the arguments do not validate
            return error(400, "invalid_arguments", str(e))
        location = str(request.url_for("get_run", run_id=run.run_id))
        # 202: the run is accepted (recorded durably), not done; GET the Location.
        return JSONResponse(
            {"run_id": run.run_id, "workflow": name},
            status_code=202,
            headers={"Location": location},
        )

    async def get_run(self, request: Request) -> Response:
        run = await self.wf.get_run(_run_id(request))
        rec = await run.record()
        world = await self.wf.open()
        body = rec.to_json()
        body["cancel_requested"] = rec.cancel_requested
        waiting = await waiting_of(world, rec)
        body["waiting"] = waiting.to_json() if waiting.kind is not None else None
        failing = failing_step(rec, await run.steps()) if rec.error_type else None
        body["failing_step"] = (
            {"call": failing.call, "kind": failing.kind, "name": failing.name} if failing else None
        )
        body["streams"] = [s.to_json() for s in await run.stream_info()]
        if rec.status in TERMINAL_STATUSES:
            where = f"the result of run {run.run_id}"
            try:
                body["result"] = to_json_data(await run.return_value(), where=where)
            except WorkflowRunFailedError as e:
                body["error"] = {"type": type(e.cause).__name__, "message": str(e.cause)}
            except RunCancelledError as e:
                body["error"] = {"type": "RunCancelledError", "message": str(e)}
                body["cancel_reason"] = e.reason
        return JSONResponse(body)

    async def stream(self, request: Request) -> Response:
        try:
            query = request.query_params
            start = _int_param(query.get("start_index"), "start_index", negative=True) or 0
            committed = _bool_param(query.get("committed"), "committed")
            last = _int_param(request.headers.get("last-event-id"), "Last-Event-ID")
        except _BadRequest as e:
            return e.response
        if last is not None:
            # A reconnecting client: resume after the last event it saw (its URL, and so
            # its start_index, is the one it first connected with).
            start = last + 1
        namespace = request.query_params.get("namespace") or None
        run = await self.wf.get_run(_run_id(request))
        others = await absent_stream(await self.wf.open(), run.run_id, namespace or "")
        if others is not None:
            # An event stream of a stream the run does not have would end empty (or
            # stay open for ever): answer what the run has instead.
            body = {
                "error": "stream_not_found",
                "detail": no_stream_message(run.run_id, namespace or "", others),
                "streams": [i.to_json() for i in others],
            }
            return JSONResponse(body, status_code=404)
        where = f"a chunk of stream {namespace or '(default)'!r} of run {run.run_id}"
        events = sse_events(
            run.chunks(start_index=start, namespace=namespace, committed=committed),
            where=where,
            heartbeat=self.heartbeat,
        )
        return StreamingResponse(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def cancel(self, request: Request) -> Response:
        run = await self.wf.get_run(_run_id(request))
        try:
            body = await _json_body(request, {}, self.max_body_bytes)
        except _BadRequest as e:
            return e.response
        reason = body.get("reason") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(reason, str | None):
            return error(400, "invalid_request", 'the body must be {"reason": "..."} or empty')
        status = await run.status()
        if status in TERMINAL_STATUSES:
            return JSONResponse({"run_id": run.run_id, "cancel_requested": False, "status": status})
        await run.cancel(reason)
        return JSONResponse({"run_id": run.run_id, "cancel_requested": True})

    async def webhook(self, request: Request) -> Response:
        token = request.path_params["token"]
        if "\x00" in token:  # no token holds one (and Postgres refuses to look one up)
            raise HookNotFoundError(hook_not_found(token))
        try:
            data = await _json_body(request, {}, self.max_body_bytes)
        except _BadRequest as e:
            return e.response
        try:
            run_id = await resume_webhook(token, data, registry=self.wf)
        except PayloadTooLargeError as e:
            return error(413, "payload_too_large", str(e))
        except TypeError as e:  # SerializationError: the body does not fit the payload type
            return error(400, "invalid_payload", str(e))
        except RecursionError:
            return error(400, "invalid_payload", "the body is nested too deeply")
        return JSONResponse({"run_id": run_id, "token": token})

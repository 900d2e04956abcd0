"""OpenTelemetry tracing: a span for every workflow turn and every step attempt.

Install the extra (``pip install 'durably[otel]'``) and configure a tracer provider as
usual (the OpenTelemetry SDK and an exporter); durably then traces:

* ``durably turn WORKFLOW``: one turn of a run (its body replayed or resumed up to its
  next suspension), with ``durably.run_id``, ``durably.workflow`` and ``durably.outcome``
  (``suspended``, ``completed``, ``failed``, ``cancelled``, or ``conflict`` when another
  writer moved the run first and the turn was dropped);
* ``durably step STEP``: one attempt of a step, with ``durably.step``, ``durably.attempt``,
  ``durably.call`` and ``durably.outcome`` (``completed``, ``retrying``, ``failed``). The
  step's body runs inside this span, so spans it makes (HTTP clients, databases) nest
  under the attempt.

A run's spans belong to the trace that was active where it was started: ``start()``
records the W3C ``traceparent`` of the current span in the run's ``run_created`` event
(``data["traceparent"]``), and a child run records the parent's turn. A run started
with no active span gets a trace id derived from its run id, so all of its turns and
attempts, in any process, still land in one trace.

Without ``opentelemetry-api`` nothing here costs anything: the decorators return the
functions they are given unchanged and the other functions return at once. With the API
but no SDK configured, the only cost is one check per turn and per attempt.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .events import EVENTS, RUN_END_STATUS, NewEvent

if TYPE_CHECKING:
    from .worlds.base import World

try:
    from opentelemetry import trace as _trace
except ImportError:  # the optional extra is not installed
    _trace = None  # type: ignore[assignment]

__all__ = [
    "AVAILABLE",
    "SpanHandle",
    "created_turn_span",
    "current_traceparent",
    "note_turn",
    "run_created_data",
    "step_span",
    "traced_attempt",
    "traced_turn",
    "turn_span",
    "use_tracer_provider",
]

#: True when ``opentelemetry-api`` is importable.
AVAILABLE = _trace is not None

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_override: Any = None  # a provider given to use_tracer_provider()
_cached: tuple[Any, Any] | None = None  # (provider, its durably tracer)
_TURN: contextvars.ContextVar[SpanHandle | None] = contextvars.ContextVar(
    "durably_turn_span", default=None
)
#: run id -> (workflow name, traceparent): what every span of the run needs, read once.
_origins: OrderedDict[str, tuple[str, str | None]] = OrderedDict()
_MAX_ORIGINS = 10_000


class SpanHandle:
    """The span of a turn or an attempt, as :func:`turn_span` and :func:`step_span` yield
    it. Without a configured tracer it is a stand-in whose methods do nothing."""

    __slots__ = ("outcome", "span")

    def __init__(self, span: Any = None) -> None:
        self.span = span
        self.outcome: str | None = None

    def set_outcome(self, outcome: str, error_type: str | None = None) -> None:
        """Record how the turn or attempt ended (``error_type`` marks the span an error)."""
        self.outcome = outcome
        span = self.span
        if span is None:
            return
        span.set_attribute("durably.outcome", outcome)
        if error_type:
            span.set_attribute("error.type", error_type)
            span.set_status(_trace.Status(_trace.StatusCode.ERROR, error_type))


def use_tracer_provider(provider: Any) -> None:
    """Trace with ``provider`` instead of the global tracer provider (``None``: back to
    the global one). For tests and for applications that keep providers apart."""
    global _override
    _override = provider


#: Where ``os.environ`` keeps its values (CPython's ``os._Environ``, which updates
#: ``_data`` on every change), and the key naming a tracer provider to load as stored
#: there: a membership test there is one dict lookup, where ``key in os.environ`` raises
#: and catches a KeyError.
_PROVIDER_VAR = "OTEL_PYTHON_TRACER_PROVIDER"
_ENVIRON = os.environ
_ENV_DATA: Any = getattr(os.environ, "_data", None)
_ENV_KEY: Any = None
try:
    _ENV_KEY = os.environ.encodekey(_PROVIDER_VAR)  # type: ignore[attr-defined]
except Exception:  # not CPython's os._Environ: ask os.environ itself
    _ENV_DATA = None


def _global_provider() -> Any:
    """The global tracer provider, or ``None`` while none is set (the API would give its
    proxy then): what ``get_tracer_provider()`` says, without the KeyError its look in
    ``os.environ`` raises and catches (this runs twice per step)."""
    assert _trace is not None
    provider = getattr(_trace, "_TRACER_PROVIDER", _trace)
    if provider is None:  # unless the environment names one for the API to load
        if _ENV_DATA is not None and os.environ is _ENVIRON:
            if _ENV_KEY not in _ENV_DATA:
                return None
        elif _PROVIDER_VAR not in os.environ:  # os.environ replaced (a test's patch)
            return None
    # Set, named by the environment (the API loads it now), or an API without the global.
    return _trace.get_tracer_provider()


def _tracer() -> Any:
    """The tracer to use, or ``None`` when nobody collects spans."""
    global _cached
    if _trace is None:
        return None
    provider = _override if _override is not None else _global_provider()
    if provider is None:
        return None
    cached = _cached
    if cached is not None and cached[0] is provider:
        return cached[1]
    if isinstance(provider, _trace.ProxyTracerProvider | _trace.NoOpTracerProvider):
        tracer = None
    else:
        from . import __version__

        tracer = provider.get_tracer("durably", __version__)
    _cached = (provider, tracer)
    return tracer


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or ``None`` (no valid span, or no
    OpenTelemetry)."""
    if _trace is None:
        return None
    ctx = _trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def run_created_data(workflow_name: str) -> dict[str, Any]:
    """The plaintext ``data`` of a ``run_created`` event: the workflow's name and, when a
    span is active, its ``traceparent`` (the run's spans join that trace)."""
    data: dict[str, Any] = {"workflow": workflow_name}
    if _trace is not None:
        traceparent = current_traceparent()
        if traceparent is not None:
            data["traceparent"] = traceparent
    return data


def _parent_context(run_id: str, traceparent: str | None) -> Any:
    """The context a run's spans are made in: its recorded traceparent, else a remote
    parent derived from the run id (one trace per run, whichever process traces it)."""
    assert _trace is not None
    span_ctx = _parse_traceparent(traceparent) if traceparent else None
    if span_ctx is None:
        digest = hashlib.sha256(run_id.encode()).digest()
        span_ctx = _trace.SpanContext(
            trace_id=int.from_bytes(digest[:16], "big") or 1,
            span_id=int.from_bytes(digest[16:24], "big") or 1,
            is_remote=True,
            trace_flags=_trace.TraceFlags(_trace.TraceFlags.SAMPLED),
        )
    return _trace.set_span_in_context(_trace.NonRecordingSpan(span_ctx))


def _parse_traceparent(value: str) -> Any:
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    assert _trace is not None
    return _trace.SpanContext(
        trace_id=trace_id,
        span_id=span_id,
        is_remote=True,
        trace_flags=_trace.TraceFlags(flags & 0xFF),
    )


@contextlib.contextmanager
def _span(name: str, run_id: str, traceparent: str | None, attrs: dict[str, Any]) -> Iterator[Any]:
    tracer = _tracer()
    if tracer is None:
        yield None
        return
    parent = _parent_context(run_id, traceparent)
    with tracer.start_as_current_span(
        name, context=parent, attributes={"durably.run_id": run_id, **attrs}
    ) as span:
        yield span


@contextlib.contextmanager
def turn_span(
    run_id: str, workflow: str = "", traceparent: str | None = None
) -> Iterator[SpanHandle]:
    """A span around one turn of run ``run_id`` (current while the body runs).

    Args:
        run_id: the run.
        workflow: its workflow's name.
        traceparent: the run's recorded trace parent (``run_created`` data), if any.
    """
    with _span(
        f"durably turn {workflow}".rstrip(), run_id, traceparent, {"durably.workflow": workflow}
    ) as span:
        handle = SpanHandle(span)
        token = _TURN.set(handle)
        try:
            yield handle
        finally:
            _TURN.reset(token)


@contextlib.contextmanager
def step_span(
    run_id: str,
    step_name: str,
    attempt: int,
    *,
    workflow: str = "",
    call: int | None = None,
    traceparent: str | None = None,
) -> Iterator[SpanHandle]:
    """A span around one attempt of a step (current while the step's body runs)."""
    attrs: dict[str, Any] = {
        "durably.workflow": workflow,
        "durably.step": step_name,
        "durably.attempt": attempt,
    }
    if call is not None:
        attrs["durably.call"] = call
    with _span(f"durably step {step_name}", run_id, traceparent, attrs) as span:
        yield SpanHandle(span)


def note_turn(ok: bool, commands: Sequence[NewEvent]) -> None:
    """Record on the current turn's span how the turn ended: ``ok`` is whether its commit
    applied, ``commands`` what the body decided."""
    handle = _TURN.get()
    if handle is None or handle.span is None:
        return
    if not ok:
        handle.set_outcome("conflict")
        return
    end = commands[-1].type if commands else None
    # A turn's outcome is the run's final status when its last command ends the run.
    outcome = RUN_END_STATUS.get(end) if end is not None else None
    if outcome is None:
        handle.set_outcome("suspended")
    else:
        error = str(commands[-1].data.get("error_type") or "") if outcome == "failed" else ""
        handle.set_outcome(outcome, error or None)


@contextlib.contextmanager
def created_turn_span(run_id: str, created: dict[str, Any]) -> Iterator[None]:
    """A turn span around the first turn of a run its creator begins (its origin taken
    from ``created``, the ``run_created`` data, not read back; kept for its later turns).
    Nothing without a tracer."""
    if _trace is None or _tracer() is None:
        yield
        return
    tp = created.get("traceparent")
    found = (str(created.get("workflow") or ""), tp if isinstance(tp, str) else None)
    _origins[run_id] = found
    if len(_origins) > _MAX_ORIGINS:
        _origins.popitem(last=False)
    with turn_span(run_id, *found):
        yield


async def _origin(world: World, run_id: str) -> tuple[str, str | None]:
    """The run's workflow and recorded traceparent, from its first event (cached)."""
    found = _origins.get(run_id)
    if found is not None:
        _origins.move_to_end(run_id)
        return found
    events = await world.read_events(run_id, after_seq=0, limit=1)
    data = events[0].data if events else {}
    tp = data.get("traceparent")
    found = (str(data.get("workflow") or ""), tp if isinstance(tp, str) else None)
    _origins[run_id] = found
    if len(_origins) > _MAX_ORIGINS:
        _origins.popitem(last=False)
    return found


def traced_turn(fn: F) -> F:
    """Decorate ``Worker.advance(self, run_id, ...)``: each call is a turn span.

    Without a tracer the wrapper hands back ``fn``'s own coroutine (no extra frame to
    await: this runs once per step)."""
    if _trace is None:
        return fn

    async def traced(worker: Any, run_id: str, *args: Any, **kwargs: Any) -> Any:
        workflow, traceparent = await _origin(worker.world, run_id)
        with turn_span(run_id, workflow, traceparent):
            return await fn(worker, run_id, *args, **kwargs)

    @functools.wraps(fn)
    def advance(worker: Any, run_id: str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        if _tracer() is None:
            return fn(worker, run_id, *args, **kwargs)
        return traced(worker, run_id, *args, **kwargs)

    return cast(F, advance)


def traced_attempt(fn: F) -> F:
    """Decorate ``Worker._attempt(self, run_id, step_call, attempt, started)`` (which
    returns the fact recording the attempt): each call is a step span.

    Without a tracer the wrapper hands back ``fn``'s own coroutine."""
    if _trace is None:
        return fn

    async def traced(worker: Any, run_id: str, sc: Any, attempt: int, *args: Any) -> Any:
        workflow, traceparent = await _origin(worker.world, run_id)
        with step_span(
            run_id,
            sc.spec.name,
            attempt,
            workflow=workflow,
            call=sc.call,
            traceparent=traceparent,
        ) as handle:
            fact: NewEvent = await fn(worker, run_id, sc, attempt, *args)
            # The status the fact gives the step: completed, retrying or failed.
            outcome = EVENTS[fact.type].status or str(fact.type)
            error = fact.data.get("error_type") if outcome != "completed" else None
            handle.set_outcome(outcome, str(error) if error else None)
            return fact

    @functools.wraps(fn)
    def attempt_(worker: Any, run_id: str, sc: Any, attempt: int, *args: Any) -> Awaitable[Any]:
        if _tracer() is None:
            return fn(worker, run_id, sc, attempt, *args)
        return traced(worker, run_id, sc, attempt, *args)

    return cast(F, attempt_)

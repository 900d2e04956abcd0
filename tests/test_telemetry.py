"""OpenTelemetry spans for turns and step attempts, checked with the SDK's in-memory
exporter; and nothing at all when OpenTelemetry is not installed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from durably import RetryableError, Workflows, start, telemetry
from durably.events import EventType


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        telemetry.use_tracer_provider(None)
        provider.shutdown()


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _flaky_registry(world: str) -> Workflows:
    wf = Workflows(world=world)
    calls = {"n": 0}

    @wf.step(retry_after=0.01)
    async def flaky(x: int) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RetryableError("not yet", retry_after=0.01)
        return x * 2

    @wf.workflow
    async def child(x: int) -> int:
        return await flaky(x)

    @wf.workflow
    async def parent(x: int) -> int:
        return await child(x) + 1

    return wf


async def test_spans_for_turns_and_attempts_join_the_starting_trace(
    spans: InMemorySpanExporter, tmp_path: Any
) -> None:
    wf = _flaky_registry(f"sqlite:///{tmp_path / 'd.db'}")
    async with wf:
        app_tracer = telemetry._tracer()  # the application's own span, same provider
        assert app_tracer is not None
        with app_tracer.start_as_current_span("request") as root:
            run = await start(wf.workflows["parent"], 20)
        assert await run.return_value(timeout=10) == 41
    trace_id = root.get_span_context().trace_id
    finished = spans.get_finished_spans()
    ours = [s for s in finished if s.name.startswith("durably ")]
    assert ours, [s.name for s in finished]
    # Every span of the run and of its child is in the request's trace.
    assert {s.context.trace_id for s in ours} == {trace_id}

    created = (await run.events())[0]
    assert created.type is EventType.RUN_CREATED
    assert created.data["traceparent"].split("-")[1] == f"{trace_id:032x}"

    turns = [s for s in ours if s.name == "durably turn parent"]
    assert turns and all(_attrs(s)["durably.run_id"] == run.run_id for s in turns)
    assert all(_attrs(s)["durably.workflow"] == "parent" for s in turns)
    assert turns[0].parent is not None
    assert turns[0].parent.span_id == root.get_span_context().span_id
    assert [_attrs(s)["durably.outcome"] for s in turns][-1] == "completed"
    assert "suspended" in [_attrs(s)["durably.outcome"] for s in turns]

    attempts = sorted(
        (s for s in ours if s.name == "durably step flaky"),
        key=lambda s: _attrs(s)["durably.attempt"],
    )
    assert [(_attrs(s)["durably.attempt"], _attrs(s)["durably.outcome"]) for s in attempts] == [
        (1, "retrying"),
        (2, "completed"),
    ]
    child_run_id = _attrs(attempts[0])["durably.run_id"]
    assert child_run_id != run.run_id
    assert _attrs(attempts[0])["durably.step"] == "flaky"
    assert _attrs(attempts[0])["durably.workflow"] == "child"
    assert _attrs(attempts[0])["error.type"] == "RetryableError"
    child_turns = [s for s in ours if s.name == "durably turn child"]
    assert child_turns and {_attrs(s)["durably.run_id"] for s in child_turns} == {child_run_id}
    # The child's spans hang under a turn of the parent (its traceparent).
    parent_turn_ids = {s.context.span_id for s in turns}
    assert child_turns[0].parent is not None
    assert child_turns[0].parent.span_id in parent_turn_ids


async def test_a_run_started_outside_any_span_still_gets_one_trace(
    spans: InMemorySpanExporter,
) -> None:
    wf = Workflows(world="memory://otel-no-parent")

    @wf.step
    async def one() -> int:
        return 1

    @wf.workflow
    async def two_steps() -> int:
        return await one() + await one()

    async with wf:
        run = await start(two_steps)
        assert await run.return_value(timeout=10) == 2
        assert "traceparent" not in (await run.events())[0].data
    ours = [s for s in spans.get_finished_spans() if _attrs(s).get("durably.run_id") == run.run_id]
    assert len([s for s in ours if s.name == "durably step one"]) == 2
    assert len({s.context.trace_id for s in ours}) == 1


async def test_failed_turn_outcome(spans: InMemorySpanExporter) -> None:
    wf = Workflows(world="memory://otel-fail")

    @wf.workflow
    async def boom() -> None:
        raise ValueError("no")

    async with wf:
        run = await start(boom)
        with pytest.raises(Exception, match="no"):
            await run.return_value(timeout=10)
    turns = [s for s in spans.get_finished_spans() if s.name == "durably turn boom"]
    assert _attrs(turns[-1])["durably.outcome"] == "failed"
    assert _attrs(turns[-1])["error.type"] == "ValueError"


def test_no_collector_no_spans_and_no_traceparent() -> None:
    # With the API installed but no SDK provider set, nothing is traced or recorded.
    assert telemetry._tracer() is None
    assert telemetry.run_created_data("w") == {"workflow": "w"}
    with telemetry.turn_span("run_x", "w") as handle:
        handle.set_outcome("completed")
    assert handle.span is None


def test_without_opentelemetry_the_decorators_are_identity() -> None:
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from durably import telemetry\n"
        "from durably.worker import Worker\n"
        "assert not telemetry.AVAILABLE\n"
        "f = lambda: None\n"
        "assert telemetry.traced_turn(f) is f and telemetry.traced_attempt(f) is f\n"
        "assert Worker.advance.__qualname__ == 'Worker.advance'\n"
        "assert not hasattr(Worker.advance, '__wrapped__')\n"
        "assert telemetry.current_traceparent() is None\n"
        "assert telemetry.run_created_data('w') == {'workflow': 'w'}\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_a_provider_named_in_the_environment_is_used_once_set() -> None:
    # The check made before each turn and attempt reads the environment's own dict
    # (cheaper than os.environ's mapping): a provider named there later is still loaded.
    code = (
        "import os\n"
        "from durably import telemetry\n"
        "assert telemetry._tracer() is None\n"
        "os.environ['OTEL_PYTHON_TRACER_PROVIDER'] = 'sdk_tracer_provider'\n"
        "assert telemetry._tracer() is not None\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

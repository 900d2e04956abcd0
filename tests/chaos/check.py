"""The invariant check over every run, once the chaos is over.

It reads only what durably shows publicly: a run's status and result (``get_run``), its
stream (``run.readable``), its event log (``World.read_events`` through
``durably.worlds.open_world``, or ``durably inspect events RUN --json``), and the lines
the step bodies appended to the log file.
"""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .shapes import Planned


@dataclass
class Execution:
    """One step attempt's body, as the log file tells it."""

    run_id: str
    step_id: str
    attempt: int
    start: float
    end: float | None = None
    pid: int = 0


@dataclass
class Findings:
    """What the check counted; ``failures`` are broken invariants."""

    runs: int = 0
    child_runs: int = 0
    steps: int = 0
    executions: int = 0
    reexecutions: int = 0
    unconfirmed: int = 0
    lost: int = 0
    wrong: int = 0
    seq_gaps: int = 0
    closed_stuck: int = 0
    stream_exact: int = 0
    stream_anomalies: int = 0
    stream_broken: int = 0
    #: Streams closed more than once: a retry reopened the close of a lost attempt.
    stream_reopened: int = 0
    stream_reader: str = "committed"
    failures: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    unconfirmed_notes: list[str] = field(default_factory=list)


def read_log(path: Path) -> dict[str, list[Execution]]:
    """Step executions by step id, from the lines the bodies appended."""
    out: dict[str, list[Execution]] = collections.defaultdict(list)
    open_: dict[tuple[str, int, int], Execution] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 6:
            continue  # a line cut by a kill cannot happen with one write, but be safe
        run_id, step_id, attempt, what, at, pid = parts
        key = (step_id, int(attempt), int(pid))
        if what == "start":
            ex = Execution(run_id, step_id, int(attempt), float(at), pid=int(pid))
            out[step_id].append(ex)
            open_[key] = ex
        elif what == "end" and key in open_:
            open_.pop(key).end = float(at)
    return out


def call_of(step_id: str) -> int | None:
    """The durable call a step id names (``RUN.CALL``), or ``None`` if it is not that form."""
    tail = step_id.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else None


class Events:
    """Reads a run's event log as JSON-ready dicts (the shape ``inspect events --json``
    prints), from the world in this process or through the CLI."""

    def __init__(self, url: str, via: str) -> None:
        self.url = url
        self.via = via
        self.world: Any = None

    async def __aenter__(self) -> Events:
        if self.via == "world":
            from durably.worlds import open_world

            self.world = open_world(self.url)
            await self.world.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.world is not None:
            await self.world.close()

    async def read(self, run_id: str) -> list[dict[str, Any]]:
        if self.world is not None:
            events = await self.world.read_events(run_id)
            return [
                {
                    "seq": e.seq,
                    "type": str(e.type),
                    "call": e.call,
                    "data": e.data,
                    "created_at": e.created_at,
                }
                for e in events
            ]
        argv = [sys.executable, "-m", "durably", "inspect", "events", run_id, "--json"]
        done = await asyncio.to_thread(
            subprocess.run, [*argv, "--world", self.url], capture_output=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"inspect events {run_id}: {done.stderr.decode()[-500:]}")
        events: list[dict[str, Any]] = json.loads(done.stdout)
        return events


async def read_stream(run: Any, timeout: float) -> list[Any] | None:
    """Every committed chunk of the run's default stream until its final close (``None``:
    not closed in time)."""
    chunks: list[Any] = []

    async def collect() -> None:
        async for value in run.readable(committed=True):
            chunks.append(value)

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        return None
    return chunks


def classify_stream(chunks: list[Any], n: int, final: int | None) -> str:
    """``exact``: the reader saw chunks 0..n-1 once each, in order. ``anomaly``: it also saw
    chunks of attempts whose completion was not recorded (a killed attempt's, or an attempt
    that overlapped the recorded one after its lease was lost), but the recorded attempt's
    own chunks are all there in order: what a live reader may see, never a committed one
    (issue 11, item 4). ``broken``: anything else (chunks of the recorded attempt missing
    or out of order)."""
    if [c["i"] for c in chunks] == list(range(n)):
        return "exact"
    mine = [c["i"] for c in chunks if c["attempt"] == final]
    return "anomaly" if mine == list(range(n)) else "broken"


async def check_run(
    wf: Any,
    events: Events,
    run_id: str,
    planned: Planned | None,
    executions: dict[str, list[Execution]],
    observed: dict[tuple[str, int], float],
    closed_stuck: set[str],
    found: Findings,
) -> list[str]:
    """Check one run; returns the ids of its child runs."""
    log = await events.read(run_id)
    seqs = [e["seq"] for e in log]
    if seqs != list(range(1, len(seqs) + 1)):
        found.seq_gaps += 1
        found.failures.append(f"{run_id}: event sequence is not 1..{len(seqs)}: {seqs}")
    completions: dict[int, dict[str, Any]] = {}
    children: list[str] = []
    stream_call: int | None = None
    closes = collections.Counter(
        e["data"].get("namespace") for e in log if e["type"] == "stream_closed"
    )
    found.stream_reopened += sum(1 for n in closes.values() if n > 1)
    for e in log:
        if e["type"] == "step_created" and e["data"].get("name") == "emit":
            stream_call = e["call"]
        if e["type"] == "step_completed":
            if e["call"] in completions:
                found.failures.append(f"{run_id}: step call {e['call']} completed twice")
            completions[e["call"]] = e
        if e["type"] == "child_created" and isinstance(e["data"].get("child_run_id"), str):
            children.append(e["data"]["child_run_id"])
    found.steps += len(completions)
    for step_id, runs in executions.items():
        if not step_id.startswith(run_id + "."):
            continue
        call = call_of(step_id)
        if call is None:
            found.failures.append(f"step id {step_id!r} is not RUN.CALL: cannot map it")
            continue
        done = completions.get(call)
        if done is None:
            continue
        seen = observed.get((run_id, call))
        recorded = done["data"].get("attempt")
        for ex in runs:
            late = ex.start - done["created_at"]
            what = (
                f"{run_id} call {call}: attempt {ex.attempt} (pid {ex.pid}) started {late:.3f}s "
                f"after the completion of attempt {recorded} was stamped (seq {done['seq']})"
            )
            if seen is not None and ex.start > seen and ex.attempt == recorded:
                # The recorded attempt's own number running a body again after its
                # completion was visible: no claim can hand an attempt number out twice
                # while its body runs, so this is a re-execution (an inline continuation
                # replaying a done step, a completed task queued again with its count).
                found.reexecutions += 1
                found.failures.append(f"{what}, {ex.start - seen:.3f}s after it was seen")
            elif seen is not None and ex.start > seen:
                # Another attempt's body starting after the completion was seen is not
                # proof: a body starts after its claim (the claim, then reading the step's
                # call, maybe through a reconnect), and the claim may precede the commit.
                # Seen in the Postgres faults phase (seed 73036): attempt 1's worker lost
                # the server with its completion in hand, its lease expired, another
                # worker claimed attempt 2, attempt 1's retried commit landed (a late
                # result of a live step is accepted), the watcher saw it, and only then
                # did attempt 2's body start. No time the check can see bounds the claim
                # from below, so it cannot tell this from a claim after the commit; a
                # completed task queued again and claimed is caught anyway: the claim
                # marks the step running, and the re-run's completion is recorded a second
                # time ("completed twice" above).
                found.unconfirmed += 1
                found.unconfirmed_notes.append(
                    f"{what}, {ex.start - seen:.3f}s after it was seen: attempt "
                    f"{ex.attempt} may have been claimed before the completion landed"
                )
            elif late > 0:
                # The completion's timestamp predates its commit when the commit was retried.
                found.unconfirmed += 1
                found.unconfirmed_notes.append(
                    f"{what}; it was first seen "
                    + (f"{seen - ex.start:.3f}s after that start" if seen else "(not watched)")
                )
    run = await wf.get_run(run_id)
    status = await run.status()
    if status != "completed" and run_id in closed_stuck:
        # The defect of issue 11 (fixed: a retry reopens the stream its lost attempt
        # closed): the retries failed closing it again ("stream ... is closed").
        found.closed_stuck += 1
        found.anomalies.insert(0, f"{run_id}: {status}, every retry: stream is closed")
        return children
    if status != "completed":
        found.lost += 1
        found.failures.append(f"{run_id} ({planned.shape if planned else 'child'}): {status}")
        return children
    if planned is not None:
        value = await run.return_value()
        if value != planned.expected:
            found.wrong += 1
            found.failures.append(
                f"{run_id} ({planned.shape}{planned.args}): returned {value!r}, "
                f"expected {planned.expected!r}"
            )
        if planned.chunks:
            chunks = await read_stream(run, timeout=30)
            done = completions.get(stream_call) if stream_call is not None else None
            final = done["data"].get("attempt") if done is not None else None
            kind = "broken" if chunks is None else classify_stream(chunks, planned.chunks, final)
            shown = "never closed" if chunks is None else [(c["i"], c["attempt"]) for c in chunks]
            shown = f"{shown}, recorded attempt {final}"
            if kind == "exact":
                found.stream_exact += 1
            elif kind == "anomaly":
                found.stream_anomalies += 1
                found.anomalies.append(f"{run_id}: stream (index, attempt) {shown}")
            else:
                found.stream_broken += 1
                found.failures.append(f"{run_id}: stream broken: (index, attempt) {shown}")
    return children


async def check_all(
    wf: Any,
    url: str,
    via: str,
    planned: list[Planned],
    log_path: Path,
    observed: dict[tuple[str, int], float],
    closed_stuck: set[str],
) -> Findings:
    """Check every run the driver started, and every child run they made."""
    found = Findings()
    executions = read_log(log_path)
    found.executions = sum(len(v) for v in executions.values())
    by_id = {p.run_id: p for p in planned if p.run_id}
    logged = {ex.run_id for runs in executions.values() for ex in runs}
    queue = list(by_id)
    seen: set[str] = set()
    async with Events(url, via) as events:
        while queue:
            run_id = queue.pop(0)
            if run_id in seen:
                continue
            seen.add(run_id)
            children = await check_run(
                wf, events, run_id, by_id.get(run_id), executions, observed, closed_stuck, found
            )
            queue.extend(children)
        # Runs that ran steps but that neither the driver nor a parent's log knows of.
        for run_id in sorted(logged - seen):
            seen.add(run_id)
            await check_run(wf, events, run_id, None, executions, observed, closed_stuck, found)
    found.runs = len(by_id)
    found.child_runs = len(seen) - len(by_id)
    return found

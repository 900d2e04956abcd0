"""``durably inspect``: runs, one run's steps, its event log, its streams, live hooks."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Any

import click

from .. import serde
from ..agent_steps import agent_step_kind, agent_summary
from ..crypto import Sealer, is_sealed, resolve_keyring
from ..errors import DecryptionError, RunNotFoundError
from ..runtime.failures import decode_error_doc
from ..streams import read_stream
from ..waiting import (
    Waiting,
    absent_stream,
    end_event,
    failing_step,
    no_stream_message,
    waiting_of,
)
from ..worlds import World, resolve_world_url
from ..worlds.base import HookRecord, RunFilter, StepRecord, StreamChunk
from ..worlds.encrypted import record_decryption
from . import live
from .common import (
    fail,
    fmt_duration,
    fmt_time,
    json_option,
    print_json,
    print_table,
    run_async,
    text_type,
    with_world,
    world_option,
)
from .payloads import decrypt_events, decrypt_option, export_history, key_option, show_payload
from .waiting import describe, waiting_for_worker

__all__ = ["inspect"]


@click.group()
def inspect() -> None:
    """Look at runs, their steps, event logs and streams, and live hooks."""


def _short(value: object, width: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def _parse_attrs(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            fail(f"--attr takes KEY=VALUE, got {pair!r}")
        k, v = pair.split("=", 1)
        out[k] = v
    return out


@inspect.command("runs")
@click.option(
    "--status", type=click.Choice(["pending", "running", "completed", "failed", "cancelled"])
)
@click.option("--workflow", default=None, type=text_type, help="Only runs of this workflow.")
@click.option("--namespace", default=None, type=text_type, help="Only runs of this namespace.")
@click.option(
    "--attr", "attrs", multiple=True, type=text_type, metavar="KEY=VALUE", help="Attribute filter."
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--watch", is_flag=True, help="Redraw as runs change (--json: a line per change).")
@world_option
@json_option
def runs_cmd(
    status: str | None,
    workflow: str | None,
    namespace: str | None,
    attrs: tuple[str, ...],
    limit: int,
    world_url: str | None,
    as_json: bool,
    watch: bool = False,
) -> None:
    """List runs, newest first."""
    flt = RunFilter(
        status=status,
        workflow_name=workflow,
        namespace=namespace,
        attributes=_parse_attrs(attrs),
        limit=limit,
    )
    if watch:
        return live.watch(world_url, flt, as_json)

    async def go(world: World) -> None:
        runs = await world.list_runs(flt)
        states = await live.run_states(world, runs)
        if as_json:
            print_json([live.run_json(r, w, f) for r, (w, f) in zip(runs, states, strict=True)])
            return
        print_table(
            [
                "run id",
                "workflow",
                "status",
                "waiting for / error",
                "created",
                "duration",
                "deployment",
                "attributes",
            ],
            [
                [
                    r.run_id,
                    r.workflow_name,
                    r.status,
                    live.run_detail(r, w, f),
                    fmt_time(r.created_at),
                    fmt_duration(r.started_at, r.completed_at),
                    r.deployment,
                    " ".join(f"{k}={v}" for k, v in sorted(r.attributes.items())),
                ]
                for r, (w, f) in zip(runs, states, strict=True)
            ],
        )
        if not runs:
            click.echo(f"no runs in {resolve_world_url(world_url)}")

    run_async(with_world(world_url, go, read_only=True))


@inspect.command("run")
@click.argument("run_id", type=text_type)
@click.option("--follow", is_flag=True, help="Redraw until it ends (--json: a line per change).")
@decrypt_option
@key_option
@world_option
@json_option
def run_cmd(
    run_id: str,
    world_url: str | None,
    as_json: bool,
    follow: bool = False,
    decrypt: bool = False,
    key: str | None = None,
) -> None:
    """Show one run: its status, what it waits for, and its steps (status, attempts,
    timings; the worker and lease end of running ones). A failed run shows its error type
    and failing step, and work due for a few seconds that no worker claimed (no live
    worker of its namespace and deployment has its workflow or step) as "unclaimed";
    --decrypt also shows the error's message and traceback (appending a
    data_decrypted event, who, when, which event, to the run)."""
    if follow:
        if decrypt:
            fail("--decrypt does not go with --follow: run it once the run has failed")
        return live.follow(world_url, run_id, as_json)

    async def go(world: World) -> None:
        rec = await world.get_run(run_id)
        if rec is None:
            raise RunNotFoundError(run_id, resolve_world_url(world_url))
        steps = await world.list_steps(run_id)
        waiting = await waiting_of(world, rec)
        unclaimed = await waiting_for_worker(world, rec, steps, time.time())
        failing = failing_step(rec, steps)
        end = await end_event(world, rec)
        reason = end.data.get("reason") if end is not None and rec.status == "cancelled" else None
        error: dict[str, Any] | None = None
        if decrypt and rec.status == "failed" and end is not None:
            [opened] = await decrypt_events(world, world_url, key, run_id, [end])
            error = _error_doc(opened.payload)
        kinds = {s.call: agent_step_kind(s.name, rec.attributes) for s in steps}
        args = await _tool_args(world, world_url, key, run_id, kinds) if decrypt else {}
        if as_json:
            body = {
                **live.run_json(rec, waiting, failing),
                "cancel_requested": rec.cancel_requested,
                "cancel_reason": reason,
                "unclaimed": unclaimed,
                "steps": [
                    _step_json(s, waiting, kinds.get(s.call), args.get(s.call)) for s in steps
                ],
            }
            if error is not None:
                body["error"] = error
            print_json(body)
            return
        click.echo(f"run       {rec.run_id}")
        click.echo(f"workflow  {rec.workflow_name}")
        click.echo(f"status    {live.status_line(rec, failing, reason)}")
        if waiting.kind is not None:
            since = f"   since {fmt_time(waiting.since)}" if waiting.since else ""
            click.echo(f"waiting   for {waiting.describe()}{since}")
            for other in waiting.also:
                click.echo(f"          and {other.describe()}")
        click.echo(f"namespace {rec.namespace}   deployment {rec.deployment}")
        click.echo(
            f"created   {fmt_time(rec.created_at)}   started {fmt_time(rec.started_at)}   "
            f"took {fmt_duration(rec.started_at, rec.completed_at)}"
        )
        if rec.parent_run_id:
            click.echo(f"parent    {rec.parent_run_id}")
        if rec.attributes:
            attrs = " ".join(f"{k}={v}" for k, v in sorted(rec.attributes.items()))
            click.echo(f"attrs     {attrs}")
        summary = agent_summary(rec.attributes)
        if summary is not None:
            click.echo(f"agent     {summary}")
        if unclaimed is not None:
            click.echo(f"unclaimed {describe(unclaimed)}")
        if rec.status == "failed" and not decrypt:
            click.echo(
                f"          (the error's message and traceback: durably inspect run "
                f"{rec.run_id} --decrypt)"
            )
        click.echo("")
        print_table(
            ["#", "kind", "name", "status", "attempts", "started", "took", "detail"],
            [
                [
                    s.call,
                    kinds.get(s.call) or s.kind,
                    s.name,
                    s.status,
                    s.attempts if s.kind == "step" else "",
                    fmt_time(s.started_at),
                    fmt_duration(s.started_at, s.completed_at),
                    args.get(s.call) or live.step_detail(s, waiting),
                ]
                for s in steps
            ],
        )
        if error is not None:
            click.echo("")
            click.echo(f"error     {error['type']}: {error['message']}")
            if error["traceback"]:
                click.echo("")
                click.echo(str(error["traceback"]).rstrip())

    run_async(with_world(world_url, go, read_only=True))


async def _tool_args(
    world: World, world_url: str | None, key: str | None, run_id: str, kinds: dict[int, str | None]
) -> dict[int, str]:
    """The arguments of an agent run's tool steps, decrypted (one audit record)."""
    calls = [c for c, k in kinds.items() if k == "tool"]
    events = [e for e in [await world.read_command(run_id, c) for c in calls] if e is not None]
    if not events:
        return {}
    out: dict[int, str] = {}
    for e in await decrypt_events(world, world_url, key, run_id, events):
        if e.payload is not None and e.call is not None:
            value = serde.decode(e.payload, where=f"the arguments of step {e.call}")
            out[e.call] = json.dumps(value, default=str, separators=(",", ":"))[:120]
    return out


def _step_json(
    step: StepRecord, waiting: Waiting, agent_kind: str | None = None, args: str | None = None
) -> dict[str, Any]:
    """A step as JSON, with the worker and lease end of a running attempt (and, in an agent
    run, what the step is, and a tool's decrypted arguments)."""
    body = step.to_json()
    if agent_kind is not None:
        body["agent_kind"] = agent_kind
    if args is not None:
        body["args"] = args
    w = live.wait_of_call(waiting, step.call)
    if w is not None and w.kind == "step":
        body["worker"] = w.worker
        body["lease_until"] = w.until
    return body


def _error_doc(payload: bytes | None) -> dict[str, Any]:
    """The decrypted error document of a failure as type, message, traceback."""
    doc = decode_error_doc(payload)
    return {
        "type": str(doc.get("qualname", "Exception")),
        "module": str(doc.get("module", "")),
        "message": str(doc.get("message", "")),
        "traceback": str(doc.get("traceback", "")),
    }


@inspect.command("events")
@click.argument("run_id", type=text_type)
@decrypt_option
@key_option
@click.option(
    "--export",
    "export",
    default=None,
    metavar="FILE",
    help="Write the run's whole log, payloads decrypted, as a JSON history to FILE ('-': "
    "standard output), for `durably replay FILE MODULE:ATTR`; audited like --decrypt.",
)
@world_option
@json_option
def events_cmd(
    run_id: str,
    decrypt: bool,
    key: str | None,
    export: str | None,
    world_url: str | None,
    as_json: bool,
) -> None:
    """Print a run's event log. Payloads show as <encrypted> unless --decrypt, which
    appends a data_decrypted event (who, when, which events) to the run.

    With --export FILE, write the log as a history instead: every event with its
    payload decrypted (recorded in the run's audit trail like --decrypt), for replay
    checks of new code against real runs (`durably replay FILE MODULE:ATTR`)."""

    async def go(world: World) -> None:
        rec = await world.get_run(run_id)
        if rec is None:
            raise RunNotFoundError(run_id, resolve_world_url(world_url))
        events = await world.read_events(run_id)
        if export is not None:
            await export_history(world, world_url, key, rec, events, export)
            return
        if decrypt:
            events = await decrypt_events(world, world_url, key, run_id, events)
        if as_json:
            print_json([{**e.to_json(), "payload": show_payload(e.payload)} for e in events])
            return
        print_table(
            ["seq", "time", "type", "call", "data", "payload"],
            [
                [
                    e.seq,
                    fmt_time(e.created_at),
                    e.type.value,
                    "" if e.call is None else e.call,
                    json.dumps(e.data, separators=(",", ":"), default=str) if e.data else "",
                    _short(show_payload(e.payload)) if e.payload is not None else "",
                ]
                for e in events
            ],
        )

    run_async(with_world(world_url, go, read_only=True))


@inspect.command("streams")
@click.argument("run_id", type=text_type)
@click.option(
    "--namespace",
    default=None,
    type=text_type,
    help="The stream (default: the run's default one).",
)
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Print the stream's chunks as they are written, until it is closed.",
)
@click.option(
    "--from",
    "--start-index",
    "start",
    default=None,
    type=click.IntRange(-(2**63), 2**63 - 1),  # the range a SQL world can be asked for
    metavar="N",
    help="Print the chunks from index N (without --follow: those written so far); a "
    "negative N counts from the end: -1 is the last chunk written so far.",
)
@click.option(
    "--committed",
    is_flag=True,
    help="Print only chunks of step attempts whose completion is recorded (skip those of "
    "attempts that failed or were killed; with --follow, wait for each attempt to end).",
)
@decrypt_option
@key_option
@world_option
@json_option
def streams_cmd(
    run_id: str,
    namespace: str | None,
    follow: bool,
    start: int | None,
    committed: bool,
    decrypt: bool,
    key: str | None,
    world_url: str | None,
    as_json: bool,
) -> None:
    """List a run's streams (chunk counts, closed or not), or print a stream's chunks.

    With --follow, --from/--start-index, --committed or --decrypt, prints one JSON line
    per chunk: {"index": N, "value": ..., "created_at": ..., "call": C, "attempt": A}
    (the step attempt that wrote it; call null and attempt 0: not a step attempt).
    Values show as <encrypted> unless --decrypt, which appends a data_decrypted event
    (who, when, which stream) to the run; a decrypted value that is not plain JSON is
    printed in durably's tagged form. With --committed, only the chunks of attempts whose
    completion is recorded are printed, as Run.readable(committed=True) yields them.
    """

    async def go(world: World) -> None:
        if await world.get_run(run_id) is None:
            raise RunNotFoundError(run_id, resolve_world_url(world_url))
        reading = follow or start is not None or decrypt or committed
        if reading or namespace is not None:
            # Reading a stream the run does not have would print nothing (and --follow
            # would wait for ever): name the streams it has instead.
            others = await absent_stream(world, run_id, namespace or "")
            if others is not None:
                fail(no_stream_message(run_id, namespace or "", others))
        if reading:
            reader = _ChunkPrinter(world, world_url, run_id, namespace or "", decrypt, key)
            await reader.print(start or 0, follow, committed)
            return
        infos = await world.stream_info(run_id)
        if namespace is not None:
            infos = [i for i in infos if i.namespace == namespace]
        if as_json:
            print_json([i.to_json() for i in infos])
            return
        print_table(
            ["namespace", "chunks", "closed", "updated"],
            [
                [
                    i.namespace or "(default)",
                    i.count,
                    "yes" if i.closed else "no",
                    fmt_time(i.updated_at),
                ]
                for i in infos
            ],
        )
        if not infos:
            click.echo(f"run {run_id} has no streams")

    try:
        run_async(with_world(world_url, go, read_only=True))
    except KeyboardInterrupt:
        sys.exit(130)


class _ChunkPrinter:
    """Prints a stream's chunks as JSON lines, read as ``Run.chunks`` reads them."""

    def __init__(
        self,
        world: World,
        world_url: str | None,
        run_id: str,
        namespace: str,
        decrypt: bool,
        key: str | None,
    ) -> None:
        self.world = world
        self.run_id = run_id
        self.namespace = namespace
        self.where = f"a chunk of stream {namespace or '(default)'!r} of run {run_id}"
        self.sealer: Sealer | None = None
        self.audited = False
        if decrypt:
            ring = resolve_keyring(resolve_world_url(world_url), key, create=False)
            if ring is None:
                raise DecryptionError(
                    "--decrypt needs the key: pass --key or set $DURABLY_ENCRYPTION_KEY"
                )
            self.sealer = Sealer(ring)

    async def print(self, start: int, follow: bool, committed: bool = False) -> None:
        async for chunk in read_stream(
            self.world, self.run_id, self.namespace, start, committed=committed, follow=follow
        ):
            await self._emit(chunk, follow)

    async def _emit(self, chunk: StreamChunk, follow: bool) -> None:
        value: Any
        if self.sealer is None:
            value = show_payload(chunk.payload)
        else:
            if is_sealed(chunk.payload) and not self.audited:
                # One audit record per command, before the first plaintext is shown.
                what = f"chunks of stream {self.namespace!r} from {chunk.index}"
                await record_decryption(
                    self.world,
                    self.run_id,
                    [],
                    via="cli",
                    what=what + (" on (followed)" if follow else ""),
                )
                self.audited = True
            from ..http.payloads import to_json_data  # not at import: it loads starlette

            plain = self.sealer.open_chunk(self.run_id, self.namespace, chunk.index, chunk.payload)
            value = to_json_data(serde.decode(plain, where=self.where), where=self.where)
        line = {
            "index": chunk.index,
            "value": value,
            "created_at": chunk.created_at,
            "call": chunk.call,
            "attempt": chunk.attempt,
        }
        click.echo(json.dumps(line, ensure_ascii=False))


@inspect.command("hooks")
@click.option("--run", "run_id", default=None, type=text_type, help="Only the hooks of this run.")
@click.option(
    "--namespace", default=None, type=text_type, help="Only hooks of runs of this namespace."
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@decrypt_option
@key_option
@world_option
@json_option
def hooks_cmd(
    run_id: str | None,
    namespace: str | None,
    limit: int,
    decrypt: bool,
    key: str | None,
    world_url: str | None,
    as_json: bool,
) -> None:
    """List live hooks (runs waiting for the outside world), newest first.

    A hook's token is a secret (whoever has it can resume the hook): the world holds
    only a digest of it, shown as the token, and the metadata encrypted. --decrypt
    shows both as the workflow gave them (audited in each run).
    """

    async def go(world: World) -> None:
        if run_id is not None and await world.get_run(run_id) is None:
            raise RunNotFoundError(run_id, resolve_world_url(world_url))
        hooks = await world.list_hooks(namespace=namespace, run_id=run_id, limit=limit)
        if decrypt:
            hooks = [await _reveal(world, world_url, key, h) for h in hooks]
        if as_json:
            print_json([h.to_json() for h in hooks])
            return
        print_table(
            ["token", "run id", "type", "created", "metadata"],
            [
                [
                    h.token,
                    h.run_id,
                    h.hook_type,
                    fmt_time(h.created_at),
                    json.dumps(h.metadata, separators=(",", ":"), default=str)
                    if h.metadata
                    else "",
                ]
                for h in hooks
            ],
        )
        if not hooks:
            click.echo(f"no live hooks in {resolve_world_url(world_url)}")

    run_async(with_world(world_url, go, read_only=True))


async def _reveal(
    world: World, world_url: str | None, key: str | None, hook: HookRecord
) -> HookRecord:
    """The hook with its token and metadata read from its sealed ``hook_created``."""
    created = await world.read_command(hook.run_id, hook.call)
    if created is None or not created.payload:
        return hook  # a log written before token digests: nothing is sealed
    [opened] = await decrypt_events(world, world_url, key, hook.run_id, [created])
    secret = json.loads(opened.payload or b"{}")
    return dataclasses.replace(
        hook, token=str(secret.get("token")), metadata=dict(secret.get("metadata") or {})
    )

"""``durably mcp``: a Model Context Protocol server over stdio, so that coding agents can
look at runs and act on them with the same rules as the CLI.

:class:`Operator` is what the tools do, on one open world, without MCP (so it is tested
and read on its own); :func:`build_server` exposes each of its public methods as an MCP
tool with the official ``mcp`` package (the extra ``durably[mcp]``). The rules are the
CLI's: payloads show as ``"<encrypted>"`` unless a tool is asked to ``decrypt``, which
needs the key and appends a ``data_decrypted`` audit event (who, ``via: "mcp"``, which
events) to the run; every change goes through :class:`durably.control.Control`.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

from . import serde
from ._extras import require
from .control import Control
from .crypto import Sealer, is_sealed, resolve_keyring
from .errors import DecryptionError, DurablyError, HookNotFoundError, RunNotFoundError
from .events import Event
from .hooks import hook_type_named
from .waiting import failing_step, waiting_of
from .worlds import World, open_world, resolve_world_url
from .worlds.base import RunFilter
from .worlds.encrypted import EncryptedWorld, open_payloads, record_decryption

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

__all__ = ["Operator", "build_server", "serve_stdio"]

#: The most a list or read returns at once (an agent's context is not a log file).
MAX_ITEMS = 500

_INSTRUCTIONS = (
    "durably runs durable workflows. Tools here list and inspect its runs (steps, events, "
    "streams, hooks) and cancel, wake or resume them. Payloads (arguments, results, "
    "errors, stream chunks) are encrypted; pass decrypt=true only when the user asks to "
    "see them: each decryption is recorded in the run's audit trail."
)


def _payload(payload: bytes | None) -> Any:
    """A stored payload as shown without decrypting: JSON, or ``"<encrypted>"``."""
    if payload is None:
        return None
    if is_sealed(payload):
        return "<encrypted>"
    try:
        return json.loads(payload)
    except ValueError:
        return f"<{len(payload)} bytes>"


class Operator:
    """The MCP tools' work on one world (open it with :meth:`open`).

    Args:
        world_url: the world (default ``$DURABLY_WORLD``, else the embedded default).
        key: the key ring for decrypting and for payloads written (a hook's resume);
            default ``$DURABLY_ENCRYPTION_KEY`` or the key file.
    """

    def __init__(self, world_url: str | None = None, key: str | None = None) -> None:
        self.world_url = resolve_world_url(world_url)
        self.key = key
        self.world: World = open_world(self.world_url)
        ring = resolve_keyring(self.world_url, key, create=False)
        self.sealer = Sealer(ring)
        self.control = Control(
            cast(World, EncryptedWorld(self.world, self.sealer)), world_url=self.world_url
        )

    async def open(self) -> None:
        """Open the world."""
        await self.world.open()

    async def close(self) -> None:
        """Close the world."""
        await self.world.close()

    async def _record(self, run_id: str) -> Any:
        rec = await self.world.get_run(run_id)
        if rec is None:
            raise RunNotFoundError(run_id, self.world_url)
        return rec

    async def _opened(self, run_id: str, events: list[Event], what: str) -> list[Event]:
        """Decrypt ``events`` and audit it (nothing is recorded if it fails)."""
        if self.sealer.ring is None:
            raise DecryptionError(
                "decrypting needs the key: start `durably mcp` with --key or with "
                "$DURABLY_ENCRYPTION_KEY set"
            )
        opened = open_payloads(self.sealer, events)
        seqs = [e.seq for e in events if is_sealed(e.payload)]
        if seqs:
            await record_decryption(self.world, run_id, seqs, via="mcp", what=what)
        return opened

    # -- reading -----------------------------------------------------------------------

    async def list_runs(
        self,
        status: str | None = None,
        workflow: str | None = None,
        attributes: dict[str, str] | None = None,
        limit: int = 20,
    ) -> dict[str, Any]:
        """Runs, newest first: filter by status (pending, running, completed, failed,
        cancelled), workflow name and attributes (all must match)."""
        flt = RunFilter(
            status=status,
            workflow_name=workflow,
            attributes=dict(attributes or {}),
            limit=max(1, min(limit, MAX_ITEMS)),
        )
        return {"runs": [r.to_json() for r in await self.world.list_runs(flt)]}

    async def inspect_run(self, run_id: str) -> dict[str, Any]:
        """One run: status, what it waits for now, its failing step, and its durable calls
        (steps, sleeps, hooks, child runs) with status, attempts and timings. Call
        numbers are what fork_run's from_step counts."""
        rec = await self._record(run_id)
        steps = await self.world.list_steps(run_id)
        waiting = await waiting_of(self.world, rec)
        failing = failing_step(rec, steps)
        return {
            "run": rec.to_json(),
            "waiting": waiting.to_json() if waiting.kind else None,
            "failing_step": failing.to_json() if failing else None,
            "steps": [s.to_json() for s in steps],
        }

    async def list_events(
        self, run_id: str, after_seq: int = 0, limit: int = 200, decrypt: bool = False
    ) -> dict[str, Any]:
        """A run's event log from after_seq on. Payloads show as "<encrypted>" unless
        decrypt is true (needs the key; recorded in the run's audit trail)."""
        await self._record(run_id)
        events = await self.world.read_events(
            run_id, after_seq=after_seq, limit=max(1, min(limit, MAX_ITEMS))
        )
        if decrypt:
            events = await self._opened(run_id, events, "events")
        return {
            "events": [{**e.to_json(), "payload": _payload(e.payload)} for e in events],
        }

    async def list_streams(self, run_id: str) -> dict[str, Any]:
        """A run's streams: namespace, chunk count, closed or not."""
        await self._record(run_id)
        return {"streams": [s.to_json() for s in await self.world.stream_info(run_id)]}

    async def read_stream(
        self,
        run_id: str,
        namespace: str = "",
        start_index: int = 0,
        limit: int = 100,
        decrypt: bool = False,
    ) -> dict[str, Any]:
        """The chunks of a run's stream written so far, from start_index (negative counts
        from the end: -1 is the last chunk). Values show as "<encrypted>" unless decrypt
        is true (audited)."""
        from .streams import resolve_start

        await self._record(run_id)
        start = await resolve_start(self.world, run_id, namespace, start_index)
        chunks, closed = await self.world.read_chunks(
            run_id, namespace, start_index=start, limit=max(1, min(limit, MAX_ITEMS))
        )
        values: list[Any] = []
        for c in chunks:
            if decrypt:
                plain = self.sealer.open_chunk(run_id, namespace, c.index, c.payload)
                values.append(serde.decode(plain, where=f"chunk {c.index} of run {run_id}"))
            else:
                values.append(_payload(c.payload))
        if decrypt and chunks:
            what = f"stream {namespace or '(default)'} chunks {chunks[0].index}-{chunks[-1].index}"
            await record_decryption(self.world, run_id, [], via="mcp", what=what)
        return {
            "chunks": [
                {"index": c.index, "value": v, "call": c.call, "attempt": c.attempt}
                for c, v in zip(chunks, values, strict=True)
            ],
            "closed": closed,
        }

    async def list_hooks(
        self, run_id: str | None = None, namespace: str | None = None, limit: int = 50
    ) -> dict[str, Any]:
        """Live hooks (what runs wait for from the outside), newest first. A hook's
        "token" here is its index key (a digest): pass it to resume_hook with its run_id."""
        hooks = await self.world.list_hooks(
            namespace=namespace, run_id=run_id, limit=max(1, min(limit, MAX_ITEMS))
        )
        return {"hooks": [h.to_json() for h in hooks]}

    # -- acting --------------------------------------------------------------------------

    async def cancel_run(self, run_id: str, reason: str | None = None) -> dict[str, Any]:
        """Ask a run to stop: its body gets CancelledError, may clean up, and it ends
        cancelled. A run that already ended is left as it is."""
        ended = await self.control.cancel(run_id, reason)
        return {"run_id": run_id, "cancel_requested": ended is None, "status": ended}

    async def wake_run(self, run_id: str) -> dict[str, Any]:
        """Fire a run's pending durable timers now (a sleep ends early)."""
        await self._record(run_id)
        return {"run_id": run_id, "timers_fired": await self.control.wake(run_id)}

    async def resume_hook(self, run_id: str, token: str, payload: Any = None) -> dict[str, Any]:
        """Resume a live hook of a run with a JSON payload. token: the hook's index key
        from list_hooks (or the token it was created with). The payload is validated
        against the hook's type when this process defines it, else by the workflow."""
        try:
            hook = await self.control.indexed_hook(token, run_id=run_id)
        except HookNotFoundError:
            hook = await self.control.live_hook(token, run_id=run_id)
        cls = hook_type_named(hook.hook_type)
        value = cls.validate(payload) if cls is not None else payload
        where = f"the payload resuming hook {hook.hook_type!r} (call {hook.call})"
        await self.control.resume_hook(hook, serde.encode(value, where=where))
        return {"run_id": run_id, "call": hook.call, "resumed": True}

    async def fork_run(
        self, run_id: str, from_step: int, deployment: str | None = None
    ) -> dict[str, Any]:
        """Start a new run that reuses the recorded results of a run's durable calls
        before from_step (counted from 0, as inspect_run numbers them) and runs from
        there. The run itself is not changed."""
        new_id = await self.control.fork(run_id, from_step, deployment=deployment)
        return {"run_id": new_id, "fork_of": run_id, "from_step": from_step}


#: The tools, in the order they are listed.
TOOLS = (
    "list_runs",
    "inspect_run",
    "list_events",
    "list_streams",
    "read_stream",
    "list_hooks",
    "cancel_run",
    "wake_run",
    "resume_hook",
    "fork_run",
)


def build_server(operator: Operator) -> MCPServer:
    """An MCP server whose tools are :class:`Operator`'s methods (:data:`TOOLS`); the
    world is opened when a session starts and closed when it ends."""
    require("mcp", "`durably mcp` (the MCP server)")
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    def tool(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        # durably's errors say what happened and what to do: the agent reads them
        # (anything else is a crash the SDK reports without its text).
        @functools.wraps(fn)
        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except DurablyError as e:
                raise ToolError(str(e)) from e

        return call

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        await operator.open()
        try:
            yield
        finally:
            await operator.close()

    server: MCPServer = MCPServer("durably", instructions=_INSTRUCTIONS, lifespan=lifespan)
    for name in TOOLS:
        server.add_tool(tool(getattr(operator, name)), name=name, structured_output=True)
    return server


def serve_stdio(world_url: str | None = None, key: str | None = None) -> None:
    """Serve the MCP tools over stdin/stdout until the client closes them."""
    require("mcp", "`durably mcp` (the MCP server)")
    server = build_server(Operator(world_url, key))
    asyncio.run(server.run_stdio_async())

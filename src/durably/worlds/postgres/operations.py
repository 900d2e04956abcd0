"""The operator's side of the PostgreSQL world: deployments seen by workers (and runs
moved between them), and stored payloads scanned and swapped when keys rotate."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import asyncpg

from ...events import Event
from ..base import DeploymentRecord, StreamChunk
from .config import PostgresConfig
from .connections import Connections
from .hub import Hub
from .queries import Statements
from .store import event_from_row

__all__ = ["Operations"]

#: A deployment's ``last_seen`` is written at most this often by one process (workers
#: touch it every few seconds; "stranded" is judged over minutes).
TOUCH_EVERY = 60.0


class Operations:
    """The deployment and payload-rotation methods of :class:`~.world.PostgresWorld`."""

    _touched: ClassVar[dict[tuple[str, str, str, str], float]] = {}
    sql: Statements
    db: Connections
    config: PostgresConfig

    if TYPE_CHECKING:  # provided by PostgresWorld

        async def _live(self) -> Hub: ...

        async def _fetch(self, what: str, sql: str, *args: Any) -> list[asyncpg.Record]: ...

        async def _fetchrow(self, what: str, sql: str, *args: Any) -> asyncpg.Record | None: ...

    async def touch_deployment(self, namespace: str, deployment: str) -> None:
        """Record that a worker of ``deployment`` is alive now (written at most once a
        minute per process: an idle worker stays quiet)."""
        key = (self.config.dsn, self.config.schema, namespace, deployment)
        now = time.time()
        if now - self._touched.get(key, 0.0) < TOUCH_EVERY:
            return
        await self._fetch(
            "record a deployment", self.sql.TOUCH_DEPLOYMENT, namespace, deployment, now
        )
        self._touched[key] = now

    async def list_deployments(self, namespace: str | None = None) -> list[DeploymentRecord]:
        """Deployments seen, newest first, with their runs in flight."""
        rows = await self._fetch("list deployments", self.sql.LIST_DEPLOYMENTS, namespace)
        return [DeploymentRecord(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def move_runs(self, namespace: str, from_deployment: str, to_deployment: str) -> int:
        """Re-pin waiting runs of one deployment (not ended, no step in flight) to
        another; returns how many moved."""
        hub = await self._live()
        channel, payload = hub.notifications([namespace], {})[0]
        rows = await self.db.fetch(
            "move runs",
            self.sql.MOVE_RUNS,
            namespace,
            from_deployment,
            to_deployment,
            time.time(),
            channel,
            payload,
        )
        moved = int(rows[0][0])
        if moved:
            hub.work_arrived([namespace])
        return moved

    # -- payloads at rest (re-encryption) ----------------------------------------------

    async def scan_event_payloads(
        self, *, after: tuple[str, int] | None, limit: int
    ) -> list[Event]:
        """Events that carry a payload, in (run_id, seq) order after ``after``."""
        run_id, seq = after if after is not None else ("", 0)
        rows = await self._fetch(
            "read payloads", self.sql.SCAN_EVENT_PAYLOADS, run_id, seq, max(limit, 0)
        )
        return [event_from_row(r) for r in rows]

    async def scan_chunk_payloads(
        self, *, after: tuple[str, str, int] | None, limit: int
    ) -> list[tuple[str, str, StreamChunk]]:
        """Stream chunks as (run_id, namespace, chunk), in that order after ``after``."""
        run_id, ns, idx = after if after is not None else ("", "", -1)
        rows = await self._fetch(
            "read payloads", self.sql.SCAN_CHUNK_PAYLOADS, run_id, ns, idx, max(limit, 0)
        )
        return [(r[0], r[1], StreamChunk(r[2], r[3], r[4])) for r in rows]

    async def swap_payloads(
        self,
        events: Sequence[tuple[str, int, bytes, bytes]],
        chunks: Sequence[tuple[str, str, int, bytes, bytes]],
    ) -> int:
        """Replace stored payloads where they still equal the old ones; returns how many
        were replaced."""
        rows = await self._fetch(
            "replace payloads",
            self.sql.SWAP_PAYLOADS,
            [e[0] for e in events],
            [e[1] for e in events],
            [e[2] for e in events],
            [e[3] for e in events],
            [c[0] for c in chunks],
            [c[1] for c in chunks],
            [c[2] for c in chunks],
            [c[3] for c in chunks],
            [c[4] for c in chunks],
        )
        return int(rows[0][0])

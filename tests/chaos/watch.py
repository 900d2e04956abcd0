"""Watches the event logs of the runs in flight, to know when each step completion became
visible: an upper bound on the moment it was committed.

A step_completed event's ``created_at`` is stamped when the event is made, before its
commit; when the commit fails and is retried (disk full, lost connection), the event lands
later with its first timestamp. So "a step body started after its completion was
recorded" is certain only when it started after the completion was *seen* in the log.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

END_TYPES = {"run_completed", "run_failed", "run_cancelled"}


class Watcher:
    """Polls ``World.read_events`` (``durably.worlds.open_world``) for the tracked runs."""

    def __init__(self, url: str, interval: float = 0.3) -> None:
        self.url = url
        self.interval = interval
        self.world: Any = None
        self.active: set[str] = set()
        self.last_seq: dict[str, int] = {}
        #: (run, call) -> wall time at which the step's completion was first seen.
        self.observed: dict[tuple[str, int], float] = {}
        self.errors = 0
        #: Runs whose stream was closed by an attempt that was then lost, and whose retries
        #: failed ("stream ... is closed"): they could not finish (a fixed defect, see README).
        self.closed_stuck: set[str] = set()
        self._closed: set[str] = set()

    def track(self, run_id: str) -> None:
        self.active.add(run_id)

    async def poll(self) -> None:
        for run_id in sorted(self.active):
            events = await self.world.read_events(run_id, after_seq=self.last_seq.get(run_id, 0))
            seen = time.time()  # the events are committed before the read returns
            for e in events:
                self.last_seq[run_id] = e.seq
                kind = str(e.type)
                if kind == "step_completed":
                    self.observed.setdefault((run_id, e.call), seen)
                elif kind == "child_created" and isinstance(e.data.get("child_run_id"), str):
                    self.active.add(e.data["child_run_id"])
                elif kind == "stream_closed":
                    self._closed.add(run_id)
                elif (
                    kind in ("step_retrying", "step_failed")
                    and run_id in self._closed
                    and e.data.get("error_type") == "ValueError"
                ):
                    self.closed_stuck.add(run_id)
                elif kind in END_TYPES:
                    self.active.discard(run_id)

    async def run(self, stop: asyncio.Event) -> None:
        from durably.worlds import open_world

        self.world = open_world(self.url)
        opened = False
        try:
            while not stop.is_set():
                try:
                    if not opened:
                        await self.world.open()
                        opened = True
                    await self.poll()
                except Exception:
                    self.errors += 1  # the database is down or full: try again
                try:
                    await asyncio.wait_for(stop.wait(), self.interval)
                except TimeoutError:
                    pass
            try:
                await self.poll()
            except Exception:
                self.errors += 1
        finally:
            try:
                await self.world.close()
            except Exception:
                pass

"""The rows a world's writer committed last, so its next commit need not read them again.

A sequential run's every commit reads the run's row and the row of the step that just
ended, and both are rows the previous commit wrote. The writer remembers them in a
:class:`RowMemo`, which is valid only while nobody else has changed the database:
``PRAGMA data_version`` (read inside the next write transaction, whose lock keeps it
still) changes whenever another connection, in this process or another, has committed
meanwhile, and then the memo is dropped and the rows are read as before. The writer's own
transactions that change these rows outside the ledger forget what they change (or drop
the memo: :meth:`~durably.worlds.sqlite.connections.Connections.write`); a transaction
that fails drops it, since the ledger changes remembered rows in place.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..base import StepRecord
from ..ledger import RunRow
from . import queries as q

__all__ = ["RUN_STATE", "RowMemo", "run_state"]

#: The columns of ``runs`` a commit may change, in :func:`run_state` order.
RUN_STATE = (
    "status",
    "started_at",
    "completed_at",
    "last_seq",
    "error_type",
    "cancel_requested",
    "attributes",
    "decided_seq",
    "turn_seq",
    "turn_due_at",
    "lease_owner",
    "lease_until",
)


def run_state(row: RunRow, *, copy: bool = False) -> tuple[Any, ...]:
    """The values of :data:`RUN_STATE` in ``row`` (``copy``: with a copy of the
    attributes, which the ledger changes in place, to compare with later)."""
    r = row.record
    return (
        r.status,
        r.started_at,
        r.completed_at,
        r.last_seq,
        r.error_type,
        r.cancel_requested,
        dict(r.attributes) if copy else r.attributes,
        row.decided_seq,
        row.turn_seq,
        row.turn_due_at,
        row.lease_owner,
        row.lease_until,
    )


class RowMemo:
    """Run and steps rows as the writer last committed them, valid at one data version.

    Args:
        max_runs: how many runs' rows to keep at least (up to twice as many; the
            oldest are forgotten first).
        max_steps: the same for steps rows.
    """

    __slots__ = ("max_runs", "max_steps", "runs", "steps", "version")

    def __init__(self, max_runs: int = 256, max_steps: int = 1024) -> None:
        self.max_runs = max_runs
        self.max_steps = max_steps
        #: run_id -> (the row, :func:`run_state` of it as stored).
        self.runs: dict[str, tuple[RunRow, tuple[Any, ...]]] = {}
        self.steps: dict[tuple[str, int], StepRecord] = {}
        #: The ``data_version`` the rows are valid at (None: nothing remembered).
        self.version: int | None = None

    def clear(self) -> None:
        """Forget everything."""
        self.runs.clear()
        self.steps.clear()
        self.version = None

    def check(self, conn: sqlite3.Connection) -> None:
        """Inside a write transaction: drop the rows if another connection has committed
        since they were remembered, and note the version they are valid at."""
        version = conn.execute(q.DATA_VERSION).fetchall()[0][0]
        if version != self.version:
            self.runs.clear()
            self.steps.clear()
            self.version = version

    def forget(self, run_ids: list[str], steps: list[tuple[str, int]]) -> None:
        """Forget rows the writer changed outside the ledger."""
        for run_id in run_ids:
            self.runs.pop(run_id, None)
        for key in steps:
            self.steps.pop(key, None)

    def trim(self) -> None:
        """Past twice a bound, keep only the newest rows up to it (rebuilding a dict now
        and then costs less than dropping its oldest key at every commit)."""
        if len(self.runs) > 2 * self.max_runs:
            self.runs = dict(list(self.runs.items())[-self.max_runs :])
        if len(self.steps) > 2 * self.max_steps:
            self.steps = dict(list(self.steps.items())[-self.max_steps :])

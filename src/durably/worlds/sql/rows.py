"""The rows both SQL worlds read, and their decoding into records.

Both dialects select the same columns in the same order (the ``*_COLUMNS`` lists below,
which their ``queries.py`` use), so one decoder per record serves both. A decoder takes
the column it starts at, for statements that return several kinds of row side by side.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from ...events import DATA_UNREAD_BY_REPLAY, Event, EventType
from ..base import DeploymentRecord, HookRecord, RunRecord, StepRecord, StreamChunk, StreamInfo
from ..ledger import RunRow
from ..locks import LockEntry

__all__ = [
    "EVENT_COLUMNS",
    "HOOK_COLUMNS",
    "LOCK_COLUMNS",
    "LOG_COLUMNS",
    "RUN_COLUMNS",
    "STEP_COLUMNS",
    "chunk_from_row",
    "deployment_from_row",
    "dumps",
    "event_from_row",
    "hook_from_row",
    "lock_from_row",
    "lock_params",
    "run_row_from_row",
    "step_from_row",
    "stream_info_from_row",
]

#: Compact JSON, as every SQL world stores it (attributes, event data, hook metadata).
dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

#: The ``runs`` columns a :class:`RunRow` is read from, in :func:`run_row_from_row` order.
RUN_COLUMNS = (
    "run_id, workflow_name, namespace, deployment, status, created_at, started_at,"
    " completed_at, last_seq, idempotency_key, parent_run_id, parent_call, error_type,"
    " cancel_requested, attributes, decided_seq, turn_seq, turn_due_at, lease_owner,"
    " lease_until"
)
#: The ``steps`` columns, in :func:`step_from_row` order.
STEP_COLUMNS = (
    "run_id, call, kind, name, status, attempts, created_at, started_at, completed_at,"
    " due_at, error_type, child_run_id"
)
#: The ``hooks`` columns, in :func:`hook_from_row` order.
HOOK_COLUMNS = "token, run_id, call, hook_type, namespace, created_at, metadata"
#: The ``events`` columns, in :func:`event_from_row` order.
EVENT_COLUMNS = "run_id, seq, type, call, data, payload, created_at"
#: :data:`EVENT_COLUMNS` as a replay reads them (``read_log``): without the data it never
#: reads (:data:`~durably.events.DATA_UNREAD_BY_REPLAY`), which would be decoded for
#: nothing, one unique JSON document per step.
LOG_COLUMNS = (
    "run_id, seq, type, call, CASE WHEN type IN ("
    + ", ".join(f"'{t.value}'" for t in sorted(DATA_UNREAD_BY_REPLAY))
    + ") THEN NULL ELSE data END, payload, created_at"
)

_EVENT_TYPES = {t.value: t for t in EventType}


def _json_object(text: str | None) -> Any:
    # "{}" is by far the most common value: skip the parser for it.
    return json.loads(text) if text and text != "{}" else {}


def run_row_from_row(r: Sequence[Any], at: int = 0) -> RunRow:
    """A :class:`RunRow` from :data:`RUN_COLUMNS` starting at column ``at``."""
    record = RunRecord(
        run_id=r[at],
        workflow_name=r[at + 1],
        namespace=r[at + 2],
        deployment=r[at + 3],
        status=r[at + 4],
        created_at=r[at + 5],
        started_at=r[at + 6],
        completed_at=r[at + 7],
        last_seq=r[at + 8],
        idempotency_key=r[at + 9],
        parent_run_id=r[at + 10],
        parent_call=r[at + 11],
        error_type=r[at + 12],
        cancel_requested=bool(r[at + 13]),  # SQLite stores 0/1
        attributes=_json_object(r[at + 14]),
    )
    return RunRow(
        record,
        decided_seq=r[at + 15],
        turn_seq=r[at + 16],
        turn_due_at=r[at + 17],
        lease_owner=r[at + 18],
        lease_until=r[at + 19],
    )


def step_from_row(r: Sequence[Any], at: int = 0) -> StepRecord:
    """A :class:`StepRecord` from :data:`STEP_COLUMNS` starting at column ``at``."""
    return StepRecord(
        run_id=r[at],
        call=r[at + 1],
        kind=r[at + 2],
        name=r[at + 3],
        status=r[at + 4],
        attempts=r[at + 5],
        created_at=r[at + 6],
        started_at=r[at + 7],
        completed_at=r[at + 8],
        due_at=r[at + 9],
        error_type=r[at + 10],
        child_run_id=r[at + 11],
    )


def hook_from_row(r: Sequence[Any], at: int = 0) -> HookRecord:
    """A :class:`HookRecord` from :data:`HOOK_COLUMNS` starting at column ``at``."""
    return HookRecord(
        token=r[at],
        run_id=r[at + 1],
        call=r[at + 2],
        hook_type=r[at + 3],
        namespace=r[at + 4],
        created_at=r[at + 5],
        metadata=_json_object(r[at + 6]),
    )


def event_from_row(r: Sequence[Any]) -> Event:
    """An :class:`Event` from :data:`EVENT_COLUMNS`."""
    ev = _new_event(Event)
    # The fields' slots, set directly: a frozen dataclass's __init__ sets each one
    # through object.__setattr__, twice the cost of the rest of this decoding (a replay
    # decodes every event of the log).
    _set_run_id(ev, r[0])
    _set_seq(ev, r[1])
    _set_type(ev, _EVENT_TYPES.get(r[2]) or EventType(r[2]))
    _set_call(ev, r[3])
    _set_data(ev, _event_data(r[4]))
    _set_payload(ev, r[5])
    _set_created_at(ev, r[6])
    return ev


_new_event = object.__new__
_set_run_id = vars(Event)["run_id"].__set__
_set_seq = vars(Event)["seq"].__set__
_set_type = vars(Event)["type"].__set__
_set_call = vars(Event)["call"].__set__
_set_data = vars(Event)["data"].__set__
_set_payload = vars(Event)["payload"].__set__
_set_created_at = vars(Event)["created_at"].__set__
# Every field is set above (a field added to Event must be added there too).
assert len(dataclasses.fields(Event)) == 7


#: Decoded event data of short, flat documents, which repeat across a log (every
#: ``step_created`` of one step: ``{"name":"fetch"}``); a replay reads thousands.
_DATA_SEEN: dict[str, dict[str, Any]] = {}
_SCALARS = (str, int, float, bool, type(None))


def _event_data(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    seen = _DATA_SEEN.get(text)
    if seen is not None:
        return dict(seen)  # flat: a shallow copy shares nothing mutable
    data: dict[str, Any] = json.loads(text)
    if (
        len(text) <= 64
        and len(_DATA_SEEN) < 4096
        and all(isinstance(v, _SCALARS) for v in data.values())
    ):
        _DATA_SEEN[text] = dict(data)
    return data


def chunk_from_row(r: Sequence[Any], at: int = 0) -> StreamChunk:
    """A :class:`StreamChunk` from ``idx, payload, created_at, call, attempt`` starting
    at ``at``."""
    return StreamChunk(r[at], r[at + 1], r[at + 2], r[at + 3], r[at + 4] or 0)


def stream_info_from_row(r: Sequence[Any]) -> StreamInfo:
    """A :class:`StreamInfo` from ``namespace, count, closed, updated_at, closer_call,
    closer_attempt``."""
    return StreamInfo(r[0], r[1], bool(r[2]), r[3], r[4], r[5] or 0)


def deployment_from_row(r: Sequence[Any]) -> DeploymentRecord:
    """A :class:`DeploymentRecord` from a ``LIST_DEPLOYMENTS`` row."""
    return DeploymentRecord(r[0], r[1], r[2], r[3], r[4])


# -- locks (durably.worlds.locks) --------------------------------------------------------

#: The ``locks`` columns, in :func:`lock_from_row` order.
LOCK_COLUMNS = "key, run_id, call, lim, holding, priority, queued_at, namespace, workflow_name"


def lock_from_row(r: Sequence[Any], i: int = 0) -> LockEntry:
    """A :class:`~durably.worlds.locks.LockEntry` from :data:`LOCK_COLUMNS` at column ``i``."""
    return LockEntry(
        str(r[i]),
        str(r[i + 1]),
        int(r[i + 2]),
        int(r[i + 3]),
        bool(r[i + 4]),
        int(r[i + 5]),
        float(r[i + 6]),
        str(r[i + 7]),
        str(r[i + 8]),
    )


def lock_params(e: LockEntry) -> tuple[Any, ...]:
    """A lock entry as the values of :data:`LOCK_COLUMNS`."""
    return (
        e.key,
        e.run_id,
        e.call,
        e.limit,
        e.holding,
        e.priority,
        e.queued_at,
        e.namespace,
        e.workflow_name,
    )

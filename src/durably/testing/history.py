"""Exported histories: a run's whole log in one JSON file, payloads in plaintext.

``durably inspect events RUN --export FILE`` writes one (decrypting the payloads, which
is recorded in the run's audit trail); :func:`durably.testing.replay` and ``durably
replay FILE MODULE:ATTR`` read it back. The project's own golden histories
(``tests/fixtures/histories``) are documents of the same shape.

The document::

    {"format": "durably.history/1", "durably_version": "0.1.0",
     "run_id": "run_...", "workflow": "refund", "namespace": "default",
     "deployment": "default", "status": "completed", "exported_at": 1.7e9,
     "exported_by": "ada@host",
     "events": [{"run_id": ..., "seq": 1, "type": "run_created", "call": null,
                 "data": {...}, "payload_bytes": 16, "created_at": 1.7e9,
                 "payload": "<base64 of the plaintext payload, or null>"}, ...]}
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..crypto import is_sealed
from ..errors import HistoryError
from ..events import Event, EventType
from ..worlds.base import RunRecord

__all__ = ["FORMAT", "History", "history_document", "load_history"]

#: The ``format`` of an exported history.
FORMAT = "durably.history/1"


@dataclass(slots=True)
class History:
    """A run's log as read from an exported history."""

    run_id: str
    workflow: str
    namespace: str
    deployment: str
    status: str | None
    events: list[Event]
    source: str


def history_document(rec: RunRecord, events: list[Event], *, exported_by: str) -> dict[str, Any]:
    """The exported history of run ``rec``: ``events`` (their payloads already
    decrypted) as JSON-ready data."""
    import durably

    return {
        "format": FORMAT,
        "durably_version": durably.__version__,
        "run_id": rec.run_id,
        "workflow": rec.workflow_name,
        "namespace": rec.namespace,
        "deployment": rec.deployment,
        "status": rec.status,
        "exported_at": time.time(),
        "exported_by": exported_by,
        "events": [
            {
                **e.to_json(),
                "payload": None if e.payload is None else base64.b64encode(e.payload).decode(),
            }
            for e in events
        ],
    }


def load_history(source: str | Path | dict[str, Any]) -> History:
    """Read an exported history (a path, or the parsed document).

    Raises:
        HistoryError: the file is missing, not JSON, not a history, or holds payloads
            that are still encrypted (export with ``--export``, which decrypts).
    """
    where = "the history" if isinstance(source, dict) else str(source)
    if isinstance(source, dict):
        doc: Any = source
    else:
        try:
            doc = json.loads(Path(source).read_text())
        except FileNotFoundError:
            raise HistoryError(f"no history file at {where}") from None
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise HistoryError(f"{where} is not a JSON history: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list) or not doc["events"]:
        raise HistoryError(
            f"{where} is not a durably history (a JSON object with a non-empty 'events' "
            "list); write one with `durably inspect events RUN_ID --export FILE`"
        )
    try:
        events = [_event(e) for e in doc["events"]]
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise HistoryError(f"{where} holds an event that cannot be read: {e!r}") from None
    if events[0].type is not EventType.RUN_CREATED:
        raise HistoryError(f"{where} does not start with the run's run_created event")
    if any(e.payload is not None and is_sealed(e.payload) for e in events):
        raise HistoryError(
            f"{where} holds encrypted payloads; export with `durably inspect events RUN_ID "
            "--export FILE`, which decrypts them"
        )
    workflow = doc.get("workflow") or events[0].data.get("workflow")
    if not workflow:
        raise HistoryError(f"{where} does not name its workflow")
    return History(
        run_id=events[0].run_id,
        workflow=str(workflow),
        namespace=str(doc.get("namespace") or "default"),
        deployment=str(doc.get("deployment") or "default"),
        status=doc.get("status"),
        events=events,
        source=where,
    )


def _event(e: dict[str, Any]) -> Event:
    payload = e.get("payload")
    return Event(
        run_id=str(e["run_id"]),
        seq=int(e["seq"]),
        type=EventType(e["type"]),
        call=None if e.get("call") is None else int(e["call"]),
        data=dict(e.get("data") or {}),
        payload=None if payload is None else base64.b64decode(payload, validate=True),
        created_at=float(e["created_at"]),
    )

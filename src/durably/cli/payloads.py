"""Showing payloads: ``<encrypted>`` unless ``--decrypt``, which is audited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..crypto import Sealer, is_sealed, resolve_keyring
from ..errors import DecryptionError
from ..events import Event
from ..testing.history import history_document
from ..worlds import World, resolve_world_url
from ..worlds.base import RunRecord
from ..worlds.encrypted import open_payloads, record_decryption, who

__all__ = ["decrypt_events", "decrypt_option", "export_history", "key_option", "show_payload"]

decrypt_option = click.option(
    "--decrypt",
    is_flag=True,
    help="Show payloads in plaintext (needs the key; recorded in the run's audit trail).",
)
key_option = click.option(
    "--key",
    default=None,
    help="Key ring for --decrypt (default: $DURABLY_ENCRYPTION_KEY or the key file).",
)


def show_payload(payload: bytes | None) -> Any:
    """A stored payload for display: JSON data when plaintext, else ``<encrypted>``."""
    if payload is None:
        return None
    if is_sealed(payload):
        return "<encrypted>"
    try:
        return json.loads(payload)
    except ValueError:
        return f"<{len(payload)} bytes>"


async def decrypt_events(
    world: World,
    world_url: str | None,
    key: str | None,
    run_id: str,
    events: list[Event],
    *,
    what: str = "events",
) -> list[Event]:
    """Decrypt the events' payloads and append a ``data_decrypted`` audit event
    (``what``: what was decrypted, for the audit trail).

    Raises:
        DecryptionError: the key is missing or wrong (nothing is recorded then).
    """
    ring = resolve_keyring(resolve_world_url(world_url), key, create=False)
    if ring is None:
        raise DecryptionError("--decrypt needs the key: pass --key or set $DURABLY_ENCRYPTION_KEY")
    opened = open_payloads(Sealer(ring), events)
    seqs = [e.seq for e in events if e.payload is not None and is_sealed(e.payload)]
    if seqs:
        await record_decryption(world, run_id, seqs, via="cli", what=what)
    return opened


async def export_history(
    world: World,
    world_url: str | None,
    key: str | None,
    rec: RunRecord,
    events: list[Event],
    target: str,
) -> None:
    """Write run ``rec``'s log as an exported history to ``target`` (``-``: stdout),
    its payloads decrypted and the decryption recorded in the run's audit trail."""
    opened = events  # stored in plaintext (a world without encryption): nothing to open
    if any(e.payload is not None and is_sealed(e.payload) for e in events):
        opened = await decrypt_events(world, world_url, key, rec.run_id, events, what="export")
    doc = json.dumps(history_document(rec, opened, exported_by=who()), indent=1) + "\n"
    if target == "-":
        click.echo(doc, nl=False)
        return
    Path(target).write_text(doc)
    click.echo(
        f"exported {len(opened)} events of run {rec.run_id} ({rec.workflow_name}, "
        f"{rec.status}) to {target}, payloads decrypted (recorded in the run's audit trail); "
        f"check new code against it with: durably replay {target} MODULE:ATTR",
        err=True,
    )

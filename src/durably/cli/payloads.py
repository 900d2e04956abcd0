"""Showing payloads: ``<encrypted>`` unless ``--decrypt``, which is audited."""

from __future__ import annotations

import json
from typing import Any

import click

from ..crypto import Sealer, is_sealed, resolve_keyring
from ..errors import DecryptionError
from ..events import Event
from ..worlds import World, resolve_world_url
from ..worlds.encrypted import open_payloads, record_decryption

__all__ = ["decrypt_events", "decrypt_option", "key_option", "show_payload"]

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
    world: World, world_url: str | None, key: str | None, run_id: str, events: list[Event]
) -> list[Event]:
    """Decrypt the events' payloads and append a ``data_decrypted`` audit event.

    Raises:
        DecryptionError: the key is missing or wrong (nothing is recorded then).
    """
    ring = resolve_keyring(resolve_world_url(world_url), key, create=False)
    if ring is None:
        raise DecryptionError("--decrypt needs the key: pass --key or set $DURABLY_ENCRYPTION_KEY")
    opened = open_payloads(Sealer(ring), events)
    seqs = [e.seq for e in events if e.payload is not None and is_sealed(e.payload)]
    if seqs:
        await record_decryption(world, run_id, seqs, via="cli")
    return opened

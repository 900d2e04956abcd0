"""``EncryptedWorld``: any world, with every payload sealed on the way in and opened on
the way out (see :mod:`durably.crypto`).

The wrapper hands its sealer to the inner world's ``commit`` and ``append_chunks``, which
encrypt each payload when its place (sequence number, chunk index) is known, and it
decrypts what ``read_events``, ``read_command`` and ``read_chunks`` return. Everything
else passes through unchanged, so every world, built in or plugged in, is encrypted the
same way.
"""

from __future__ import annotations

import dataclasses
import getpass
import socket
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ..crypto import Sealer
from ..events import Event, EventType, NewEvent
from .base import ChunkBatch, Commit, CommitResult, PayloadSealer, RunWrite, StreamChunk, World

__all__ = ["EncryptedWorld", "open_payloads", "record_decryption"]


class EncryptedWorld:
    """A world whose payloads are encrypted at rest."""

    def __init__(self, inner: World, sealer: Sealer) -> None:
        self.inner = inner
        self.sealer = sealer
        self.url = inner.url

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def commit(self, commit: Commit) -> Coroutine[Any, Any, CommitResult]:
        if self.sealer.enabled:
            commit.sealer = self.sealer
        # The inner world's coroutine itself: no frame of this wrapper to await per commit.
        return self.inner.commit(commit)

    async def append_chunks(
        self, batches: Sequence[ChunkBatch], sealer: PayloadSealer | None = None
    ) -> list[int]:
        return await self.inner.append_chunks(
            batches, self.sealer if self.sealer.enabled else sealer
        )

    async def read_events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        events = await self.inner.read_events(run_id, after_seq=after_seq, limit=limit)
        return open_payloads(self.sealer, events)

    async def read_sealed_events(
        self, run_id: str, *, after_seq: int = 0
    ) -> tuple[list[Event], Callable[[Event], bytes | None]]:
        """The run's events with their payloads still sealed, and what opens one: a
        replay decrypts only the payloads its body consumes. A world that can read a
        log leaner for a replay (``read_log``: no data the replay never reads) does."""
        read_log = getattr(self.inner, "read_log", None)
        if read_log is not None:
            events: list[Event] = await read_log(run_id, after_seq=after_seq)
        else:
            events = await self.inner.read_events(run_id, after_seq=after_seq)
        sealer = self.sealer

        def opener(ev: Event) -> bytes | None:
            if ev.payload is None:
                return None
            return sealer.open_event(ev.run_id, ev.seq, ev.type.value, ev.call, ev.payload)

        return events, opener

    async def read_command(self, run_id: str, call: int) -> Event | None:
        ev = await self.inner.read_command(run_id, call)
        return None if ev is None else open_payloads(self.sealer, [ev])[0]

    async def read_chunks(
        self, run_id: str, namespace: str, *, start_index: int = 0, limit: int = 1000
    ) -> tuple[list[StreamChunk], bool]:
        chunks, done = await self.inner.read_chunks(
            run_id, namespace, start_index=start_index, limit=limit
        )
        opened = [
            dataclasses.replace(
                c, payload=self.sealer.open_chunk(run_id, namespace, c.index, c.payload)
            )
            for c in chunks
        ]
        return opened, done


def open_payloads(sealer: Sealer, events: list[Event]) -> list[Event]:
    """The events with their payloads decrypted (``DecryptionError`` if one does not)."""
    out = []
    for ev in events:
        if ev.payload is None:
            out.append(ev)
            continue
        plain = sealer.open_event(ev.run_id, ev.seq, ev.type.value, ev.call, ev.payload)
        out.append(ev if plain is ev.payload else dataclasses.replace(ev, payload=plain))
    return out


def who() -> str:
    """The OS user and host, for the audit trail."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


async def record_decryption(
    world: World, run_id: str, seqs: Sequence[int], *, via: str, what: str = "events"
) -> None:
    """Append a ``data_decrypted`` event to the run: who, when (the event's time), what."""
    data = {"who": who(), "via": via, "what": what, "seqs": list(seqs)}
    fact = NewEvent(EventType.DATA_DECRYPTED, None, data)
    await world.commit(Commit([RunWrite(run_id, facts=[fact])]))

"""``durably keygen`` and ``durably rekey``: encryption keys and their rotation."""

from __future__ import annotations

import click

from ..crypto import Sealer, is_sealed, new_key, resolve_keyring, sealed_key_id
from ..worlds import World, resolve_world_url
from .common import print_json, run_async, with_world, world_option

__all__ = ["keygen", "rekey"]


@click.command()
@click.option("--id", "key_id", default=None, help="Key id (default: random, like k3f9a1c).")
def keygen(key_id: str | None) -> None:
    """Print a new encryption key (KEY_ID:BASE64URL of 32 random bytes).

    Give it to every process of a world as $DURABLY_ENCRYPTION_KEY (or
    Workflows(encryption_key=...)). To rotate, put the new key first and keep the old
    ones after it, comma separated; then `durably rekey` re-encrypts old payloads.
    """
    click.echo(new_key(key_id))


@click.command()
@world_option
@click.option(
    "--key", default=None, help="Key ring (default: $DURABLY_ENCRYPTION_KEY or the key file)."
)
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def rekey(world_url: str | None, key: str | None, batch: int, as_json: bool) -> None:
    """Re-encrypt every payload not sealed with the newest key, in batches, while
    workers keep running (stored payloads never change otherwise)."""
    url = resolve_world_url(world_url)
    ring = resolve_keyring(url, key, create=False)
    if ring is None:
        click.echo("error: encryption is off; nothing to re-encrypt", err=True)
        raise SystemExit(1)
    sealer = Sealer(ring)

    async def go(world: World) -> dict[str, int]:
        counts = {"events": 0, "chunks": 0, "seen": 0}
        after_ev: tuple[str, int] | None = None
        while True:
            events = await world.scan_event_payloads(after=after_ev, limit=batch)
            if not events:
                break
            swaps = []
            for ev in events:
                counts["seen"] += 1
                assert ev.payload is not None
                if is_sealed(ev.payload) and sealed_key_id(ev.payload) == ring.current:
                    continue
                plain = sealer.open_event(ev.run_id, ev.seq, ev.type.value, ev.call, ev.payload)
                new = sealer.seal_event(ev.run_id, ev.seq, ev.type.value, ev.call, plain)
                swaps.append((ev.run_id, ev.seq, ev.payload, new))
            counts["events"] += await world.swap_payloads(swaps, [])
            after_ev = (events[-1].run_id, events[-1].seq)
        after_ch: tuple[str, str, int] | None = None
        while True:
            chunks = await world.scan_chunk_payloads(after=after_ch, limit=batch)
            if not chunks:
                break
            cswaps = []
            for rid, ns, c in chunks:
                counts["seen"] += 1
                if is_sealed(c.payload) and sealed_key_id(c.payload) == ring.current:
                    continue
                plain = sealer.open_chunk(rid, ns, c.index, c.payload)
                cswaps.append(
                    (rid, ns, c.index, c.payload, sealer.seal_chunk(rid, ns, c.index, plain))
                )
            counts["chunks"] += await world.swap_payloads([], cswaps)
            last = chunks[-1]
            after_ch = (last[0], last[1], last[2].index)
        return counts

    counts = run_async(with_world(world_url, go))
    if as_json:
        print_json(counts)
    else:
        click.echo(
            f"re-encrypted {counts['events']} event payloads and {counts['chunks']} stream "
            f"chunks with key {ring.current!r} ({counts['seen']} payloads checked)"
        )

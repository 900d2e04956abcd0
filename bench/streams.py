"""Durable streams: how many chunks per second one step writes and a reader reads.

One step writes N small chunks (``{"i": i, "token": "word"}``, ~30 bytes) to its run's
stream and closes it; a reader in the same process tails the stream with
``run.readable()`` from before the first chunk is written. Reported:

- writes/s: N over the time from the step's first ``write()`` to ``close()`` returning
  (everything durably stored);
- live reads/s: N over the time from the reader's first chunk to its last, while the
  step writes (a reader that keeps up reads at the writer's pace);
- replay reads/s: N over the time to read the closed stream again from index 0;
- lag: how long after ``close()`` returned the live reader had the last chunk.

    python bench/streams.py                    # sqlite in a temp dir, N=100,000
    python bench/streams.py --pause-every 0    # the writer never yields (a tight loop)
    python bench/streams.py --n 20000 --plaintext --world sqlite:///bench.db --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from typing import Any

from durably import Workflows, get_writable, start


async def measure(world: str, n: int, plaintext: bool, pause_every: int) -> dict[str, Any]:
    wf = Workflows(world=world, encryption_key=False if plaintext else None)
    marks: dict[str, float] = {}

    @wf.step
    async def produce(count: int) -> int:
        out = get_writable()
        marks["write_start"] = time.perf_counter()
        for i in range(count):
            await out.write({"i": i, "token": "word"})
            if pause_every and i % pause_every == 0:
                await asyncio.sleep(0)  # let the reader (and the flusher) run
        await out.close()
        marks["write_end"] = time.perf_counter()
        return count

    @wf.workflow
    async def streamer(count: int) -> int:
        return int(await produce(count))

    async with wf:
        run = await start(streamer, n)
        first = last = 0.0
        seen = 0
        async for chunk in run.readable():
            now = time.perf_counter()
            if seen == 0:
                first = now
            assert chunk["i"] == seen, (chunk, seen)
            seen += 1
            last = now
        assert seen == n, seen
        assert await run.return_value(timeout=600) == n

        t0 = time.perf_counter()
        replayed = 0
        async for _ in run.readable():
            replayed += 1
        replay_s = time.perf_counter() - t0
        assert replayed == n

    write_s = marks["write_end"] - marks["write_start"]
    return {
        "world": world.split("://", 1)[0],
        "encrypted": not plaintext,
        "chunks": n,
        "writes_per_s": round(n / write_s),
        "live_reads_per_s": round(n / max(last - first, 1e-9)),
        "replay_reads_per_s": round(n / replay_s),
        "lag_ms": round((last - marks["write_end"]) * 1000, 1),
        "pause_every": pause_every,
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="chunks to write (100,000)")
    parser.add_argument("--world", default=None, help="world URL (default: a temp sqlite file)")
    parser.add_argument("--plaintext", action="store_true", help="turn payload encryption off")
    parser.add_argument(
        "--pause-every",
        type=int,
        default=1,
        metavar="K",
        help="the writer yields to the event loop every K chunks, as a producer that awaits "
        "something between chunks does (default 1; 0: never, a tight loop of write() calls, "
        "whose chunks are then stored only at close() or past 4 MB buffered)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world = args.world or f"sqlite:///{os.path.join(tmp, 'streams.db')}"
        result = asyncio.run(measure(world, args.n, args.plaintext, args.pause_every))
    if args.json:
        print(json.dumps(result))
        return
    enc = "encrypted" if result["encrypted"] else "plaintext"
    pause = f", writer yields every {args.pause_every}" if args.pause_every else ""
    print(f"{result['chunks']:,} chunks, {result['world']} world, {enc} payloads{pause}")
    print(f"  writes/s         {result['writes_per_s']:>12,}   (one step, close() durable)")
    print(f"  live reads/s     {result['live_reads_per_s']:>12,}   (a reader tailing the writer)")
    print(f"  replay reads/s   {result['replay_reads_per_s']:>12,}   (the closed stream again)")
    print(f"  lag              {result['lag_ms']:>10} ms   (last chunk read after close())")


if __name__ == "__main__":
    main()

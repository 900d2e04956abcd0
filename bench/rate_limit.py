"""Rate limiter overhead: what ``@wf.step(rate_limit=...)`` costs a step when the limit is
never reached (a limiter generous enough to grant every start).

One run of N sequential no-op steps, once with plain steps and once with steps naming a
limiter of 1,000,000 starts per second; reported: microseconds per step for each, and the
difference (the cost of the start transaction, plus the queue round trip a rate-limited
step takes instead of running inline). Each is measured after a warm-up run.

    python bench/rate_limit.py                          # sqlite in a temp dir and memory, N=500
    python bench/rate_limit.py --n 2000 --world postgresql://postgres@127.0.0.1/test --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from typing import Any

from durably import Workflows, start


async def measure(world: str, n: int) -> dict[str, Any]:
    wf = Workflows(world=world, encryption_key=False)

    @wf.step
    async def plain(i: int) -> int:
        return i

    @wf.step(rate_limit="bench:1000000/s")
    async def limited(i: int) -> int:
        return i

    @wf.workflow
    async def seq_plain(count: int) -> int:
        for i in range(count):
            await plain(i)
        return count

    @wf.workflow
    async def seq_limited(count: int) -> int:
        for i in range(count):
            await limited(i)
        return count

    out: dict[str, Any] = {"world": world.split("://")[0], "n": n}
    async with wf:
        for name, flow in (("plain", seq_plain), ("limited", seq_limited)):
            await (await start(flow, 10)).return_value(timeout=120)  # warm-up
            t0 = time.perf_counter()
            await (await start(flow, n)).return_value(timeout=600)
            out[f"{name}_us_per_step"] = round((time.perf_counter() - t0) / n * 1e6, 1)
    out["overhead_us_per_step"] = round(out["limited_us_per_step"] - out["plain_us_per_step"], 1)
    return out


def main() -> None:
    """Measure and print one line per world."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--world", action="append", help="a world URL (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    args = p.parse_args()
    worlds = args.world or [f"sqlite:///{tempfile.mkdtemp()}/bench.db", "memory://"]
    for world in worlds:
        res = asyncio.run(measure(world, args.n))
        if args.json:
            print(json.dumps(res))
        else:
            print(
                f"{res['world']:>10}: plain {res['plain_us_per_step']:>8} us/step, "
                f"rate-limited {res['limited_us_per_step']:>8} us/step "
                f"(+{res['overhead_us_per_step']} us)"
            )


if __name__ == "__main__":
    main()

"""The cost of encryption: us per step of a 1,000-step run on SQLite, with and without.

    python bench/encryption.py [--steps 1000] [--repeat 3]

Each configuration runs in a fresh database; the median of the repeats is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from durably import Workflows


async def one(url: str, key: str | bool | None, steps: int) -> float:
    wf = Workflows(world=url, encryption_key=key)

    @wf.step
    async def work(i: int) -> dict[str, int]:
        return {"i": i, "square": i * i}

    @wf.workflow
    async def seq(n: int) -> int:
        total = 0
        for i in range(n):
            total += (await work(i))["square"]
        return total

    async with wf:
        warm = await wf.start(seq, 10)
        await warm.return_value()
        t = time.perf_counter()
        run = await wf.start(seq, steps)
        await run.return_value()
        return (time.perf_counter() - t) * 1e6 / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    results: dict[str, list[float]] = {"encrypted": [], "plaintext": []}
    for _ in range(a.repeat):
        for label, key in (("encrypted", None), ("plaintext", False)):
            url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'enc.db'}"
            results[label].append(asyncio.run(one(url, key, a.steps)))
    enc, plain = (statistics.median(results[k]) for k in ("encrypted", "plaintext"))
    print(f"sqlite, {a.steps}-step run, median of {a.repeat}:")
    print(f"  with encryption    {enc:8.1f} us/step")
    print(f"  without encryption {plain:8.1f} us/step")
    print(f"  cost of encryption {enc - plain:8.1f} us/step ({(enc / plain - 1) * 100:.0f}%)")


if __name__ == "__main__":
    main()

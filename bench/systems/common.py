"""What every system's bench module shares: sizes, timing, the result line."""

from __future__ import annotations

import json
import os
import statistics
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["Sizes", "emit", "median", "rss_kb"]


@dataclass(frozen=True)
class Sizes:
    """Workload sizes; ``quick`` shrinks them for a CI smoke run."""

    seq: int = 1000
    seq_long: int = 5000
    window: int = 500
    fanout_runs: int = 200
    fanout_steps: int = 10
    parallel: int = 200
    starts: int = 50
    payload_steps: int = 50
    payload_bytes: int = 100 * 1024
    sleepers: int = 10_000

    @classmethod
    def pick(cls, quick: bool) -> Sizes:
        if not quick:
            return cls()
        return cls(
            seq=100,
            seq_long=400,
            window=50,
            fanout_runs=20,
            fanout_steps=5,
            parallel=20,
            starts=5,
            payload_steps=5,
            sleepers=200,
        )


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def rss_kb() -> int:
    """Resident memory of this process, in KiB (Linux)."""
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def emit(result: dict[str, Any]) -> None:
    """Print one workload's result as a JSON line on stdout (the runner reads it)."""
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()

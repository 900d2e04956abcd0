"""The short chaos run on each world (about a minute each), so that ``make test`` (and CI)
includes it. The seed is random and printed: a failure names it, to be replayed with
``python -m tests.chaos --world W --kills 20 --db-faults 2 --seed S``. No timing is asserted;
the run is bounded (drain deadline, subprocess timeout) and stops by itself."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.worlds.postgres.support import require_postgres

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--kills", "20", "--db-faults", "2", "--drain", "180"]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("world", ["sqlite", "postgres"])
def test_chaos_quick(world: str) -> None:
    if world == "postgres":
        require_postgres()
    seed = random.SystemRandom().randrange(1, 10**6)
    argv = [sys.executable, "-m", "tests.chaos", "--world", world, *QUICK, "--seed", str(seed)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=540)
    print(done.stdout)
    assert done.returncode == 0, (
        f"chaos failed (world {world}, seed {seed}):\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    )

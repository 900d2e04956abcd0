"""Flow control: lock hand-off and runs contending for one key, durably beside DBOS.

    python bench/flow.py            # full sizes: 200 hand-offs, 10,000 contending runs
    python bench/flow.py --quick    # 20 hand-offs, 200 runs (a smoke run)
    python bench/flow.py --only durably/sqlite,dbos/sqlite --rounds 2
    python bench/flow.py --only durably/postgres,dbos/postgres --contend 1000

Each system and world runs in a process of its own (bench/systems/flow_durably.py,
flow_dbos.py), the systems alternating (durably, DBOS, durably, DBOS, ... per world and
round). Reported:

* handoff: from the end of one holder's step to the start of the next waiting run's step
  (limit 1): median and p99, ms;
* contend-1 / contend-10: runs started at once contending for one key with limit 1 / 10,
  runs per second from the first start to the last step's end.

durably is measured with ``durably.lock`` ("lock") and with ``@wf.workflow(concurrency=)``
("concurrency"); DBOS with a queue of the same ``global_concurrency`` ("queue").
``bench/run.py`` runs this after its own table (``--no-flow`` to skip it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SYSTEMS = HERE / "systems"

#: (system, world) in the order they run within a round: the systems alternate.
CONFIGS = [
    ("durably", "sqlite"),
    ("dbos", "sqlite"),
    ("durably", "postgres"),
    ("dbos", "postgres"),
]
#: workload -> metrics (name, unit, higher is better)
METRICS = {
    "handoff": [("ms_median", "ms median", False), ("ms_p99", "ms p99", False)],
    "contend-1": [("runs_per_s", "runs/s", True)],
    "contend-10": [("runs_per_s", "runs/s", True)],
}


def run_one(
    system: str, world: str, quick: bool, timeout: float, contend: int = 0
) -> list[dict[str, Any]]:
    """One system on one world, in a process of its own: its RESULT lines."""
    cmd = [sys.executable, str(SYSTEMS / f"flow_{system}.py"), "--world", world]
    if quick:
        cmd.append("--quick")
    if contend:
        cmd += ["--contend", str(contend)]
    scratch = tempfile.TemporaryDirectory(prefix=f"flow-{system}-", ignore_cleanup_errors=True)
    try:
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=SYSTEMS,
            check=False,
            env={**os.environ, "TMPDIR": scratch.name},
        )
        stdout, error = out.stdout, (out.stderr.strip().splitlines()[-1:] or [""])[0]
        if out.returncode == 0:
            error = ""
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        error = f"timed out after {timeout:.0f}s"
    finally:
        scratch.cleanup()
    results = [json.loads(line[7:]) for line in stdout.splitlines() if line.startswith("RESULT ")]
    if error:
        results.append({"workload": "error", "error": error})
    return results


def median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def run(
    quick: bool = False, only: set[str] | None = None, rounds: int = 1, contend: int = 0
) -> int:
    """Measure and print the table; 1 if a configuration failed."""
    configs = [c for c in CONFIGS if not only or c[0] in only or "/".join(c) in only]
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    settings: dict[str, str] = {}
    errors: dict[str, str] = {}
    print(f"flow control{' [quick]' if quick else ''}: {rounds} round(s)")
    for r in range(rounds):
        for system, world in configs:
            t = time.monotonic()
            key = f"{system}/{world}"
            for res in run_one(system, world, quick, 300 if quick else 3600, contend):
                w = res.pop("workload")
                if w == "settings":
                    settings[key] = res["durability"]
                elif w == "error":
                    errors[key] = res["error"]
                elif "skipped" in res:
                    errors[key] = f"skipped: {res['skipped']}"
                else:
                    cells.setdefault((w, key, res.pop("variant")), []).append(res)
            print(f"  round {r + 1}: ran {key:<18} {time.monotonic() - t:.1f}s", flush=True)
    print()
    header = f"{'workload':<11} {'metric':<10} {'system/world':<18} {'variant':<12} {'value':>10}"
    print(header)
    print("-" * len(header))
    notes: list[str] = []
    for workload, metrics in METRICS.items():
        for metric, unit, _higher in metrics:
            for (w, key, variant), results in cells.items():
                if w != workload:
                    continue
                value = median([float(x[metric]) for x in results if metric in x])
                note = next((x["note"] for x in results if "note" in x), None)
                mark = ""
                if note:
                    text = f"{key} {workload}: {note}"
                    if text not in notes:
                        notes.append(text)
                    mark = f" [{notes.index(text) + 1}]"
                n = results[0].get("n", "")
                print(
                    f"{workload:<11} {unit:<10} {key:<18} {variant:<12} {value:>10,.1f}"
                    f"{mark}  (n={n})"
                )
        print()
    print("Settings:")
    for key, text in settings.items():
        print(f"  {key}: {text}")
    for i, text in enumerate(notes, 1):
        print(f"  [{i}] {text}")
    for key, err in errors.items():
        print(f"  {key}: {err}")
    return 1 if any(not e.startswith("skipped") for e in errors.values()) else 0


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--only", default="", help="systems or system/world keys, comma-separated")
    p.add_argument("--rounds", type=int, default=1, help="alternate the systems this often")
    p.add_argument("--contend", type=int, default=0, help="runs contending (default 10,000)")
    a = p.parse_args()
    only = {x.strip() for x in a.only.split(",") if x.strip()}
    return run(a.quick, only or None, max(a.rounds, 1), a.contend)


if __name__ == "__main__":
    sys.exit(main())

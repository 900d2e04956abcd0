"""Run the benchmark suite: every system, each in its own process, one table.

    python bench/run.py            # full sizes
    python bench/run.py --quick    # small sizes, a smoke run for CI (no figures asserted)

Each system module under bench/systems prints ``RESULT {json}`` lines; this runner
collects them and prints durably's figures beside each peer's, with the ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SYSTEMS = HERE / "systems"

#: (system, world, durability settings shown beside the numbers)
CONFIGS: list[tuple[str, str, str]] = [
    ("durably", "memory", "nothing persisted"),
    ("durably", "sqlite", "SQLite WAL, synchronous=NORMAL (durable on process crash)"),
    ("durably", "sqlite-fsync", "SQLite WAL, synchronous=FULL (fsync per commit)"),
]

#: workload -> (metric, unit, higher is better)
METRICS: dict[str, list[tuple[str, str, bool]]] = {
    "seq": [("us_per_step", "us/step", False)],
    "seq-long": [
        ("us_per_step_head", "us/step 1-500", False),
        ("us_per_step_tail", "us/step last 500", False),
        ("tail_over_head", "tail/head", False),
    ],
    "fanout": [("steps_per_s", "steps/s", True)],
    "parallel": [("ms", "ms", False)],
    "start": [("ms_median", "ms median", False)],
    "payload": [("us_per_step", "us/step", False)],
    "sleepers": [("bytes_per_run", "bytes/run", False)],
}


def run_config(system: str, world: str, quick: bool, timeout: float) -> dict[str, Any]:
    script = SYSTEMS / f"{system}_bench.py"
    cmd = [sys.executable, str(script), "--world", world]
    if quick:
        cmd.append("--quick")
    t = time.monotonic()
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=SYSTEMS, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    results: dict[str, Any] = {}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            doc = json.loads(line[7:])
            results[doc.pop("workload")] = doc
    if out.returncode != 0:
        results["error"] = out.stderr.strip().splitlines()[-1:] or ["exit " + str(out.returncode)]
    results["seconds"] = time.monotonic() - t
    return results


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
    return str(v)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    p.add_argument("--json", dest="json_out", default="", help="also write results here")
    args = p.parse_args()
    print(
        f"durably benchmarks on {platform.node()} ({platform.machine()}, "
        f"Python {platform.python_version()}){' [quick]' if args.quick else ''}"
    )
    all_results: dict[str, dict[str, Any]] = {}
    failed = False
    for system, world, durability in CONFIGS:
        key = f"{system}/{world}"
        res = run_config(system, world, args.quick, timeout=900)
        all_results[key] = {"durability": durability, **res}
        status = f"error: {res['error']}" if "error" in res else f"{res['seconds']:.1f}s"
        print(f"  ran {key:<22} {status}")
        failed |= "error" in res
    print()
    header = f"{'workload':<10} {'metric':<18}" + "".join(f"{k:>22}" for k in all_results)
    print(header)
    print("-" * len(header))
    for workload, metrics in METRICS.items():
        for metric, unit, _ in metrics:
            row = f"{workload:<10} {unit:<18}"
            for key in all_results:
                v = all_results[key].get(workload, {}).get(metric)
                row += f"{fmt(v) if v is not None else '-':>22}"
            print(row)
    print()
    for key, res in all_results.items():
        print(f"  {key}: {res['durability']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(all_results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""durably against an earlier durably: the same workloads, two source trees, alternating.

    python bench/before_after.py --base 71078fc               # sqlite, 3 rounds
    python bench/before_after.py --base v0.1.0 --worlds sqlite,memory --rounds 5
    python bench/before_after.py --base main~3 --only seq,fanout

A change that should not move performance (a refactoring) is checked against the commit
before it in one run: the base commit is checked out into a temporary git worktree, and
``bench/systems/durably_bench.py`` (from this tree, so both sides run the same workload
code through the public API) runs once per tree per round, in the order base, head, head,
base, base, head... so that a drifting machine favours neither side. Each figure is the
median over rounds; the ratio is head/base for times (below 1: head is faster) and
base/head for rates.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
SYSTEMS = HERE / "systems"

#: metrics where a bigger number is better (the others are times or sizes)
RATES = {"steps_per_s"}


def run_once(src: Path, world: str, only: str, quick: bool) -> dict[str, float]:
    """One run of durably_bench.py with ``src`` first on the path; {workload.metric: value}."""
    cmd = [sys.executable, str(SYSTEMS / "durably_bench.py"), "--world", world]
    if only:
        cmd += ["--only", only]
    if quick:
        cmd.append("--quick")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(SYSTEMS)])}
    out = subprocess.run(cmd, env=env, cwd=SYSTEMS, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with {src}:\n{out.stderr[-3000:]}")
    figures: dict[str, float] = {}
    for line in out.stdout.splitlines():
        if not line.startswith("RESULT "):
            continue
        result = json.loads(line[len("RESULT ") :])
        for key, value in result.items():
            if key != "workload" and isinstance(value, int | float):
                figures[f"{result['workload']}.{key}"] = float(value)
    return figures


def main() -> None:
    """Parse the options, run both trees alternately, print one table per world."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", required=True, help="a git revision to compare with")
    p.add_argument("--head", default="", help="a git revision (default: this working tree)")
    p.add_argument("--worlds", default="sqlite", help="comma-separated: memory,sqlite,postgres")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", default="seq,seq-long,fanout,parallel,start")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    a = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="durably-base-"))
    base_tree = tmp / "base"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base_tree), a.base],
        check=True,
    )
    trees = {"base": base_tree / "src", "head": ROOT / "src"}
    made = [base_tree]
    if a.head:
        head_tree = tmp / "head"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(head_tree), a.head],
            check=True,
        )
        trees["head"] = head_tree / "src"
        made.append(head_tree)
    try:
        for world in [w for w in a.worlds.split(",") if w]:
            samples: dict[str, dict[str, list[float]]] = {"base": {}, "head": {}}
            for r in range(a.rounds):
                order = ["base", "head"] if r % 2 == 0 else ["head", "base"]
                for side in order:
                    for key, value in run_once(trees[side], world, a.only, a.quick).items():
                        samples[side].setdefault(key, []).append(value)
                print(f"  {world}: round {r + 1}/{a.rounds} done", file=sys.stderr)
            head = a.head or "working tree"
            print(f"\n{world}: median of {a.rounds} rounds, base={a.base}, head={head}")
            print(f"{'figure':32} {'base':>12} {'head':>12} {'ratio':>7}")
            for key in sorted(samples["base"]):
                if key not in samples["head"]:
                    continue
                b = statistics.median(samples["base"][key])
                h = statistics.median(samples["head"][key])
                metric = key.split(".", 1)[1]
                ratio = (b / h if metric in RATES else h / b) if b and h else float("nan")
                print(f"{key:32} {b:12.1f} {h:12.1f} {ratio:7.2f}")
        print("\nratio < 1: head is faster (times: head/base; rates: base/head)")
    finally:
        for tree in made:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
            )


if __name__ == "__main__":
    main()

"""Run the benchmark suite: every system, each in its own process, one table.

    python bench/run.py                       # full sizes
    python bench/run.py --quick               # small sizes: a smoke run for CI
    python bench/run.py --only durably,dbos   # some systems (or system/world) only
    python bench/run.py --workloads seq,start # some workloads only
    python bench/run.py --rounds 3            # alternating A B ... B A, medians

Each system module under bench/systems prints ``RESULT {json}`` lines; this runner
collects them and prints durably's figures beside each peer's, with the ratio durably/peer
against durably's configuration of equal durability.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SYSTEMS = HERE / "systems"
sys.path.insert(0, str(SYSTEMS))

from common import PG_ADMIN_URL, WORKLOADS, pg_setting  # noqa: E402


@dataclass(frozen=True)
class Config:
    system: str
    world: str
    #: durability settings shown beside the numbers, unless the module reports its own
    durability: str
    #: for a peer: durably's world of equal durability, which the ratio is taken against
    vs: str = ""
    #: the module may not offer this world yet: check its --help first, skip if absent
    optional: bool = False

    @property
    def key(self) -> str:
        return f"{self.system}/{self.world}"


CONFIGS: list[Config] = [
    Config("durably", "memory", "nothing persisted"),
    Config("durably", "sqlite", "SQLite WAL, synchronous=NORMAL (durable on process crash)"),
    Config("durably", "sqlite-fsync", "SQLite WAL, synchronous=FULL (fsync per commit)"),
    Config("durably", "postgres", "PostgreSQL (server settings: {pg})", optional=True),
    # DBOS on SQLite keeps SQLite's defaults: rollback journal, synchronous=FULL (its module
    # reads them off DBOS's own connection and prints them), so it is compared with
    # durably's fsync-per-commit SQLite world.
    Config("dbos", "sqlite", "DBOS on SQLite", vs="sqlite-fsync"),
    Config("dbos", "postgres", "DBOS on PostgreSQL (server settings: {pg})", vs="postgres"),
    Config("absurd", "postgres", "Absurd on PostgreSQL (server settings: {pg})", vs="postgres"),
    # The local world writes files without fsync and queues in memory: durably's default
    # SQLite world (no fsync per commit) is the closer match.
    Config("vercel", "local", "vercel-workflow local world", vs="sqlite"),
]

#: where a peer's comparison world is missing from durably, the next one of equal durability
#: (a PostgreSQL commit with synchronous_commit=on is fsynced, as durably's sqlite-fsync is)
FALLBACK = {"postgres": "sqlite-fsync"}

#: workload -> (metric, unit, higher is better)
METRICS: dict[str, list[tuple[str, str, bool]]] = {
    "seq": [("us_per_step", "us/step", False)],
    "seq-long": [
        ("us_per_step_head", "us/step head", False),
        ("us_per_step_tail", "us/step tail", False),
        ("tail_over_head", "tail/head", False),
    ],
    "fanout": [("steps_per_s", "steps/s", True)],
    "parallel": [("ms", "ms", False)],
    "start": [("ms_median", "ms median", False)],
    "payload": [("us_per_step", "us/step", False)],
    "sleepers": [("bytes_per_run", "bytes/run", False)],
}
assert list(METRICS) == WORKLOADS


def offers_world(cfg: Config) -> bool:
    script = SYSTEMS / f"{cfg.system}_bench.py"
    out = subprocess.run(
        [sys.executable, str(script), "--help"],
        capture_output=True,
        text=True,
        cwd=SYSTEMS,
        check=False,
        timeout=120,
    )
    return cfg.world in out.stdout


def run_config(cfg: Config, quick: bool, workloads: list[str], timeout: float) -> dict[str, Any]:
    script = SYSTEMS / f"{cfg.system}_bench.py"
    cmd = [sys.executable, str(script), "--world", cfg.world]
    if quick:
        cmd.append("--quick")
    if workloads != WORKLOADS:
        cmd += ["--only", ",".join(workloads)]
    t = time.monotonic()
    # each system's scratch files (databases, data directories) go to a directory of its
    # own, removed afterwards whatever the module does
    scratch = tempfile.TemporaryDirectory(prefix=f"bench-{cfg.system}-", ignore_cleanup_errors=True)
    env = {**os.environ, "TMPDIR": scratch.name}
    try:
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=SYSTEMS,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        results = parse(stdout)
        results["error"] = f"timed out after {timeout:.0f}s"
        results["seconds"] = time.monotonic() - t
        return results
    finally:
        scratch.cleanup()
    results = parse(out.stdout)
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-1:] or [f"exit {out.returncode}"]
        results["error"] = tail[0]
    results["seconds"] = time.monotonic() - t
    return results


def merge_rounds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's results over rounds: per workload, the median of each figure
    (the first round's entry where a figure is not a number)."""
    merged: dict[str, Any] = dict(results[0])
    for workload, first in results[0].items():
        if not isinstance(first, dict):
            continue
        figures = dict(first)
        for metric, value in first.items():
            values = [
                r[workload][metric]
                for r in results
                if isinstance(r.get(workload), dict)
                and isinstance(r[workload].get(metric), int | float)
            ]
            if isinstance(value, int | float) and values:
                figures[metric] = statistics.median(values)
        merged[workload] = figures
    merged["seconds"] = sum(r.get("seconds", 0.0) for r in results)
    return merged


def parse(stdout: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            doc = json.loads(line[7:])
            results[doc.pop("workload")] = doc
    return results


def fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
    return str(v)


def ratio_text(durably: Any, peer: Any, higher_better: bool) -> str:
    """durably/peer, and what it means for durably."""
    if not isinstance(durably, int | float) or not isinstance(peer, int | float):
        return ""
    if durably <= 0 or peer <= 0 or math.isnan(durably) or math.isnan(peer):
        return "n/a"
    r = durably / peer
    better = r > 1 if higher_better else r < 1
    factor = r if r >= 1 else 1 / r
    word = "better" if better else "worse"
    if 0.95 <= r <= 1.05:
        word, factor = "same", 1.0
    if word == "same":
        return f"{r:.3g} (same)"
    return (
        f"{r:.3g} ({factor:,.0f}x {word})" if factor >= 100 else f"{r:.3g} ({factor:.3g}x {word})"
    )


class Notes:
    """Footnotes: skip reasons and notes, numbered in order of first use."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, text: str) -> str:
        if text not in self.texts:
            self.texts.append(text)
        return f"[{self.texts.index(text) + 1}]"


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    p.add_argument(
        "--only",
        default="",
        help="comma-separated systems (durably, dbos, absurd, vercel) or system/world keys",
    )
    p.add_argument("--workloads", default="", help=f"comma-separated, of: {','.join(WORKLOADS)}")
    p.add_argument(
        "--json", dest="json_out", default="", help="write results here (default bench/results/)"
    )
    p.add_argument("--no-flow", action="store_true", help="skip the flow-control section")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every system this many times, in alternating order (A B C, C B A, ...), "
        "and report medians, so that a drifting machine favours no system",
    )
    args = p.parse_args()
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    workloads = [w for w in WORKLOADS if not args.workloads or w in args.workloads.split(",")]
    unknown = set(args.workloads.split(",")) - set(WORKLOADS) - {""}
    if unknown:
        p.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    configs = [c for c in CONFIGS if not only or c.system in only or c.key in only]
    if not configs:
        p.error(f"no configuration matches --only {args.only}")

    print(
        f"durably benchmarks on {platform.node()} ({platform.machine()}, "
        f"Python {platform.python_version()}){' [quick]' if args.quick else ''}"
    )
    pg = ", ".join(
        f"{name}={pg_setting(PG_ADMIN_URL, name)}" for name in ("synchronous_commit", "fsync")
    )
    all_results: dict[str, dict[str, Any]] = {}
    notes = Notes()
    failed = False
    t0 = time.monotonic()
    rounds: dict[str, list[dict[str, Any]]] = {}
    for r in range(max(args.rounds, 1)):
        for cfg in configs if r % 2 == 0 else list(reversed(configs)):
            if cfg.optional and not offers_world(cfg):
                reason = f"{cfg.system}_bench.py has no {cfg.world} world yet"
                all_results[cfg.key] = {
                    "durability": cfg.durability.format(pg=pg),
                    "absent": True,
                    **{w: {"skipped": reason} for w in workloads},
                }
                notes.mark(f"{cfg.key}: {reason}")
                print(f"  ran {cfg.key:<22} skipped: {reason}")
                continue
            res = run_config(cfg, args.quick, workloads, timeout=180 if args.quick else 1200)
            settings = res.pop("settings", {})
            durability = settings.get("durability") or cfg.durability.format(pg=pg)
            rounds.setdefault(cfg.key, []).append(res)
            all_results[cfg.key] = {"durability": durability, **merge_rounds(rounds[cfg.key])}
            status = f"error: {res['error']}" if "error" in res else f"{res['seconds']:.1f}s"
            print(f"  ran {cfg.key:<22} {status} (round {r + 1})", flush=True)
            failed |= "error" in res
    print(f"  total {time.monotonic() - t0:.0f}s")
    print()

    header = (
        f"{'workload':<10} {'metric':<17} {'system/world':<22} {'value':>14}  "
        f"{'durably/peer':<22} vs (equal durability)"
    )
    print(header)
    print("-" * len(header))
    by_cfg = {c.key: c for c in configs}
    for workload in workloads:
        for metric, unit, higher in METRICS[workload]:
            first = True
            for key, res in all_results.items():
                if res.get("absent"):
                    continue
                cell = res.get(workload, {})
                if "skipped" in cell:
                    value = "skip " + notes.mark(f"{key}: {cell['skipped']}")
                elif metric in cell:
                    value = fmt(cell[metric])
                    if "note" in cell:
                        value += " " + notes.mark(f"{key} {workload}: {cell['note']}")
                elif "error" in res:
                    value = "error"
                else:
                    value = "-"
                ratio, vs = "", ""
                cfg = by_cfg[key]
                if cfg.vs:
                    ref = f"durably/{cfg.vs}"
                    ref_res = all_results.get(ref, {})
                    if ref_res.get("absent") and cfg.vs in FALLBACK:
                        ref = f"durably/{FALLBACK[cfg.vs]}"
                        vs = notes.mark(
                            f"durably has no {cfg.vs} world yet: {cfg.key} is compared with "
                            f"{ref} (also fsync per commit)"
                        )
                        ref_res = all_results.get(ref, {})
                    theirs = cell.get(metric)
                    ours = ref_res.get(workload, {}).get(metric)
                    ratio = ratio_text(ours, theirs, higher) if ref_res else ""
                    vs = f"{ref} {vs}".strip() if ratio else ""
                print(
                    f"{workload if first else '':<10} {unit if first else '':<17} "
                    f"{key:<22} {value:>14}  {ratio:<22} {vs}"
                )
                first = False
        print()
    print(
        "durably/peer: durably's figure over the peer's, against durably's configuration "
        "of equal durability;\n'better'/'worse' says which way that is for durably "
        "(for steps/s higher is better, for the rest lower)."
    )
    print()
    print("Durability settings:")
    for key, res in all_results.items():
        if not res.get("absent"):
            print(f"  {key}: {res['durability']}")
    if notes.texts:
        print()
        print("Notes:")
        for i, text in enumerate(notes.texts, 1):
            print(f"  [{i}] {text}")
    errors = {k: r["error"] for k, r in all_results.items() if "error" in r}
    if errors:
        print()
        print("Errors:")
        for key, err in errors.items():
            print(f"  {key}: {err}")
    out = (
        Path(args.json_out)
        if args.json_out
        else HERE / "results" / ("quick.json" if args.quick else "full.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(all_results, indent=2))
    # Flow control (locks, concurrency limits) against DBOS's queue: bench/flow.py.
    if not args.no_flow and not args.workloads and (not only or only & {"durably", "dbos"}):
        import flow

        print()
        failed |= flow.run(args.quick, {s for s in only if s in ("durably", "dbos")} or None) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

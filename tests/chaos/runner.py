"""The chaos driver: worker processes SIGKILLed and restarted at random points (and, in
a second phase, database faults) while runs of every shape flow; then the invariant check.

``python -m tests.chaos --world sqlite|postgres --kills N --seed S``. Everything random
comes from one seeded RNG (printed), every wait is bounded, and the exit code is non-zero
when an invariant fails. See tests/chaos/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import importlib
import os
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from . import databases as db
from .check import Findings, check_all
from .fleet import HERE, Fleet, Slot
from .shapes import Planned, plan
from .watch import Watcher

DISK_FULL_WORDS = ("disk is full", "no space left", "disk full", "sqlite_full", "disk i/o")


@dataclass
class Options:
    world: str
    kills: int
    db_faults: int
    seed: int
    workers: int = 3
    concurrency: int = 4
    in_flight: int = 10
    lease: float = 2.0
    pause: tuple[float, float] = (0.4, 1.6)
    drain: float = 240.0
    strict_streams: bool = True
    strict_disk_full: bool = False
    events_via: str = "world"
    keep: bool = False


@dataclass
class Figures:
    """What one phase (or the whole suite) counted."""

    kills: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    driver_errors: dict[str, int] = field(default_factory=dict)
    worker_deaths: int = 0
    tracebacks: dict[str, int] = field(default_factory=dict)
    disk_full: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    found: Findings = field(default_factory=Findings)

    def add(self, other: Figures) -> None:
        self.kills += other.kills
        for mine, theirs in (
            (self.faults, other.faults),
            (self.driver_errors, other.driver_errors),
            (self.tracebacks, other.tracebacks),
        ):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        self.worker_deaths += other.worker_deaths
        self.disk_full += other.disk_full
        self.skipped += other.skipped
        f, o = self.found, other.found
        for name in (
            "runs", "child_runs", "steps", "executions", "reexecutions", "lost", "wrong",
            "seq_gaps", "closed_stuck", "unconfirmed", "stream_exact", "stream_anomalies",
            "stream_broken", "stream_reopened",
        ):  # fmt: skip
            setattr(f, name, getattr(f, name) + getattr(o, name))
        f.stream_reader = o.stream_reader
        f.failures += o.failures
        f.anomalies += o.anomalies
        f.unconfirmed_notes += o.unconfirmed_notes


def say(msg: str) -> None:
    print(msg, flush=True)


def load_chaosmod() -> ModuleType:
    """(Re)import chaosmod so that its registry takes this phase's environment."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    if "chaosmod" in sys.modules:
        return importlib.reload(sys.modules["chaosmod"])
    return importlib.import_module("chaosmod")


class Phase:
    """One world, one fleet, one stream of runs, one list of chaos actions."""

    def __init__(
        self,
        name: str,
        opts: Options,
        rng: random.Random,
        url: str,
        workdir: Path,
        actions: list[str],
        key: str,
    ) -> None:
        self.name = name
        self.opts = opts
        self.rng = rng
        self.url = url
        self.workdir = workdir
        self.actions = actions
        self.log = workdir / "steps.log"
        self.log.touch()
        self.env = {
            **os.environ,
            "DURABLY_WORLD": url,
            "DURABLY_ENCRYPTION_KEY": key,
            "DURABLY_LEASE_SECONDS": str(opts.lease),
            "CHAOS_LOG": str(self.log),
        }
        self.fleet = Fleet(workdir, self.env, opts.workers, opts.concurrency)
        self.planned: list[Planned] = []
        self.runs: dict[int, Any] = {}
        self.figures = Figures()
        self.mod: ModuleType | None = None
        self.cluster: db.Cluster | None = None
        self.tmpfs: db.Tmpfs | None = None
        self.sqlite_path: Path | None = None
        self.disk_full_until = 0.0
        self._restarts: set[asyncio.Task[None]] = set()
        self.watcher = Watcher(url)

    # -- the driver's side ---------------------------------------------------------

    def driver_error(self, what: str, e: BaseException) -> None:
        kind = f"{what}: {type(e).__module__}.{type(e).__name__}"
        self.figures.driver_errors[kind] = self.figures.driver_errors.get(kind, 0) + 1
        if time.monotonic() < self.disk_full_until:
            import durably

            if not isinstance(e, durably.WorldError):
                self.figures.disk_full.append(f"driver {kind}: {e}"[:300])

    async def top_up(self, mod: ModuleType) -> None:
        """Start runs until ``in_flight`` are unfinished."""
        while sum(1 for p in self.planned if not p.done) < self.opts.in_flight:
            p = plan(self.rng, len(self.planned), f"{self.name}-{self.opts.seed}")
            self.planned.append(p)
            if not await self.start(mod, p):
                return

    async def start(self, mod: ModuleType, p: Planned) -> bool:
        """Start ``p`` (idempotent, so a start that failed halfway is retried safely)."""
        try:
            run = await mod.wf.start(
                getattr(mod, p.shape), *p.args, idempotency_key=f"{self.name}:{p.serial}"
            )
        except Exception as e:
            self.driver_error("start", e)
            return False
        p.run_id = run.run_id
        self.runs[p.serial] = run
        self.watcher.track(run.run_id)
        return True

    async def poke(self, mod: ModuleType) -> None:
        """Resume the hooks that wait, and notice the runs that ended."""
        for p in self.planned:
            if p.done:
                continue
            if not p.run_id and not await self.start(mod, p):
                return
            if p.token is not None and not p.resumed:
                try:
                    await mod.Nudge(value=p.nudge).resume(p.token)
                    p.resumed = True
                except Exception as e:
                    if type(e).__name__ != "HookNotFoundError":
                        self.driver_error("resume", e)
            try:
                status = await self.runs[p.serial].status()
            except Exception as e:
                self.driver_error("status", e)
                return
            if status in ("completed", "failed", "cancelled"):
                p.done = True

    # -- the chaos side ------------------------------------------------------------

    def respawn_later(self, slot: Slot, delay: float) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            if slot.proc is None:
                self.fleet.spawn(slot)

        task = asyncio.get_running_loop().create_task(later())
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    def kill(self) -> None:
        live = self.fleet.live_slots()
        if not live:
            return
        # Now and then every worker at once: nobody is left to take over at lease expiry.
        victims = live if self.rng.random() < 0.1 else [self.rng.choice(live)]
        for slot in victims:
            self.fleet.kill(slot)
            self.respawn_later(slot, self.rng.uniform(0.0, 1.0))

    async def fault(self, kind: str) -> None:
        self.figures.faults[kind] = self.figures.faults.get(kind, 0) + 1
        if kind == "sqlite_lock":
            assert self.sqlite_path is not None
            await db.hold_sqlite_lock(self.sqlite_path, self.rng.uniform(2.0, 5.0))
        elif kind == "disk_full":
            assert self.tmpfs is not None
            hold = self.rng.uniform(2.0, 4.0)
            self.disk_full_until = time.monotonic() + hold + 3 * self.opts.lease + 5
            await asyncio.to_thread(self.tmpfs.fill)
            await asyncio.sleep(hold)
            self.tmpfs.free()
        elif kind == "pg_restart":
            assert self.cluster is not None
            await self.cluster.restart_after(down=self.rng.uniform(0.5, 3.0))
        elif kind == "pg_terminate":
            assert self.cluster is not None
            for _ in range(self.rng.randint(1, 3)):
                await self.cluster.terminate_backends()
                await asyncio.sleep(self.rng.uniform(0.1, 1.0))
        else:
            raise ValueError(kind)

    async def chaos(self) -> None:
        await asyncio.sleep(2.0)  # let the fleet start and the first runs begin
        for action in self.actions:
            await asyncio.sleep(self.rng.uniform(*self.opts.pause))
            self.fleet.reap()
            if action == "kill":
                self.kill()
            else:
                say(f"  [{self.name}] fault: {action}")
                await self.fault(action)

    # -- the whole phase ------------------------------------------------------------

    async def run(self) -> Figures:
        started = time.monotonic()
        os.environ.update(
            {k: self.env[k] for k in ("DURABLY_WORLD", "DURABLY_ENCRYPTION_KEY", "CHAOS_LOG")}
        )
        mod = self.mod = load_chaosmod()
        kills = self.actions.count("kill")
        faults = len(self.actions) - kills
        say(f"  [{self.name}] {self.url}: {kills} kills, {faults} db faults")
        self.fleet.start()
        stop_watching = asyncio.Event()
        watching = asyncio.get_running_loop().create_task(self.watcher.run(stop_watching))
        try:
            chaos = asyncio.get_running_loop().create_task(self.chaos())
            while not chaos.done():
                await self.top_up(mod)
                await self.poke(mod)
                await asyncio.sleep(0.2)
            await chaos
            say(f"  [{self.name}] chaos over after {time.monotonic() - started:.0f}s; draining")
            for slot in self.fleet.dead_slots():
                self.fleet.spawn(slot)
            deadline = time.monotonic() + self.opts.drain
            while time.monotonic() < deadline and any(
                not p.done and p.run_id not in self.watcher.closed_stuck for p in self.planned
            ):
                self.fleet.reap()
                await self.poke(mod)
                await asyncio.sleep(0.3)
            for task in list(self._restarts):
                task.cancel()
            stop_watching.set()
            await asyncio.wait_for(watching, 60)
            await asyncio.to_thread(self.fleet.stop)
            self.figures.kills = self.fleet.kills
            self.figures.worker_deaths = len(self.fleet.deaths)
            self.scan_outputs()
            say(f"  [{self.name}] checking {len(self.planned)} runs")
            self.figures.found = await asyncio.wait_for(
                check_all(
                    mod.wf,
                    self.url,
                    self.opts.events_via,
                    self.planned,
                    self.log,
                    self.watcher.observed,
                    self.watcher.closed_stuck,
                ),
                timeout=600,
            )
        finally:
            stop_watching.set()
            watching.cancel()
            for task in list(self._restarts):
                task.cancel()
            self.fleet.stop(timeout=5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(mod.wf.aclose(), 30)
        say(f"  [{self.name}] done in {time.monotonic() - started:.0f}s")
        return self.figures

    def scan_outputs(self) -> None:
        """Count the tracebacks the workers printed (by their last line)."""
        for path in self.fleet.outputs():
            text = path.read_text(errors="replace") if path.exists() else ""
            for block in re.split(r"(?=^Traceback \(most recent call last\):)", text, flags=re.M):
                if not block.startswith("Traceback"):
                    continue
                last = next(
                    (ln for ln in reversed(block.splitlines()) if re.match(r"^[\w.]+(:|$)", ln)),
                    block.splitlines()[-1],
                )
                last = last.strip()[:200]
                self.figures.tracebacks[last] = self.figures.tracebacks.get(last, 0) + 1
                if any(w in last.lower() for w in DISK_FULL_WORDS):
                    self.figures.disk_full.append(f"worker traceback ({path.name}): {last}")
        for path, code in self.fleet.deaths:
            tail = path.read_text(errors="replace")[-300:] if path.exists() else ""
            if any(w in tail.lower() for w in DISK_FULL_WORDS):
                self.figures.disk_full.append(f"worker exited ({code}), {path.name}: ...{tail}")


def split_kills(total: int, faults: int) -> tuple[int, int]:
    """Kills of the plain phase and of the fault phase (which gets a tenth, at least 2)."""
    if faults <= 0:
        return total, 0
    in_faults = min(total, max(2, total // 10))
    return total - in_faults, in_faults


def actions(rng: random.Random, kills: int, faults: list[str]) -> list[str]:
    out = ["kill"] * kills + faults
    rng.shuffle(out)
    return out


async def sqlite_phases(opts: Options, rng: random.Random, root: Path, key: str) -> Figures:
    total = Figures()
    plain_kills, fault_kills = split_kills(opts.kills, opts.db_faults)
    work = root / "sqlite-kills"
    work.mkdir()
    url = f"sqlite:///{work / 'chaos.db'}"
    phase = Phase("sqlite", opts, rng, url, work, actions(rng, plain_kills, []), key)
    total.add(await phase.run())
    if opts.db_faults <= 0:
        return total
    tmpfs = db.Tmpfs(size_mb=48)
    why = tmpfs.mount()
    kinds = ["sqlite_lock", "disk_full"]
    if why is not None:
        total.skipped.append(f"SQLite disk full not tested: {why}")
        say(f"  note: {total.skipped[-1]}")
        kinds = ["sqlite_lock"]
    faults = [kinds[i % len(kinds)] for i in range(opts.db_faults)]
    work = root / "sqlite-faults"
    work.mkdir()
    path = tmpfs.dir / "chaos.db"
    phase = Phase(
        "sqlite-faults",
        opts,
        rng,
        f"sqlite:///{path}",
        work,
        actions(rng, fault_kills, faults),
        key,
    )
    phase.sqlite_path = path
    phase.tmpfs = tmpfs
    try:
        total.add(await phase.run())
    finally:
        tmpfs.free()
        # Keep the database for a post-mortem (the tmpfs goes away).
        for f in tmpfs.dir.glob("chaos.db*"):
            shutil.copy2(f, work / f.name)
        tmpfs.unmount()
    return total


async def postgres_phases(opts: Options, rng: random.Random, root: Path, key: str) -> Figures:
    total = Figures()
    why = await db.reachable(db.SHARED_PG)
    if why is not None:
        raise SystemExit(f"cannot run the Postgres chaos: {why}")
    plain_kills, fault_kills = split_kills(opts.kills, opts.db_faults)
    url = db.with_schema(db.SHARED_PG)
    work = root / "postgres-kills"
    work.mkdir()
    phase = Phase("postgres", opts, rng, url, work, actions(rng, plain_kills, []), key)
    try:
        total.add(await phase.run())
    finally:
        await db.drop_schema(url)
    if opts.db_faults <= 0:
        return total
    why = db.Cluster.unavailable()
    if why is not None:
        total.skipped.append(f"Postgres faults not tested (no throwaway cluster): {why}")
        say(f"  note: {total.skipped[-1]}")
        return total
    cluster = db.Cluster()
    try:
        await asyncio.to_thread(cluster.create)
        kinds = ["pg_restart", "pg_terminate"]
        faults = [kinds[i % 2] for i in range(opts.db_faults)]
        work = root / "postgres-faults"
        work.mkdir()
        phase = Phase(
            "postgres-faults",
            opts,
            rng,
            cluster.url,
            work,
            actions(rng, fault_kills, faults),
            key,
        )
        phase.cluster = cluster
        total.add(await phase.run())
    finally:
        await asyncio.to_thread(cluster.destroy)
    return total


def report(opts: Options, fig: Figures, wall: float) -> int:
    """Print the figures; the exit code (1 when an invariant failed)."""
    f = fig.found
    say("")
    say(f"chaos figures ({opts.world}, seed {opts.seed})")
    say(f"  kills (SIGKILL)                  {fig.kills}")
    for kind, n in sorted(fig.faults.items()):
        say(f"  db fault {kind:<24}{n}")
    say(f"  runs started by the driver       {f.runs}")
    say(f"  child runs                       {f.child_runs}")
    say(f"  steps recorded completed         {f.steps}")
    say(f"  step bodies executed             {f.executions}")
    say(f"  re-executions after recording    {f.reexecutions}   (must be 0)")
    say(f"  started after a completion's stamp, not proven re-run: {f.unconfirmed}")
    say(f"  lost or unfinished runs          {f.lost}   (must be 0)")
    say(f"  wrong results                    {f.wrong}   (must be 0)")
    say(f"  event sequence gaps              {f.seq_gaps}   (must be 0)")
    say(f"  streams exact ({f.stream_reader} reader)     {f.stream_exact}")
    strict = " (must be 0)" if opts.strict_streams else " (not failing: --no-strict-streams)"
    say(f"  stream anomalies                 {f.stream_anomalies}{strict}")
    say(f"  runs stuck on a stream closed by a lost attempt {f.closed_stuck}{strict}")
    say(f"  streams broken                   {f.stream_broken}   (must be 0)")
    say(
        f"  streams reopened by a retry      {f.stream_reopened}   (a lost attempt had closed them)"
    )
    say(f"  workers that died on their own   {fig.worker_deaths}")
    say(f"  worker tracebacks                {sum(fig.tracebacks.values())}")
    for line, n in sorted(fig.tracebacks.items(), key=lambda kv: -kv[1])[:8]:
        say(f"      {n} x {line}")
    for kind, n in sorted(fig.driver_errors.items()):
        say(f"  driver error {kind}: {n}")
    strict = " (fails: --strict-disk-full)" if opts.strict_disk_full else " (known: item 5)"
    say(f"  disk-full anomalies              {len(fig.disk_full)}{strict}")
    for line, n in collections.Counter(fig.disk_full).most_common(6):
        say(f"      {n} x {line}")
    for line in fig.skipped:
        say(f"  skipped: {line}")
    for line in f.unconfirmed_notes[:20]:
        say(f"  not proven re-run: {line}")
    for line in f.anomalies[:8]:
        say(f"  stream anomaly: {line}")
    say(f"  wall time                        {wall:.0f}s")
    failures = list(f.failures)
    if opts.strict_streams and f.stream_anomalies:
        failures.append(f"{f.stream_anomalies} stream anomalies (--strict-streams)")
    if opts.strict_streams and f.closed_stuck:
        failures.append(f"{f.closed_stuck} runs stuck on a closed stream (--strict-streams)")
    if opts.strict_disk_full and fig.disk_full:
        failures.append(f"{len(fig.disk_full)} disk-full anomalies (--strict-disk-full)")
    if f.runs == 0:
        failures.append("no run was started")
    if failures:
        say(f"FAILED: {len(failures)} invariant failures (seed {opts.seed}, {opts.world}):")
        for line in failures[:40]:
            say(f"  {line}")
        return 1
    say("OK: every invariant held")
    return 0


def parse(argv: list[str] | None) -> Options:
    ap = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    ap.add_argument("--world", choices=("sqlite", "postgres"), required=True)
    ap.add_argument("--kills", type=int, default=200, help="SIGKILLs in all (default 200)")
    ap.add_argument("--db-faults", type=int, default=6, help="database faults (0: none)")
    ap.add_argument("--seed", type=int, default=None, help="the RNG seed (default: random)")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--in-flight", type=int, default=10, help="unfinished runs kept going")
    ap.add_argument("--lease", type=float, default=2.0, help="DURABLY_LEASE_SECONDS")
    ap.add_argument("--drain", type=float, default=240.0, help="max seconds to finish runs")
    ap.add_argument(
        "--strict-streams",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fail on stream anomalies and runs stuck on a closed stream (the default; "
        "--no-strict-streams only counts them)",
    )
    ap.add_argument("--strict-disk-full", action="store_true", help="fail on disk-full anomalies")
    ap.add_argument("--events-via", choices=("world", "cli"), default="world")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 10**6)
    return Options(
        world=a.world,
        kills=a.kills,
        db_faults=a.db_faults,
        seed=seed,
        workers=a.workers,
        concurrency=a.concurrency,
        in_flight=a.in_flight,
        lease=a.lease,
        drain=a.drain,
        strict_streams=a.strict_streams,
        strict_disk_full=a.strict_disk_full,
        events_via=a.events_via,
        keep=a.keep,
    )


async def amain(opts: Options) -> int:
    say(
        f"chaos: world {opts.world}, {opts.kills} kills, {opts.db_faults} db faults, "
        f"seed {opts.seed} (rerun: python -m tests.chaos --world {opts.world} "
        f"--kills {opts.kills} --db-faults {opts.db_faults} --seed {opts.seed})"
    )
    rng = random.Random(opts.seed)
    root = Path(tempfile.mkdtemp(prefix="durably-chaos-"))
    started = time.monotonic()
    key = await asyncio.to_thread(db.new_key)
    code = 1
    fig = Figures()
    try:
        if opts.world == "sqlite":
            fig = await sqlite_phases(opts, rng, root, key)
        else:
            fig = await postgres_phases(opts, rng, root, key)
        code = report(opts, fig, time.monotonic() - started)
    finally:
        # Kept for a post-mortem also when a start came after a completion's stamp.
        if opts.keep or code != 0 or fig.found.unconfirmed:
            say(f"work folder kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return code


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(amain(parse(argv)))

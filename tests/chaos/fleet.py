"""``durably worker chaosmod:wf`` processes: started, SIGKILLed, restarted, stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = [sys.executable, "-m", "durably", "worker", "chaosmod:wf"]


@dataclass
class Slot:
    """One place in the fleet; its process is replaced after each kill."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    generation: int = 0
    outputs: list[Path] = field(default_factory=list)


class Fleet:
    """A few worker processes on one world."""

    def __init__(self, workdir: Path, env: dict[str, str], size: int, concurrency: int) -> None:
        self.workdir = workdir
        self.env = {**env, "PYTHONPATH": os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])}
        self.concurrency = concurrency
        self.slots = [Slot(i) for i in range(size)]
        self.kills = 0
        #: Workers that exited without being killed or stopped: (output file, exit code).
        self.deaths: list[tuple[Path, int | None]] = []

    def spawn(self, slot: Slot) -> None:
        slot.generation += 1
        out_path = self.workdir / f"worker-{slot.index}-{slot.generation}.out"
        slot.outputs.append(out_path)
        with out_path.open("wb") as out:
            slot.proc = subprocess.Popen(
                [*WORKER, "--concurrency", str(self.concurrency)],
                cwd=self.workdir,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def start(self) -> None:
        for slot in self.slots:
            self.spawn(slot)

    def kill(self, slot: Slot) -> None:
        """SIGKILL the slot's worker (if it runs) and forget it."""
        proc = slot.proc
        slot.proc = None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            self.kills += 1
        proc.wait()

    def reap(self) -> None:
        """Note and replace workers that died on their own."""
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is not None:
                self.deaths.append((slot.outputs[-1], slot.proc.returncode))
                self.spawn(slot)

    def dead_slots(self) -> list[Slot]:
        return [s for s in self.slots if s.proc is None]

    def live_slots(self) -> list[Slot]:
        return [s for s in self.slots if s.proc is not None]

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM every worker; SIGKILL those still running after ``timeout``."""
        procs = [s.proc for s in self.slots if s.proc is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        end = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(timeout=max(end - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for slot in self.slots:
            slot.proc = None

    def outputs(self) -> list[Path]:
        return [p for s in self.slots for p in s.outputs]

"""``durably inspect locks``, run as a real subprocess against runs that a worker in the
test process holds in a lock."""

from __future__ import annotations

import json
from pathlib import Path

import durably
from durably import Workflows, start
from tests.cli.test_streams_hooks import CliGo, cells
from tests.cli.test_streams_hooks import durably as run_cli
from tests.runtime.test_locks import until


async def test_inspect_locks_lists_holders_then_waiters(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    wf = Workflows(world=url)

    @wf.workflow
    async def hold(name: str) -> str:
        async with durably.lock("printer"), CliGo.wait(token=f"go:{name}") as hook:
            await hook
        return name

    async with wf:
        a = await start(hold, "a")
        b = await start(hold, "b")

        async def queued() -> bool:
            return (await a.waiting()).kind == "hook" and (await b.waiting()).kind == "lock"

        await until(queued, "a to hold the printer and b to wait")
        code, out, err = await run_cli("inspect", "locks", "--world", url, cwd=tmp_path)
        assert code == 0, err
        rows = [cells(line) for line in out.splitlines() if "printer" in line]
        assert [r[:4] for r in rows] == [
            ["printer", "1/1", "holding", a.run_id],
            ["printer", "1/1", "waiting", "#1"],
        ]
        assert b.run_id in out
        code, out, err = await run_cli("inspect", "locks", "--json", "--world", url, cwd=tmp_path)
        assert code == 0, err
        listed = json.loads(out)
        assert [(e["run_id"], e["state"]) for e in listed] == [
            (a.run_id, "holding"),
            (b.run_id, "waiting"),
        ]
        await CliGo(more=0).resume("go:a")
        await until(lambda: _waits_hook(b), "b to get the printer")
        await CliGo(more=0).resume("go:b")
        assert [await r.return_value(timeout=60) for r in (a, b)] == ["a", "b"]
        code, out, _ = await run_cli("inspect", "locks", "--world", url, cwd=tmp_path)
        assert "no lock is held" in out


async def _waits_hook(run: durably.Run) -> bool:
    return (await run.waiting()).kind == "hook"

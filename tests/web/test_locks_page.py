"""The dashboard's locks page (``/locks``): holders, then waiters in order."""

from __future__ import annotations

from pathlib import Path

import httpx

import durably
from durably import Workflows, start
from durably.web import create_app
from tests.cli.test_streams_hooks import CliGo
from tests.runtime.test_locks import until


async def test_locks_page_shows_holders_and_waiters(tmp_path: Path) -> None:
    wf = Workflows(world=f"sqlite:///{tmp_path / 'web.db'}")

    @wf.workflow
    async def hold(name: str) -> str:
        async with durably.lock("printer"), CliGo.wait(token=f"go:{name}") as hook:
            await hook
        return name

    @wf.workflow(concurrency=1)
    async def solo(name: str) -> str:
        async with CliGo.wait(token=f"solo:{name}") as hook:
            await hook
        return name

    async with wf:
        a, b = await start(hold, "a"), await start(hold, "b")
        s1, s2 = await start(solo, "1"), await start(solo, "2")

        async def queued() -> bool:
            kinds = [(await r.waiting()).kind for r in (a, b, s1, s2)]
            return kinds == ["hook", "lock", "hook", "concurrency"]

        await until(queued, "the runs to hold and wait")
        app = create_app(wf)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            page = (await client.get("/locks")).text
            assert "printer" in page and "1/1 held, 1 waiting" in page
            printer = page[page.index(">printer<") :]
            assert printer.index(a.run_id) < printer.index("waiting #1") < printer.index(b.run_id)
            assert "concurrency:default:solo" in page and s2.run_id in page
            one = (await client.get("/locks", params={"key": "printer"})).text
            assert a.run_id in one and s1.run_id not in one
        for token in ("go:a", "solo:1"):
            await CliGo(more=0).resume(token)
        await until(lambda: _kind(b, "hook"), "b to get the printer")
        await until(lambda: _kind(s2, "hook"), "s2 to start")
        for token in ("go:b", "solo:2"):
            await CliGo(more=0).resume(token)
        assert [await r.return_value(timeout=60) for r in (a, b, s1, s2)] == ["a", "b", "1", "2"]


async def _kind(run: durably.Run, kind: str) -> bool:
    return (await run.waiting()).kind == kind

"""The dashboard's /schedules page: each schedule's next tick and last run, and the
rate limiters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx

from durably import Workflows, start
from durably.web import create_app


async def test_the_schedules_page_shows_schedules_and_limiters(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    async with Workflows(world=url, encryption_key=False) as wf:

        @wf.workflow(name="nightly_report", schedule="0 3 * * *", timezone="Europe/Paris")
        async def nightly_report(tick: datetime) -> None: ...

        @wf.step(rate_limit="openai:60/min")
        async def ask() -> int:
            return 1

        @wf.workflow
        async def agent() -> int:
            return await ask()

        await wf.open()
        assert wf.worker is not None
        await wf.worker.schedules.run_once()
        assert await (await start(agent)).return_value() == 1

        app = create_app(world=url)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            page = await client.get("/schedules")
            home = await client.get("/runs")
    assert page.status_code == 200
    assert "nightly_report" in page.text and "0 3 * * *" in page.text
    assert "Europe/Paris" in page.text and "openai" in page.text
    assert 'href="/schedules"' in home.text  # in the navigation

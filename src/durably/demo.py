"""The workflow ``durably demo`` runs: API.md's create_site, three steps."""

from __future__ import annotations

from typing import Any

from . import get_step_metadata
from .registry import Workflows


def make_registry(world: str | None = None) -> Workflows:
    """A registry with the demo's workflow and steps."""
    wf = Workflows(world=world, namespace="demo")

    @wf.step
    async def fetch_user_profile(user_id: str) -> dict[str, Any]:
        return {"user_id": user_id, "name": "Ada", "plan": "pro"}

    @wf.step(max_retries=5, retry_after="100ms")
    async def provision_site(profile: dict[str, Any]) -> str:
        # A flaky dependency: the first attempt fails, the retry succeeds.
        if get_step_metadata().attempt == 1:
            raise ConnectionError("DNS provider timed out")
        return f"https://{profile['name'].lower()}.example.com"

    @wf.step
    async def send_welcome_email(user_id: str, url: str) -> bool:
        return True

    @wf.workflow
    async def create_site(user_id: str) -> dict[str, Any]:
        profile = await fetch_user_profile(user_id)
        url = await provision_site(profile)
        await send_welcome_email(user_id, url)
        return {"user_id": user_id, "url": url}

    return wf


async def run_demo(world: str | None = None) -> dict[str, Any]:
    """Start the demo run, wait for it, and say what happened."""
    wf = make_registry(world)
    async with wf:
        run = await wf.start("create_site", "u1")
        result = await run.return_value(timeout=60)
        return {
            "world": wf.world_url,
            "run_id": run.run_id,
            "status": await run.status(),
            "result": result,
        }

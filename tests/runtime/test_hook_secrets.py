"""Hook tokens are secrets: the world stores a keyed digest of each token and its
metadata sealed, so reading the database is not enough to resume a hook."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import durably
from durably import BaseHook, HookConflictError, HookNotFoundError, Workflows, start
from durably.events import EventType, NewEvent
from durably.runtime.instance import RunInstance
from tests.support import live_hook_token

TOKEN = "refund:order-7f3a9c"
SECRET = "meta-secret-4d2e8b"


@dataclass
class SecretApproval(BaseHook):
    approved: bool


async def _stored_text(wf: Workflows, run_id: str) -> str:
    """Everything the world stores about the run and its hooks, as the world holds it
    (below the encryption layer), plus the raw bytes of an SQLite database."""
    sealed = await wf.open()
    inner: Any = getattr(sealed, "inner", sealed)
    parts: list[str] = []
    for ev in await inner.read_events(run_id):
        parts.append(json.dumps(ev.data))
        parts.append(repr(ev.payload))
    for hook in await inner.list_hooks(limit=100):
        parts.append(json.dumps(hook.to_json()))
    parts.append(json.dumps([s.to_json() for s in await inner.list_steps(run_id)]))
    if wf.world_url.startswith("sqlite:///"):
        db = Path(wf.world_url.removeprefix("sqlite:///"))
        for path in (db, Path(f"{db}-wal")):
            if path.exists():
                parts.append(repr(path.read_bytes()))
    return "\n".join(parts)


async def test_tokens_and_metadata_are_not_stored_in_clear(wf: Workflows) -> None:
    @wf.workflow
    async def refund() -> bool:
        async with SecretApproval.wait(token=TOKEN, metadata={"pin": SECRET}) as hook:
            first = await hook
            second = await hook
            return first.approved and second.approved

    @wf.workflow
    async def intruder() -> str:
        try:
            async with SecretApproval.wait(token=TOKEN):
                return "entered"
        except HookConflictError as e:
            return str(e)

    run = await start(refund)
    assert await live_hook_token(wf, run.run_id) == TOKEN
    info = await durably.get_hook_by_token(TOKEN)
    assert (info.run_id, info.token, info.metadata) == (run.run_id, TOKEN, {"pin": SECRET})

    # Conflicts are still found (on the digest), and named with the token.
    other = await start(intruder)
    assert f"hook token {TOKEN!r} is already held" in await other.return_value(timeout=30)

    await SecretApproval(approved=True).resume(TOKEN)
    stored = await _stored_text(wf, run.run_id)
    assert TOKEN not in stored and SECRET not in stored
    assert TOKEN.encode().hex() not in stored

    await SecretApproval(approved=True).resume(TOKEN)
    assert await run.return_value(timeout=30) is True
    with pytest.raises(HookNotFoundError):
        await SecretApproval(approved=True).resume(TOKEN)  # disposed with the block
    stored = await _stored_text(wf, run.run_id)
    assert TOKEN not in stored and SECRET not in stored


async def test_a_digest_read_from_the_database_does_not_resume(wf: Workflows) -> None:
    @wf.workflow
    async def waits() -> bool:
        return (await SecretApproval.wait(token=TOKEN)).approved

    run = await start(waits)
    await live_hook_token(wf, run.run_id)
    [indexed] = await (await wf.open()).list_hooks(run_id=run.run_id)
    assert indexed.token != TOKEN
    with pytest.raises(HookNotFoundError):
        await SecretApproval(approved=True).resume(indexed.token)
    with pytest.raises(HookNotFoundError):
        await durably.resume_hook(indexed.token, {"approved": True})
    await run.cancel()


def _legacy_call_hook(
    self: RunInstance,
    sink: Any,
    hook_type: str,
    token: str | None,
    metadata: dict[str, Any],
    **_: Any,
) -> tuple[int, str]:
    """How durably recorded a hook before token digests: token and metadata in clear."""
    n = self._next()
    if token is None:
        token = self._recorded_tokens.get(n) or "generated-legacy-token"
    name = hook_type.rsplit(":", 1)[-1]
    data = {"name": name, "type": hook_type, "token": token, "metadata": metadata}
    self._issued[("hook_created", n)] = NewEvent(EventType.HOOK_CREATED, n, data)
    self._hooks[n] = sink
    return n, token


def _legacy_dispose_hook(self: RunInstance, call: int, token: str) -> None:
    self._issued[("hook_disposed", call)] = NewEvent(
        EventType.HOOK_DISPOSED, call, {"token": token}
    )


async def test_a_live_hook_of_a_log_written_before_digests_is_still_resumable(
    make_wf: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def register(wf: Workflows) -> None:
        @wf.workflow
        async def legacy() -> str:
            async with SecretApproval.wait(token="old-token", metadata={"m": 1}) as hook:
                first = await hook
                await durably.sleep(0.01)
                second = await hook
                return f"{first.approved} {second.approved}"

    old = make_wf()
    register(old)
    with monkeypatch.context() as m:
        m.setattr(RunInstance, "call_hook", _legacy_call_hook)
        m.setattr(RunInstance, "dispose_hook", _legacy_dispose_hook)
        run = await start(old.workflows["legacy"])
        world = await old.open()
        for _ in range(3000):
            if await world.list_hooks(run_id=run.run_id):
                break
            await asyncio.sleep(0.01)
        await old.aclose()

    new = make_wf()
    register(new)
    info = await durably.get_hook_by_token("old-token", registry=new)
    assert (info.run_id, info.metadata) == (run.run_id, {"m": 1})
    await SecretApproval(approved=True).resume("old-token", registry=new)
    await SecretApproval(approved=False).resume("old-token", registry=new)
    resumed = await new.get_run(run.run_id)
    assert await resumed.return_value(timeout=30) == "True False"
    with pytest.raises(HookNotFoundError):  # disposed under its raw token
        await SecretApproval(approved=True).resume("old-token", registry=new)

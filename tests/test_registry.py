"""Bad input to the registry gets a clear error that names the problem and the fix."""

from __future__ import annotations

import pytest

from durably import ConfigurationError, Workflows, WorldError, start


def test_unknown_world_scheme_names_the_known_ones() -> None:
    with pytest.raises(WorldError) as info:
        Workflows(world="mongo://localhost/db")
    msg = str(info.value)
    assert "mongo" in msg and "sqlite://" in msg and "memory://" in msg


def test_world_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLY_WORLD", "memory://from-env")
    assert Workflows().world_url == "memory://from-env"
    assert Workflows(world="memory://arg").world_url == "memory://arg"


def test_embedded_worker_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Workflows(world="memory://").embedded_worker is True
    monkeypatch.setenv("DURABLY_WORKER", "0")
    assert Workflows(world="memory://").embedded_worker is False
    assert Workflows(world="memory://", worker=True).embedded_worker is True  # argument first
    monkeypatch.setenv("DURABLY_WORKER", "maybe")
    with pytest.raises(ConfigurationError, match=r"DURABLY_WORKER='maybe'.*1.*0"):
        Workflows(world="memory://")


def test_default_world_is_embedded_sqlite() -> None:
    assert Workflows().world_url == "sqlite:///.durably/durably.db"


def test_name_registered_twice() -> None:
    wf = Workflows(world="memory://")

    @wf.workflow
    async def dup() -> None: ...

    with pytest.raises(ConfigurationError, match=r"already registered.*name="):

        @wf.step(name="dup")
        async def other() -> None: ...


def test_workflow_must_be_async() -> None:
    wf = Workflows(world="memory://")
    with pytest.raises(ConfigurationError, match="async def"):

        @wf.workflow
        def sync_flow() -> None: ...


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": "3"}, "max_retries"),
        ({"timeout": "soon"}, "soon"),
        ({"retry_after": "-5s"}, "-5s"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_step_options(kwargs: dict[str, object], match: str) -> None:
    wf = Workflows(world="memory://")
    with pytest.raises(ConfigurationError, match=match):
        wf.step(**kwargs)  # type: ignore[call-overload]


def test_step_must_be_a_function() -> None:
    wf = Workflows(world="memory://")
    with pytest.raises(ConfigurationError, match="function"):
        wf.step(int)


async def test_start_rejects_non_workflows() -> None:
    async def not_registered() -> None: ...

    with pytest.raises(TypeError, match=r"@wf\.workflow"):
        await start(not_registered)  # type: ignore[arg-type]


async def test_async_context_manager_closes() -> None:
    wf = Workflows(world="memory://")

    @wf.workflow
    async def one() -> int:
        return 1

    async with wf:
        run = await start(one)
        assert await run.return_value(timeout=10) == 1
        assert wf.worker is not None and wf.worker.running
    assert wf.worker is None

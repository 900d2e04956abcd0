"""Hook payload types defined in the module run as ``__main__`` can be resumed by any
process that imports that module (the HTTP app, a worker), not only by the script.

A script run as ``python -m pkg.mod`` records its types under ``pkg.mod``; a plain
``python app.py`` records ``__main__:Type``, resolved by the qualified name when the
resuming process defines exactly one hook type of that name.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from durably import BaseHook, ConfigurationError
from durably.hooks import _not_defined, _type_key, hook_type_named, resume_webhook

APP = """
import asyncio, os, sys
from dataclasses import dataclass
from durably import BaseHook, Workflows, start

wf = Workflows(world=os.environ["DURABLY_WORLD"])


@dataclass
class ScriptApproval(BaseHook):
    approved: bool


@wf.workflow
async def review() -> bool:
    async with ScriptApproval.wait(webhook=True) as hook:
        return (await hook).approved


async def main() -> None:
    run = await start(review)
    world = await wf.open()
    while not await world.list_hooks(run_id=run.run_id):
        await asyncio.sleep(0.02)
    print(run.run_id, flush=True)
    await wf.aclose()


if __name__ == "__main__":
    asyncio.run(main())
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, dict[str, str]]]:
    (tmp_path / "hookapp.py").write_text(APP)
    monkeypatch.setenv("DURABLY_WORLD", f"sqlite:///{tmp_path / 'hooks.db'}")
    env = {
        "PATH": "/usr/bin:/bin",
        "DURABLY_WORLD": f"sqlite:///{tmp_path / 'hooks.db'}",
        "PYTHONPATH": str(tmp_path),
    }
    yield tmp_path, env
    sys.modules.pop("hookapp", None)


async def _started_then_resumed(tmp_path: Path, env: dict[str, str], argv: list[str]) -> str:
    """Start a run from the script (``argv``), then resume its webhook from this
    process, which imports the script's module as the HTTP app would; the run's
    recorded payload type is returned."""
    proc = subprocess.run(
        [sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr.decode()
    run_id = proc.stdout.decode().strip()
    spec = importlib.util.spec_from_file_location("hookapp", tmp_path / "hookapp.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["hookapp"] = mod
    spec.loader.exec_module(mod)
    wf = mod.wf
    try:
        world = await wf.open()
        (hook,) = await world.list_hooks(run_id=run_id)
        token = (await (await wf.control()).reveal_hook(hook)).token
        await resume_webhook(token, {"approved": True}, registry=wf)
        run = await wf.get_run(run_id)
        assert await run.return_value(timeout=60) is True
        return str(hook.hook_type)
    finally:
        await wf.aclose()


async def test_a_type_from_a_script_run_as_a_module_is_recorded_by_its_import_name(
    app: tuple[Path, dict[str, str]],
) -> None:
    recorded = await _started_then_resumed(*app, ["-m", "hookapp"])
    assert recorded == "hookapp:ScriptApproval"


async def test_a_type_from_a_plain_script_is_resumed_where_the_script_is_imported(
    app: tuple[Path, dict[str, str]],
) -> None:
    recorded = await _started_then_resumed(*app, ["hookapp.py"])
    assert recorded == "__main__:ScriptApproval"


def test_main_types_resolve_by_qualified_name_only_when_unambiguous() -> None:
    @dataclass
    class OnlyOnce(BaseHook):
        ok: bool

    qual = OnlyOnce.__qualname__
    assert hook_type_named(f"__main__:{qual}") is OnlyOnce
    # A module name that is not __main__ is never guessed.
    assert hook_type_named(f"elsewhere:{qual}") is None

    # Two types of that name: ambiguous, so not resolved, and the error says what to do.
    twin = types.new_class(qual, (BaseHook,), exec_body=lambda ns: ns.update(__module__="x"))
    twin.__qualname__ = qual
    BaseHook._types[f"x:{qual}"] = twin
    try:
        assert hook_type_named(f"__main__:{qual}") is None
    finally:
        del BaseHook._types[f"x:{qual}"]
    msg = str(_not_defined("tok", f"__main__:{qual}"))
    assert "importable module" in msg and qual in msg
    assert isinstance(_not_defined("tok", "a:B"), ConfigurationError)


def test_main_with_a_spec_records_the_import_name(monkeypatch: pytest.MonkeyPatch) -> None:
    main = types.ModuleType("__main__")
    main.__spec__ = importlib.util.spec_from_loader("pkg.app", loader=None)
    monkeypatch.setitem(sys.modules, "__main__", main)
    cls = type("Later", (), {"__module__": "__main__", "__qualname__": "Later"})
    assert _type_key(cls) == "pkg.app:Later"
    main.__spec__ = None
    assert _type_key(cls) == "__main__:Later"

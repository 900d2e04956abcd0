"""``durably inspect streams`` and ``durably inspect hooks``, run as real subprocesses
against a run that a worker in the test process executes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from durably import (
    BaseHook,
    RetryableError,
    Workflows,
    Writable,
    get_step_metadata,
    get_writable,
    start,
)
from durably.worlds import open_world


@dataclass
class CliGo(BaseHook):
    more: int


async def durably(*args: str, cwd: Path) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DURABLY_WORLD"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "durably",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def cells(line: str) -> list[str]:
    """The words of a table row, without the column rules."""
    return [w for w in line.split() if w not in ("┃", "│")]


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_inspect_streams_and_hooks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    wf = Workflows(world=url)
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

    @wf.step
    async def say(out: Writable, words: list[str]) -> None:
        for word in words:
            await out.write(word)

    @wf.step
    async def finish(out: Writable, n: int) -> None:
        for i in range(n):
            await out.write({"n": i})
        await out.write(when)
        await out.close()

    @wf.workflow
    async def talk() -> str:
        out = get_writable(namespace="tokens")
        await say(out, ["a", "b", "c"])
        async with CliGo.wait(token="cli-go", metadata={"ticket": 7}) as hook:
            go = await hook
        await finish(out, go.more)
        return "done"

    try:
        run = await start(talk)
        world = await wf.open()
        for _ in range(3000):
            if await world.list_hooks(run_id=run.run_id):
                break
            await asyncio.sleep(0.01)
        rid = run.run_id

        code, out, err = await durably(
            "inspect", "streams", rid, "--json", "--world", url, cwd=tmp_path
        )
        assert code == 0, err
        [info] = json.loads(out)
        assert (info["namespace"], info["count"], info["closed"]) == ("tokens", 3, False)

        code, out, err = await durably("inspect", "streams", rid, "--world", url, cwd=tmp_path)
        assert code == 0, err
        header, _, row = out.splitlines()[:3]
        assert cells(header) == ["namespace", "chunks", "closed", "updated"]
        assert cells(row)[:3] == ["tokens", "3", "no"]

        # Payloads are encrypted: plaintext needs --decrypt, which is audited in the run.
        code, out, err = await durably(
            "inspect", "streams", rid, "--namespace", "tokens", "--from", "1", "--world", url,
            cwd=tmp_path,
        )  # fmt: skip
        assert code == 0, err
        assert [(c["index"], c["value"]) for c in json_lines(out)] == [
            (1, "<encrypted>"),
            (2, "<encrypted>"),
        ]
        assert not [e for e in await run.events() if e.type.value == "data_decrypted"]
        code, out, err = await durably(
            "inspect", "streams", rid, "--namespace", "tokens", "--from", "1", "--decrypt",
            "--world", url, cwd=tmp_path,
        )  # fmt: skip
        assert code == 0, err
        assert [(c["index"], c["value"]) for c in json_lines(out)] == [(1, "b"), (2, "c")]
        [audit] = [e for e in await run.events() if e.type.value == "data_decrypted"]
        assert audit.data["via"] == "cli" and "'tokens' from 1" in audit.data["what"]

        code, out, err = await durably("inspect", "hooks", "--json", "--world", url, cwd=tmp_path)
        assert code == 0, err
        [hook] = json.loads(out)
        # The token is a secret: the world holds a digest of it, the metadata sealed.
        assert hook["token"].startswith("hd1:") and hook["run_id"] == rid
        assert hook["type"].endswith(":CliGo") and hook["metadata"] == {}
        assert hook["created_at"] > 0
        assert "cli-go" not in out and "ticket" not in out

        code, out, err = await durably(
            "inspect", "hooks", "--json", "--decrypt", "--world", url, cwd=tmp_path
        )
        assert code == 0, err
        [hook] = json.loads(out)
        assert hook["token"] == "cli-go" and hook["metadata"] == {"ticket": 7}
        assert [e for e in await run.events() if e.type.value == "data_decrypted"]

        code, out, err = await durably(
            "inspect", "hooks", "--run", rid, "--decrypt", "--world", url, cwd=tmp_path
        )
        assert code == 0, err
        assert cells(out.splitlines()[0]) == ["token", "run", "id", "type", "created", "metadata"]
        assert "cli-go" in out and "CliGo" in out and '{"ticket":7}' in out

        # --follow tails the stream from another process until it is closed.
        env = {k: v for k, v in os.environ.items() if k != "DURABLY_WORLD"}
        follower = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "durably", "inspect", "streams", rid,
            "--namespace", "tokens", "--follow", "--from", "2", "--decrypt", "--json",
            "--world", url,
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert follower.stdout is not None
        first = json.loads(await asyncio.wait_for(follower.stdout.readline(), 60))
        assert (first["index"], first["value"]) == (2, "c")

        await CliGo(more=3).resume("cli-go", registry=wf)
        assert await run.return_value(timeout=60) == "done"
        rest, err_bytes = await asyncio.wait_for(follower.communicate(), 60)
        assert follower.returncode == 0, err_bytes.decode()
        lines = json_lines(rest.decode())
        assert [c["index"] for c in lines] == [3, 4, 5, 6]
        assert [c["value"] for c in lines[:3]] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert lines[3]["value"] == {"$t": "datetime", "v": when.isoformat()}

        code, out, err = await durably(
            "inspect", "streams", rid, "--json", "--world", url, cwd=tmp_path
        )
        assert [(i["count"], i["closed"]) for i in json.loads(out)] == [(7, True)]

        code, out, err = await durably("inspect", "hooks", "--json", "--world", url, cwd=tmp_path)
        assert code == 0 and json.loads(out) == []
        code, out, err = await durably("inspect", "hooks", "--world", url, cwd=tmp_path)
        assert code == 0 and "no live hooks" in out
    finally:
        await wf.aclose()


async def test_inspect_streams_committed_and_from_the_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    wf = Workflows(world=url)

    @wf.step(max_retries=3)
    async def flaky_writer() -> None:
        attempt = get_step_metadata().attempt
        out = get_writable()
        for i in range(2 if attempt == 1 else 3):
            await out.write(f"k{i}")
        if attempt == 1:
            raise RetryableError("flaky", retry_after=0)

    @wf.workflow
    async def retried() -> None:
        await flaky_writer()

    try:
        run = await start(retried)
        await run.return_value(timeout=60)
        rid = run.run_id
        code, out, err = await durably(
            "inspect", "streams", rid, "--decrypt", "--json", "--world", url, cwd=tmp_path
        )
        assert code == 0, err
        lines = json_lines(out)
        assert [(c["value"], c["call"], c["attempt"]) for c in lines] == [
            ("k0", 0, 1), ("k1", 0, 1), ("k0", 0, 2), ("k1", 0, 2), ("k2", 0, 2),
        ]  # fmt: skip
        for follow in ([], ["--follow"]):
            code, out, err = await durably(
                "inspect", "streams", rid, "--committed", *follow, "--decrypt", "--world", url,
                cwd=tmp_path,
            )  # fmt: skip
            assert code == 0, err
            assert [(c["index"], c["value"], c["attempt"]) for c in json_lines(out)] == [
                (2, "k0", 2), (3, "k1", 2), (4, "k2", 2),
            ]  # fmt: skip
        for flag in ("--start-index", "--from"):
            code, out, err = await durably(
                "inspect", "streams", rid, flag, "-3", "--world", url, cwd=tmp_path
            )
            assert code == 0, err
            assert [c["index"] for c in json_lines(out)] == [2, 3, 4]
        code, out, err = await durably(
            "inspect", "streams", rid, "--start-index", "-9", "--world", url, cwd=tmp_path
        )
        assert code == 0, err
        assert [c["index"] for c in json_lines(out)] == [0, 1, 2, 3, 4]
    finally:
        await wf.aclose()


async def test_unknown_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    world = open_world(url)  # a database without that run (without one: "no database")
    await world.open()
    await world.close()
    for args in (
        ["inspect", "streams", "run_missing"],
        ["inspect", "streams", "run_missing", "--follow"],
        ["inspect", "hooks", "--run", "run_missing"],
    ):
        code, _, err = await durably(*args, "--world", url, cwd=tmp_path)
        assert code == 1
        assert "no run with id 'run_missing'" in err


async def test_run_without_streams(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    wf = Workflows(world=url)

    @wf.workflow
    async def quiet() -> int:
        return 1

    try:
        run = await start(quiet)
        assert await run.return_value(timeout=60) == 1
    finally:
        await wf.aclose()
    code, out, err = await durably("inspect", "streams", run.run_id, "--world", url, cwd=tmp_path)
    assert code == 0, err
    assert f"run {run.run_id} has no streams" in out
    code, out, err = await durably(
        "inspect", "streams", run.run_id, "--follow", "--json", "--world", url, cwd=tmp_path
    )
    # The run ended without opening its stream: nothing will come, and it says so.
    assert code == 1 and out == ""
    assert f"run {run.run_id} has no stream '(default)'; it has no streams" in err


async def test_decrypt_with_a_wrong_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    wf = Workflows(world=url)

    @wf.step
    async def one() -> None:
        out = get_writable()
        await out.write("secret")
        await out.close()

    @wf.workflow
    async def flow() -> None:
        await one()

    try:
        run = await start(flow)
        await run.return_value(timeout=60)
    finally:
        await wf.aclose()
    wrong = "kwrong:" + "A" * 43
    code, out, err = await durably(
        "inspect", "streams", run.run_id, "--decrypt", "--key", wrong, "--world", url,
        cwd=tmp_path,
    )  # fmt: skip
    assert code == 1, out
    assert "not in the key ring" in err and "secret" not in out

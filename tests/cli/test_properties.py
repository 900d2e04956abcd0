"""Properties of ``durably inspect``: any option value or run id is answered with output,
a usage error (exit 2) or a one-line ``error:`` (exit 1), never a traceback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result
from hypothesis import example, given
from hypothesis import strategies as st

import durably
from durably import Workflows, get_writable
from durably.cli import cli


async def _make_runs(url: str) -> list[str]:
    wf = Workflows(world=url)

    @wf.step
    async def shout(word: str) -> str:
        out = get_writable()
        await out.write(word)
        await out.close()
        return word.upper()

    @wf.workflow
    async def greet(word: str) -> str:
        await durably.set_attributes(word=word, kind="greeting")
        return await shout(word)

    try:
        runs = [await wf.start(greet, w) for w in ("hi", "ho")]
        for run in runs:
            await run.return_value(timeout=60)
        return [r.run_id for r in runs]
    finally:
        await wf.aclose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('cli-props') / 'w.db'}"
    yield url, asyncio.run(_make_runs(url))


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def _answered(result: Result) -> Result:
    """Output (exit 0), a usage error (exit 2) or ``error: ...`` (exit 1); no traceback."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"a traceback: {result.exception!r}") from result.exception
    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code == 2:
        assert "Usage:" in result.output and "Error:" in result.output, result.output
    if result.exit_code == 1:
        assert result.output.startswith("error: "), result.output
    assert "Traceback" not in result.output
    return result


texts = st.text(max_size=20)  # lone surrogates included: argv that is not UTF-8 reads so
numbers = st.integers().map(str) | texts


@given(
    limit=st.none() | numbers,
    status=st.none() | st.sampled_from(["completed", "running", "done", ""]) | texts,
    attrs=st.lists(
        st.sampled_from(["word=hi", "kind=greeting", "=", "word=", "noequals"]) | texts,
        max_size=3,
    ),
    namespace=st.none() | texts,
    workflow=st.none() | st.sampled_from(["greet"]) | texts,
)
@example(limit="0", status=None, attrs=[], namespace=None, workflow=None)
@example(limit="99999999999999999999", status=None, attrs=[], namespace=None, workflow=None)
@example(limit=None, status=None, attrs=["word=\udcff"], namespace=None, workflow=None)
@example(limit=None, status=None, attrs=['"a.b"=1', "$.x=1"], namespace=None, workflow=None)
@example(limit=None, status=None, attrs=[], namespace="\ud800", workflow="\x00")
def test_listing_runs_with_any_options(
    world: tuple[str, list[str]],
    limit: str | None,
    status: str | None,
    attrs: list[str],
    namespace: str | None,
    workflow: str | None,
) -> None:
    url, runs = world
    args = ["inspect", "runs", "--world", url, "--json"]
    for option, value in (("--limit", limit), ("--status", status)):
        if value is not None:
            args += [option, value]
    for option, value in (("--namespace", namespace), ("--workflow", workflow)):
        if value is not None:
            args += [option, value]
    for attr in attrs:
        args += ["--attr", attr]
    result = _answered(_invoke(*args))
    if result.exit_code == 0:
        listed = json.loads(result.output)
        assert {r["run_id"] for r in listed} <= set(runs)


@given(
    st.sampled_from(["run", "events", "streams"]),
    st.sampled_from(["known", "other"]),
    texts,
    st.none() | numbers,
)
@example("run", "other", "\x00", None)
@example("run", "other", "\udcff", None)  # `durably inspect run $'\xff'`
@example("events", "other", "\ud800", None)
@example("streams", "known", "", "-1")
@example("streams", "known", "", "99999999999999999999")  # was OverflowError from SQLite
def test_one_run_by_any_id(
    world: tuple[str, list[str]], command: str, which: str, run_id: str, start: str | None
) -> None:
    url, runs = world
    args = ["inspect", command, runs[0] if which == "known" else run_id, "--world", url]
    if command == "streams" and start is not None:
        args += ["--from", start]
    result = _answered(_invoke(*args))
    readable = start is None or (start.isascii() and start.isdigit() and int(start) < 2**63)
    if which == "known" and readable:
        assert result.exit_code == 0, result.output


@given(st.none() | texts, st.none() | texts, st.none() | numbers)
@example("\udcff", None, None)
@example(None, None, "0")
def test_listing_hooks_with_any_options(
    world: tuple[str, list[str]], run_id: str | None, namespace: str | None, limit: str | None
) -> None:
    url, _ = world
    args = ["inspect", "hooks", "--world", url]
    for option, value in (("--run", run_id), ("--namespace", namespace), ("--limit", limit)):
        if value is not None:
            args += [option, value]
    _answered(_invoke(*args))


def test_the_world_holds_the_runs(world: tuple[str, list[str]]) -> None:
    url, runs = world
    result = _answered(_invoke("inspect", "runs", "--world", url, "--json"))
    assert {r["run_id"] for r in json.loads(result.output)} == set(runs)

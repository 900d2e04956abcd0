"""Properties of the HTTP app: any body, path or query a client sends is answered with a
result or a 4xx JSON error, never a 500 (driven in process by Starlette's TestClient)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import durably.http
from durably import BaseHook, Limits, Workflows, get_writable
from tests.support import live_hook_token
from tests.worlds.postgres import support as pg

with warnings.catch_warnings():
    # Starlette's TestClient prefers httpx2 now; httpx (the dev dependency) still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@dataclass
class PropApproval(BaseHook):
    approved: bool
    by: str


@dataclass
class App:
    client: TestClient
    done_run: str  # a completed run with two closed streams
    token: str  # a live webhook of a waiting run


def _registry(url: str) -> Workflows:
    wf = Workflows(world=url, limits=Limits(max_payload_bytes=4096))

    @wf.step
    async def chat(n: int) -> int:
        for namespace in ("", "side"):
            out = get_writable(namespace=namespace)
            for i in range(n):
                await out.write({"i": i})
            await out.close()
        return n

    @wf.workflow
    async def talk(n: int = 3, label: str = "") -> int:
        return await chat(n)

    @wf.workflow
    async def approve() -> str:
        async with PropApproval.wait(webhook=True) as hook:
            return (await hook).by

    return wf


def _world(kind: str, request: pytest.FixtureRequest, tmp: Path) -> Iterator[App]:
    if kind == "postgres":
        pg.require_postgres()
        url = pg.fresh_url()
        request.addfinalizer(lambda: pg.drop_schema(url))
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DURABLY_ENCRYPTION_KEY", pg.TEST_KEY)
            yield from _serve(url)
        return
    url = f"sqlite:///{tmp / 'w.db'}" if kind == "sqlite" else f"memory://{tmp.name}"
    yield from _serve(url)


@pytest.fixture(scope="module", params=["memory", "sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """On every world: ids, tokens and stream positions reach the world."""
    yield from _world(request.param, request, tmp_path_factory.mktemp("http-props"))


@pytest.fixture(scope="module")
def memory_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[App]:
    """Bodies are read and checked before any world is involved: one world is enough."""
    yield from _world("memory", request, tmp_path_factory.mktemp("http-props"))


def _serve(url: str) -> Iterator[App]:
    wf = _registry(url)
    with TestClient(durably.http.app(wf)) as client:
        done = client.post("/runs/talk", json={"n": 3}).json()["run_id"]
        for _ in range(3000):
            if client.get(f"/runs/{done}").json()["status"] == "completed":
                break
        waiting = client.post("/runs/approve").json()["run_id"]
        assert client.portal is not None
        token = client.portal.call(live_hook_token, wf, waiting)
        yield App(client, done, token)


def _answered(resp: Any, *ok: int) -> Any:
    """A status the endpoint documents; any error is ``{"error", "detail"}`` JSON."""
    assert resp.status_code != 500, resp.text
    if resp.status_code >= 400:
        assert 400 <= resp.status_code < 500, resp.text
        body = resp.json()
        assert {"error", "detail"} <= set(body) and isinstance(body["error"], str), body
    else:
        assert resp.status_code in ok, resp.text
    return resp


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=15,
)
# Bodies: JSON of every kind (NaN included, as Python writes it), keyword arguments right
# and wrong, raw bytes, other encodings, deep nesting, huge numbers.
bodies = (
    json_values.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries(
        {}, optional={"n": json_values, "label": json_values, "zz": json_values}
    ).map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries(
        {}, optional={"approved": json_values, "by": json_values, "reason": json_values}
    ).map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=64)
    | json_values.map(lambda v: json.dumps(v).encode("utf-16"))
    | st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n)
    | st.integers(1, 6000).map(lambda n: b'{"n": ' + b"9" * n + b"}")
    | st.integers(4000, 6000).map(lambda n: b'{"label": "' + b"x" * n + b'"}')
)
texts = st.text(st.characters(codec="utf-8"), max_size=30)
header_texts = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


@given(st.sampled_from(["talk", "approve", "nope", "talk/x", "%00"]), bodies)
@example("talk", b'{"n": 1, "idempotency_key": "k"}')
@example("talk", b'{"n": NaN}')
def test_starting_a_run_with_any_body(memory_app: App, name: str, body: bytes) -> None:
    _answered(memory_app.client.post(f"/runs/{name}", content=body), 202)


@given(texts | st.integers().map(str), texts, header_texts | st.none())
@example("9" * 19, "", None)  # past SQLite's and Postgres's largest integer
@example("", "", "9" * 30)
@example("1_0", "", None)
@example("-1", "", None)
@example("0", "\x00", None)
def test_reading_a_stream_from_any_start_index(
    app: App, start: str, namespace: str, last_event_id: str | None
) -> None:
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    params = {"start_index": start, "namespace": namespace}
    resp = _answered(
        app.client.get(f"/runs/{app.done_run}/stream", params=params, headers=headers), 200
    )
    if resp.status_code == 200:
        assert resp.headers["content-type"].startswith("text/event-stream")


@given(texts)
@example("\x00")  # a 500 on Postgres (the server refuses a NUL even to look it up)
@example("../" + "x" * 300)
def test_reading_any_run_id(app: App, run_id: str) -> None:
    path = quote(run_id, safe="")
    for resp in (app.client.get(f"/runs/{path}"), app.client.get(f"/runs/{path}/stream")):
        _answered(resp, 200)


@given(bodies)
def test_cancelling_with_any_body(memory_app: App, body: bytes) -> None:
    # The run has ended: any well-formed request is answered "nothing to do".
    app = memory_app
    resp = _answered(app.client.post(f"/runs/{app.done_run}/cancel", content=body), 200)
    if resp.status_code == 200:
        assert resp.json()["cancel_requested"] is False


@given(bodies)
@example(b'{"approved": "notabool", "by": "x"}')
def test_a_webhook_with_any_body(memory_app: App, body: bytes) -> None:
    app = memory_app
    _answered(app.client.post(f"/hooks/{app.token}", content=body), 200)


@given(texts)
@example("\x00")  # a 500 on Postgres (the server refuses a NUL even to look it up)
@example("a/b/../c")
def test_a_webhook_with_any_token(app: App, token: str) -> None:
    _answered(app.client.post(f"/hooks/{quote(token, safe='/')}", json={}), 200)

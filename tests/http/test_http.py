"""The HTTP app under a real uvicorn server, on every world."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel

import durably.http
from durably import BaseHook, FatalError, Workflows, get_writable
from durably.worlds.base import RunFilter
from tests.support import live_hook_token

from .conftest import Event, read_events, serve


@dataclass
class HttpApproval(BaseHook):
    approved: bool
    by: str


class HttpNote(BaseHook, BaseModel):
    text: str


async def _wait_status(
    client: httpx.AsyncClient, base: str, run_id: str, statuses: set[str]
) -> dict[str, Any]:
    for _ in range(3000):
        body: dict[str, Any] = (await client.get(f"{base}/runs/{run_id}")).json()
        if body["status"] in statuses:
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never reached {statuses}: {body}")


async def _live_hook(wf: Workflows, run_id: str) -> str:
    return await live_hook_token(wf, run_id)


async def test_start_read_and_idempotency(registry: Workflows, client: httpx.AsyncClient) -> None:
    @registry.step
    async def greet(name: str, punctuation: str) -> str:
        await durably.set_attributes(greeted=name)
        return f"hello {name}{punctuation}"

    @registry.workflow
    async def hello(name: str, punctuation: str = "!") -> dict[str, Any]:
        return {"greeting": await greet(name, punctuation), "at": durably.now()}

    async with serve(durably.http.app(registry)) as base:
        resp = await client.post(f"{base}/runs/hello", json={"name": "ada"})
        assert resp.status_code == 202, resp.text  # accepted: recorded, not done
        run_id = resp.json()["run_id"]
        assert resp.json()["workflow"] == "hello"
        assert resp.headers["location"] == f"{base}/runs/{run_id}"

        body = await _wait_status(client, base, run_id, {"completed"})
        assert body["workflow"] == "hello" and body["run_id"] == run_id
        assert body["attributes"] == {"greeted": "ada"}
        assert body["created_at"] <= body["started_at"] <= body["completed_at"]
        # Not plain JSON (a datetime inside): the result comes in serde's tagged form.
        assert body["result"]["greeting"] == "hello ada!"
        assert body["result"]["at"]["$t"] == "datetime"
        assert "error" not in body

        keyed = [
            await client.post(
                f"{base}/runs/hello", json={"name": "bob"}, headers={"Idempotency-Key": "k1"}
            )
            for _ in range(2)
        ]
        assert [r.status_code for r in keyed] == [202, 202]
        assert keyed[0].json()["run_id"] == keyed[1].json()["run_id"] != run_id


async def test_plain_json_result(registry: Workflows, client: httpx.AsyncClient) -> None:
    @registry.workflow
    async def add(a: int, b: int) -> dict[str, int]:
        return {"sum": a + b}

    async with serve(durably.http.app(registry)) as base:
        run_id = (await client.post(f"{base}/runs/add", json={"a": 2, "b": 3})).json()["run_id"]
        body = await _wait_status(client, base, run_id, {"completed"})
        assert body["result"] == {"sum": 5}


async def test_start_with_bad_arguments(registry: Workflows, client: httpx.AsyncClient) -> None:
    @registry.workflow
    async def typed(count: int, label: str = "x") -> int:
        return count

    async with serve(durably.http.app(registry)) as base:
        cases: list[tuple[Any, str]] = [
            ({}, "missing a required argument: 'count'"),
            ({"count": 1, "colour": "red"}, "unexpected keyword argument 'colour'"),
            ({"count": "many"}, "valid integer"),
            ([1, 2], "JSON object of keyword arguments"),
        ]
        for body, message in cases:
            resp = await client.post(f"{base}/runs/typed", json=body)
            assert resp.status_code == 400, (body, resp.text)
            assert resp.json()["error"] == "invalid_arguments"
            assert message in resp.json()["detail"], resp.json()
        resp = await client.post(f"{base}/runs/typed", content=b"{not json")
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_json"

        resp = await client.post(f"{base}/runs/nothing_like_it", json={})
        assert resp.status_code == 404
        assert resp.json()["error"] == "workflow_not_found"
        assert "typed" in resp.json()["detail"]
        world = await registry.open()
        assert await world.list_runs(RunFilter()) == []


async def test_unknown_run_and_token_are_404(
    registry: Workflows, client: httpx.AsyncClient
) -> None:
    async with serve(durably.http.app(registry)) as base:
        for method, path in [
            ("GET", "/runs/run_missing"),
            ("GET", "/runs/run_missing/stream"),
            ("POST", "/runs/run_missing/cancel"),
        ]:
            resp = await client.request(method, f"{base}{path}")
            assert resp.status_code == 404, (path, resp.text)
            assert resp.json() == {
                "error": "run_not_found",
                "detail": "no run with id 'run_missing'",
            }
        resp = await client.post(f"{base}/hooks/no-such-token", json={"approved": True})
        assert resp.status_code == 404 and resp.json()["error"] == "hook_not_found"
        resp = await client.get(f"{base}/nowhere")
        assert resp.status_code == 404 and resp.json()["error"] == "not_found"
        resp = await client.delete(f"{base}/runs/run_missing")
        assert resp.status_code == 405 and resp.json()["error"] == "method_not_allowed"
        assert "POST" in resp.headers["allow"]


async def test_failed_run_reports_its_error(registry: Workflows, client: httpx.AsyncClient) -> None:
    @registry.workflow
    async def doomed() -> None:
        raise FatalError("card declined")

    async with serve(durably.http.app(registry)) as base:
        run_id = (await client.post(f"{base}/runs/doomed")).json()["run_id"]
        body = await _wait_status(client, base, run_id, {"failed"})
        assert body["error"] == {"type": "FatalError", "message": "card declined"}
        assert "result" not in body


def _producer(registry: Workflows, gate: asyncio.Event, n: int, first: int) -> None:
    @registry.step
    async def produce() -> int:
        out = get_writable()
        side = get_writable(namespace="side")
        for i in range(n):
            if i == first:
                await gate.wait()
            await out.write({"i": i, "text": f"token {i}"})
        await side.write("only chunk")
        await side.close()
        await out.close()
        return n

    @registry.workflow
    async def stream_tokens() -> int:
        return int(await produce())


def _indexes(events: list[Event]) -> list[int]:
    return [int(e.id) for e in events if e.event == "message" and e.id is not None]


async def test_sse_dropped_in_the_middle_resumes_exactly(
    registry: Workflows, client: httpx.AsyncClient
) -> None:
    gate = asyncio.Event()
    _producer(registry, gate, n=40, first=12)
    async with serve(durably.http.app(registry)) as base:
        run_id = (await client.post(f"{base}/runs/stream_tokens")).json()["run_id"]
        url = f"{base}/runs/{run_id}/stream"

        # The client drops after 8 events, while the stream is still open.
        first = await read_events(client, url, stop=lambda evs: len(evs) == 8)
        assert _indexes(first) == list(range(8))
        assert [e.json() for e in first] == [{"i": i, "text": f"token {i}"} for i in range(8)]

        gate.set()
        # A browser reconnects to the same URL with the last id it saw.
        rest = await read_events(client, url, headers={"Last-Event-ID": first[-1].id or ""})
        assert rest[-1].event == "end" and rest[-1].id is None
        got = first + rest[:-1]
        assert _indexes(got) == list(range(40))  # no duplicate, no gap, in order
        assert [e.json()["i"] for e in got] == list(range(40))

        # start_index, and Last-Event-ID taking precedence over it.
        tail = await read_events(client, f"{url}?start_index=37")
        assert _indexes(tail) == [37, 38, 39] and tail[-1].event == "end"
        again = await read_events(client, f"{url}?start_index=2", headers={"Last-Event-ID": "38"})
        assert _indexes(again) == [39]
        past_end = await read_events(client, f"{url}?start_index=40")
        assert [e.event for e in past_end] == ["end"]

        side = await read_events(client, f"{url}?namespace=side")
        assert [(e.id, e.json()) for e in side[:-1]] == [("0", "only chunk")]

        body = await _wait_status(client, base, run_id, {"completed"})
        assert {s["namespace"]: (s["count"], s["closed"]) for s in body["streams"]} == {
            "": (40, True),
            "side": (1, True),
        }

        for bad in ("?start_index=x", "?start_index=1.5", "?committed=maybe"):
            resp = await client.get(url + bad)
            assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
        resp = await client.get(url, headers={"Last-Event-ID": "abc"})
        assert resp.status_code == 400


async def test_sse_negative_start_index_and_committed_chunks(
    registry: Workflows, client: httpx.AsyncClient
) -> None:
    @registry.step(max_retries=3)
    async def flaky_writer() -> None:
        attempt = durably.get_step_metadata().attempt
        out = get_writable()
        for i in range(2 if attempt == 1 else 3):
            await out.write(f"k{i}")
        if attempt == 1:
            raise durably.RetryableError("flaky", retry_after=0)

    @registry.workflow
    async def retried() -> None:
        await flaky_writer()

    async with serve(durably.http.app(registry)) as base:
        run_id = (await client.post(f"{base}/runs/retried")).json()["run_id"]
        await _wait_status(client, base, run_id, {"completed"})
        url = f"{base}/runs/{run_id}/stream"
        live = await read_events(client, url)
        assert [e.json() for e in live[:-1]] == ["k0", "k1", "k0", "k1", "k2"]
        committed = await read_events(client, f"{url}?committed=true")
        assert [(e.id, e.json()) for e in committed[:-1]] == [("2", "k0"), ("3", "k1"), ("4", "k2")]
        assert committed[-1].event == "end"
        # A reconnecting committed reader gets exactly the rest.
        rest = await read_events(client, f"{url}?committed=1", headers={"Last-Event-ID": "3"})
        assert [(e.id, e.json()) for e in rest[:-1]] == [("4", "k2")]
        # A negative start_index counts from the end of the chunks written so far.
        tail = await read_events(client, f"{url}?start_index=-3")
        assert _indexes(tail) == [2, 3, 4]
        assert _indexes(await read_events(client, f"{url}?start_index=-1")) == [4]
        assert _indexes(await read_events(client, f"{url}?start_index=-99")) == [0, 1, 2, 3, 4]


async def test_sse_reader_waiting_before_any_chunk(
    registry: Workflows, client: httpx.AsyncClient
) -> None:
    gate = asyncio.Event()
    _producer(registry, gate, n=3, first=0)
    async with serve(durably.http.app(registry, heartbeat=0.05)) as base:
        run_id = (await client.post(f"{base}/runs/stream_tokens")).json()["run_id"]
        comments: list[str] = []
        reader = asyncio.create_task(
            read_events(client, f"{base}/runs/{run_id}/stream", comments=comments)
        )
        await asyncio.sleep(0.3)
        assert not reader.done()
        assert ": keep-alive" in comments  # an idle stream keeps its connection warm
        gate.set()
        events = await asyncio.wait_for(reader, 30)
        assert _indexes(events) == [0, 1, 2] and events[-1].event == "end"


async def test_sse_data_of_values_that_are_not_json(
    registry: Workflows, client: httpx.AsyncClient
) -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    @registry.step
    async def odd_values() -> None:
        out = get_writable()
        for value in (when, b"\x00\x01", (1, 2), 1.5, None):
            await out.write(value)
        await out.close()

    @registry.workflow
    async def odd() -> None:
        await odd_values()

    async with serve(durably.http.app(registry)) as base:
        run_id = (await client.post(f"{base}/runs/odd")).json()["run_id"]
        events = await read_events(client, f"{base}/runs/{run_id}/stream")
        data = [e.json() for e in events if e.event == "message"]
        assert data[0] == {"$t": "datetime", "v": when.isoformat()}
        assert data[1] == {"$t": "bytes", "v": "AAE="}
        assert data[2:] == [[1, 2], 1.5, None]


async def test_webhook_resumes_a_hook(registry: Workflows, client: httpx.AsyncClient) -> None:
    @registry.workflow
    async def approve(order: str) -> str:
        async with HttpApproval.wait(webhook=True, metadata={"order": order}) as hook:
            answer = await hook
        return f"{answer.approved} by {answer.by}"

    async with serve(durably.http.app(registry)) as base:
        run_id = (await client.post(f"{base}/runs/approve", json={"order": "o1"})).json()["run_id"]
        token = await _live_hook(registry, run_id)
        assert len(token) >= 30  # a webhook's token is generated
        run = await registry.get_run(run_id)
        before = len(await run.events())

        for body in ({"approved": "perhaps", "by": "ada"}, {"approved": True}, [1]):
            resp = await client.post(f"{base}/hooks/{token}", json=body)
            assert resp.status_code == 400, resp.text
            assert resp.json()["error"] == "invalid_payload"
            assert "HttpApproval" in resp.json()["detail"]
        resp = await client.post(f"{base}/hooks/{token}", content=b"{")
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_json"
        assert len(await run.events()) == before  # nothing was recorded
        assert (await client.get(f"{base}/runs/{run_id}")).json()["status"] == "running"

        resp = await client.post(f"{base}/hooks/{token}", json={"approved": True, "by": "ada"})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"run_id": run_id, "token": token}
        body = await _wait_status(client, base, run_id, {"completed"})
        assert body["result"] == "True by ada"

        resp = await client.post(f"{base}/hooks/{token}", json={"approved": True, "by": "x"})
        assert resp.status_code == 404  # disposed when the block ended


async def test_webhook_with_a_pydantic_payload_and_many_resumes(
    registry: Workflows, client: httpx.AsyncClient
) -> None:
    @registry.workflow
    async def chat() -> list[str]:
        lines: list[str] = []
        async with HttpNote.wait(webhook=True) as hook:
            async for note in hook:
                lines.append(note.text)
                if len(lines) == 3:
                    break
        return lines

    async with serve(durably.http.app(registry)) as base:
        run_id = (await client.post(f"{base}/runs/chat")).json()["run_id"]
        token = await _live_hook(registry, run_id)
        resp = await client.post(f"{base}/hooks/{token}", json={"txt": "typo"})
        assert resp.status_code == 400 and "text" in resp.json()["detail"]
        for text in ("a", "b", "c"):
            resp = await client.post(f"{base}/hooks/{token}", json={"text": text})
            assert resp.status_code == 200
        body = await _wait_status(client, base, run_id, {"completed"})
        assert body["result"] == ["a", "b", "c"]


async def test_cancel_a_waiting_run(registry: Workflows, client: httpx.AsyncClient) -> None:
    cleaned: list[str] = []

    @registry.step
    async def clean_up(order: str) -> None:
        cleaned.append(order)

    @registry.workflow
    async def wait_forever(order: str) -> str:
        try:
            async with HttpApproval.wait(token=f"cancel-me-{order}") as hook:
                await hook
            return "approved"
        finally:
            await clean_up(order)

    async with serve(durably.http.app(registry)) as base:
        run_id = (await client.post(f"{base}/runs/wait_forever", json={"order": "o9"})).json()[
            "run_id"
        ]
        await _live_hook(registry, run_id)
        resp = await client.post(f"{base}/runs/{run_id}/cancel", json={"reason": "too slow"})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"run_id": run_id, "cancel_requested": True}

        body = await _wait_status(client, base, run_id, {"cancelled", "completed", "failed"})
        assert body["status"] == "cancelled"
        assert body["cancel_reason"] == "too slow"
        assert body["error"]["type"] == "RunCancelledError"
        assert cleaned == ["o9"]

        resp = await client.post(f"{base}/runs/{run_id}/cancel")
        assert resp.status_code == 200
        assert resp.json() == {"run_id": run_id, "cancel_requested": False, "status": "cancelled"}
        resp = await client.post(f"{base}/hooks/cancel-me-o9", json={"approved": True, "by": "x"})
        assert resp.status_code == 404

        other = (await client.post(f"{base}/runs/wait_forever", json={"order": "o10"})).json()
        resp = await client.post(f"{base}/runs/{other['run_id']}/cancel", json={"reason": 3})
        assert resp.status_code == 400
        resp = await client.post(f"{base}/runs/{other['run_id']}/cancel")
        assert resp.status_code == 200
        body = await _wait_status(client, base, other["run_id"], {"cancelled"})
        assert body["cancel_reason"] is None


async def test_mounted_under_a_prefix(registry: Workflows, client: httpx.AsyncClient) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    @registry.workflow
    async def ping() -> str:
        return "pong"

    parent = Starlette(routes=[Mount("/durably", app=durably.http.app(registry))])
    async with serve(parent) as base:
        resp = await client.post(f"{base}/durably/runs/ping")
        assert resp.status_code == 202
        assert resp.headers["location"].startswith(f"{base}/durably/runs/run_")
        body = await _wait_status(client, f"{base}/durably", resp.json()["run_id"], {"completed"})
        assert body["result"] == "pong"

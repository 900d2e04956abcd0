"""Streaming a run's output to a client that disconnects and picks up where it left off.

A step writes tokens to the run's durable stream as it produces them (an LLM would do
the same). A client reads ``GET /runs/{run_id}/stream`` as server-sent events: each
event's id is the chunk's index. The client drops the connection halfway, comes back
with the ``Last-Event-ID`` header (as a browser's ``EventSource`` does by itself), and
gets exactly the rest: nothing twice, nothing missing. The stream's end is an ``end``
event.

    python examples/streaming.py
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import uvicorn

import durably.http
from durably import Workflows, get_writable

wf = Workflows()  # $DURABLY_WORLD, else sqlite:///.durably/durably.db

TEXT = (
    "Once upon a time a workflow slept for thirty days, woke up on another machine, "
    "and carried on as if nothing had happened, because its log remembered everything."
)
STORY = TEXT.split()


@wf.step
async def tell(topic: str) -> int:
    out = get_writable()
    for i, word in enumerate(STORY):
        await out.write({"token": word if i == 0 else " " + word})
        await asyncio.sleep(0.01)  # the model thinks
    await out.close()
    return len(STORY)


@wf.workflow
async def story(topic: str) -> int:
    return int(await tell(topic))


# -- a small SSE client (urllib, in a thread so the server keeps serving) ----------------


def _read_events(
    url: str, last_event_id: str | None = None, stop_after: int | None = None
) -> list[dict[str, Any]]:
    """Events from ``url`` until the stream ends, or until ``stop_after`` events have
    come (then the connection is dropped, mid-stream)."""
    req = urllib.request.Request(url, headers={"Accept": "text/event-stream"})
    if last_event_id is not None:
        req.add_header("Last-Event-ID", last_event_id)
    events: list[dict[str, Any]] = []
    fields: dict[str, str] = {}
    with urllib.request.urlopen(req, timeout=15) as resp:
        for raw in resp:
            line = raw.decode().rstrip("\r\n")
            if line.startswith(":"):  # a keep-alive comment
                continue
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            event = {"event": fields.get("event", "message"), "id": fields.get("id")}
            event["data"] = json.loads(fields.get("data", "null"))
            fields = {}
            events.append(event)
            if event["event"] == "end" or (stop_after and len(events) == stop_after):
                break  # leaving the block closes the connection
    return events


async def main() -> None:
    api = durably.http.app(wf)
    config = uvicorn.Config(
        api, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"

    try:
        req = urllib.request.Request(
            f"{base}/runs/story", data=json.dumps({"topic": "durability"}).encode(), method="POST"
        )
        with await asyncio.to_thread(urllib.request.urlopen, req, timeout=10) as resp:
            run_id = json.loads(resp.read())["run_id"]
        url = f"{base}/runs/{run_id}/stream"

        first = await asyncio.to_thread(_read_events, url, None, 8)
        print(f"read {len(first)} events, then the connection dropped: ", end="")
        print("".join(e["data"]["token"] for e in first) + " ...")
        await asyncio.sleep(0.1)  # the step goes on writing while nobody listens

        rest = await asyncio.to_thread(_read_events, url, first[-1]["id"])
        print(f"reconnected with Last-Event-ID: {first[-1]['id']}, read {len(rest)} more")

        assert rest[-1]["event"] == "end", rest[-1]
        chunks = first + rest[:-1]
        ids = [int(e["id"]) for e in chunks]
        assert ids == list(range(len(STORY))), ids  # every chunk once, in order
        text = "".join(e["data"]["token"] for e in chunks)
        assert text == TEXT, text
        print(text)
    finally:
        server.should_exit = True
        await serving


if __name__ == "__main__":
    asyncio.run(main())

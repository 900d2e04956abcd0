"""Human approval over HTTP: a run waits for a person, holding no compute, and a webhook
resumes it.

An expense over the limit needs a manager's approval. The workflow creates a webhook
(``wait(webhook=True)``: a hook the HTTP app may resume, with a generated, unguessable
token), sends the token to the approver (here: an in-process outbox standing in for an
email with a link), and waits for the answer for at most three days (a durable timer: a
restart loses nothing). The approver's answer arrives as ``POST /hooks/{token}`` on the
HTTP app, ``durably.http.app(wf)``, served by uvicorn in this process. A plain hook
(``wait(token=...)``) could be resumed only by server code, never over HTTP.

    python examples/approval_http.py

Endpoints used: ``POST /runs/{workflow}`` to start, ``POST /hooks/{token}`` to approve,
``GET /runs/{run_id}`` to read the result. Any HTTP client works; this one uses urllib.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import uvicorn

import durably.http
from durably import BaseHook, Workflows

wf = Workflows()  # $DURABLY_WORLD, else sqlite:///.durably/durably.db

#: Stands in for the approver's inbox: the links the workflow "emails".
outbox: asyncio.Queue[str] = asyncio.Queue()


@dataclass
class Approval(BaseHook):
    """What the approver sends back (validated: a bad body gets a 400)."""

    approved: bool
    approver: str
    comment: str = ""


@wf.step
async def request_approval(expense_id: str, amount: float, token: str) -> None:
    # A real application would email or message a link to a page that POSTs the answer.
    await outbox.put(f"/hooks/{token}")
    print(f"asked for approval of {expense_id} ({amount:.2f} EUR): POST /hooks/{token}")


@wf.step
async def reimburse(expense_id: str, amount: float) -> str:
    return f"transfer-{expense_id}-{int(amount * 100)}"


@wf.workflow
async def expense(expense_id: str, amount: float) -> dict[str, Any]:
    if amount <= 100:
        return {"expense": expense_id, "status": "auto-approved"}
    async with Approval.wait(webhook=True, metadata={"expense": expense_id}) as hook:
        await request_approval(expense_id, amount, hook.token)
        try:
            answer = await asyncio.wait_for(hook, timeout=3 * 24 * 3600)  # durable timer
        except TimeoutError:
            return {"expense": expense_id, "status": "expired"}
    if not answer.approved:
        return {"expense": expense_id, "status": "rejected", "by": answer.approver}
    transfer = await reimburse(expense_id, amount)
    return {"expense": expense_id, "status": "paid", "by": answer.approver, "transfer": transfer}


# -- a small HTTP client (urllib, in a thread so the server keeps serving) --------------


def _call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    return await asyncio.to_thread(_call, method, url, body)


async def main() -> None:
    api = durably.http.app(wf)  # opens wf when the server starts, closes it when it stops
    config = uvicorn.Config(
        api, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    print(f"serving on {base}")

    try:
        status, body = await call(
            "POST", f"{base}/runs/expense", {"expense_id": "e-42", "amount": 240.0}
        )
        assert status == 202, body  # accepted: the run is recorded, not done
        run_id = body["run_id"]
        print(f"started run {run_id}")

        # The approver opens the "email" and answers through the webhook.
        link = await asyncio.wait_for(outbox.get(), 15)
        status, body = await call("POST", base + link, {"approved": "sure, why not"})
        assert status == 400, body  # validated against Approval: nothing was recorded
        print(f"a malformed answer is refused: {body['detail']}")
        status, body = await call("POST", base + link, {"approved": True, "approver": "grace"})
        assert status == 200 and body["run_id"] == run_id, body

        for _ in range(1500):
            status, run = await call("GET", f"{base}/runs/{run_id}")
            if run["status"] not in ("pending", "running"):
                break
            await asyncio.sleep(0.01)
        print(f"run {run_id}: {run['status']}, result {run['result']}")
        assert run["status"] == "completed", run
        assert run["result"] == {
            "expense": "e-42",
            "status": "paid",
            "by": "grace",
            "transfer": "transfer-e-42-24000",
        }
        # The hook was disposed when its block ended: the link no longer works.
        status, body = await call("POST", base + link, {"approved": False, "approver": "x"})
        assert status == 404 and body["error"] == "hook_not_found", body
    finally:
        server.should_exit = True
        await serving


if __name__ == "__main__":
    asyncio.run(main())

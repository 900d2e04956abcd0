"""The dashboard's audited decrypt action: plaintext only on a protected POST, for that
response only, after exactly one ``data_decrypted`` record; a wrong key or no key shows
why and records nothing; the dashboard never creates a key file."""

from __future__ import annotations

from html import unescape
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from durably import Run, Workflows, start
from durably.cli import cli
from durably.crypto import is_sealed, key_file_for, new_key, sealed_key_id
from durably.events import Event
from durably.web import create_app
from durably.web.payloads import Decryption, render_payload
from durably.worlds.encrypted import who

from .conftest import Scenario, SecretRun, serve
from .test_pages import csrf_of


async def audits(run: Run) -> list[Event]:
    return [e for e in await run.events() if e.type.value == "data_decrypted"]


async def post_decrypt(c: httpx.AsyncClient, page: str, **headers: str) -> httpx.Response:
    """Open ``page`` (for the cookie and the form's token), press Decrypt, and follow
    the answer back to the page."""
    html = (await c.get(page)).text
    assert 'id="decrypt-form"' in html
    pressed = await c.post(
        page + "/decrypt",
        data={"csrf": csrf_of(html)},
        headers={"Origin": str(c.base_url), **headers},
    )
    assert pressed.status_code == 303, pressed.text
    assert pressed.headers["location"].startswith(page + "?flash=")
    return await c.get(pressed.headers["location"])


async def test_decrypt_shows_plaintext_once_and_records_it(secret_run: SecretRun) -> None:
    run = secret_run.run
    page = f"/runs/{run.run_id}"
    async with (
        serve(create_app(world=secret_run.world_url)) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as c,
    ):
        stored = (await c.get(page)).text
        assert "o-secret" not in stored and "book" not in stored
        assert 'id="decrypt-form"' in stored and "decrypt-unavailable" not in stored
        assert "B, encrypted" in stored

        # Cross-site protection, as for every action: nothing shown, nothing recorded.
        refused = await c.post(page + "/decrypt", data={})
        assert refused.status_code == 403 and "o-secret" not in refused.text
        evil = await c.post(
            page + "/decrypt",
            data={"csrf": csrf_of(stored)},
            headers={"Origin": "https://evil.example"},
        )
        assert evil.status_code == 403 and "o-secret" not in evil.text
        assert await audits(run) == []

        shown = await post_decrypt(c, page)
        assert shown.status_code == 200
        assert shown.headers["cache-control"] == "no-store"
        html = shown.text
        assert "tracking-o-secret" in html  # the result
        assert "(&#39;o-secret&#39;)" in html  # the input, as a call
        assert "{&#39;packed&#39;: &#39;book&#39;}" in html  # the stream's chunks
        assert "B, decrypted" in html  # the event log's payloads
        assert 'id="decrypted-note"' in html and 'id="decrypt-form"' not in html
        assert "for this browser session" in html

        [audit] = await audits(run)
        assert audit.call is None and audit.payload is None
        assert audit.data["via"] == "web 127.0.0.1"
        assert audit.data["who"] == who()
        assert audit.data["what"].startswith(
            "events, chunks 0-1 of stream '(default)'; its pages in plaintext for this "
            "browser session until "
        )
        assert audit.data["seqs"] == await sealed_seqs(secret_run, run.run_id)  # all shown
        assert len(audit.data["seqs"]) > 5
        assert f'<td class="num">{audit.seq}</td>' in html  # the page lists the record
        assert "ev-data_decrypted" in html

        # The whole run, for the rest of the session, with no further record: every
        # call's page (arguments, attempts' errors, result), the stream's tail.
        for step in await run.steps():
            call = (await c.get(f"{page}/calls/{step.call}")).text
            assert 'id="decrypted-note"' in call and "B, encrypted" not in call
        fetch = next(s for s in await run.steps() if s.name == "fetch_order")
        assert "(&#39;o-secret&#39;)" in (await c.get(f"{page}/calls/{fetch.call}")).text
        tail = await c.get(f"{page}/streams/_chunks", params={"start_index": 0})
        assert "lamp" in tail.text
        again = (await c.get(page)).text
        assert "tracking-o-secret" in again
        assert len(await audits(run)) == 1

        # Another browser (another session) sees the run as stored.
        async with httpx.AsyncClient(base_url=base, timeout=30) as other:
            elsewhere = (await other.get(page)).text
            assert "tracking-o-secret" not in elsewhere and 'id="decrypt-form"' in elsewhere
            tail = await other.get(f"{page}/streams/_chunks", params={"start_index": 0})
            assert "lamp" not in tail.text

        # "Hide plaintext" ends it: the run's pages as stored again.
        hidden = await c.post(
            page + "/decrypt/end", data={"csrf": csrf_of(again)}, headers={"Origin": base}
        )
        assert hidden.status_code == 303
        after = (await c.get(page)).text
        assert "ev-data_decrypted" in after and "web 127.0.0.1" in after
        assert "tracking-o-secret" not in after and "o-secret&#39;)" not in after
        assert 'id="decrypt-form"' in after


async def sealed_seqs(s: SecretRun, run_id: str, call: int | None = None) -> list[int]:
    """The events of ``run_id`` (of one call) whose payloads are stored encrypted."""
    world = await s.registry.open()
    stored = await world.inner.read_events(run_id)  # type: ignore[attr-defined]
    return [e.seq for e in stored if is_sealed(e.payload) and (call is None or e.call == call)]


async def test_decrypting_a_step_and_a_child_call(secret_run: SecretRun) -> None:
    run = secret_run.run
    steps = {s.name: s for s in await run.steps()}
    fetch, child = steps["fetch_order"], steps["ship"]
    async with (
        serve(create_app(world=secret_run.world_url)) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as c,
    ):
        page = f"/runs/{run.run_id}/calls/{fetch.call}"
        assert "o-secret" not in (await c.get(page)).text
        shown = await post_decrypt(c, page)
        assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
        assert "(&#39;o-secret&#39;)" in shown.text and "&#39;lamp&#39;" in shown.text
        [audit] = await audits(run)  # from a call's page: the whole run, as from its page
        assert audit.data["seqs"] == await sealed_seqs(secret_run, run.run_id)
        assert audit.data["what"].startswith("events, chunks 0-1")

        # A child run's input is the child's: its own record, besides the parent's.
        page = f"/runs/{run.run_id}/calls/{child.call}"
        shown = await post_decrypt(c, page)
        assert "(&#39;o-secret&#39;)" in shown.text
        assert "tracking-o-secret" in shown.text
        assert len(await audits(run)) == 2
        child_run = await secret_run.registry.get_run(f"{run.run_id}-{child.call}")
        [child_audit] = await audits(child_run)
        assert child_audit.data["seqs"] == [1] and child_audit.data["via"] == "web 127.0.0.1"


async def test_a_wrong_key_shows_the_error_and_records_nothing(secret_run: SecretRun) -> None:
    run = secret_run.run
    fetch = next(s for s in await run.steps() if s.name == "fetch_order")
    path = Path(secret_run.world_url.removeprefix("sqlite:///"))
    right = key_file_for(str(path)).read_text().strip()
    kid = right.split(":")[0]
    for key, message in (
        (new_key(kid), "does not decrypt: the key is wrong"),
        (new_key("other"), f"encrypted with key {kid!r}, which is not in the key ring"),
    ):
        app = create_app(world=secret_run.world_url, encryption_key=key)
        async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as c:
            for page in (f"/runs/{run.run_id}", f"/runs/{run.run_id}/calls/{fetch.call}"):
                shown = await post_decrypt(c, page)
                assert shown.status_code == 200
                assert "Nothing was decrypted" in shown.text
                assert message in unescape(shown.text)
                assert "o-secret" not in shown.text
                assert 'id="decrypted-note"' not in shown.text
    assert await audits(run) == []


async def test_without_a_key_decrypt_is_not_offered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DURABLY_ENCRYPTION_KEY", raising=False)
    db = tmp_path / "given.db"
    url = f"sqlite:///{db}"
    key = new_key()
    wf = Workflows(world=url, encryption_key=key)  # no key file: the key is given

    @wf.workflow
    async def secret(x: str) -> str:
        return x.upper()

    async with wf:
        run = await start(secret, "classified")
        assert await run.return_value(timeout=10) == "CLASSIFIED"
        app = create_app(world=url)
        async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as c:
            page = f"/runs/{run.run_id}"
            html = (await c.get(page)).text
            assert 'id="decrypt-form"' not in html and 'id="decrypt-unavailable"' in html
            assert "durably web --key" in html and "$DURABLY_ENCRYPTION_KEY" in html
            assert str(key_file_for(str(db))) in html
            # Asked anyway (a stale page): the reason, and nothing recorded.
            forced = await c.post(
                page + "/decrypt", data={"csrf": csrf_of(html)}, headers={"Origin": base}
            )
            forced = await c.get(forced.headers["location"])
            assert "Nothing was decrypted: no key" in forced.text
            assert "classified" not in forced.text.lower()
            assert await audits(run) == []
            assert not key_file_for(str(db)).exists()  # the dashboard never makes one

            # The key in the environment: found on the next request.
            monkeypatch.setenv("DURABLY_ENCRYPTION_KEY", key)
            shown = await post_decrypt(c, page)
            assert "CLASSIFIED" in shown.text and "(&#39;classified&#39;)" in shown.text
            assert len(await audits(run)) == 1
            # Encryption turned off in the environment: no key.
            monkeypatch.setenv("DURABLY_ENCRYPTION_KEY", "off")
            assert "set to off" in (await c.get(page)).text


async def test_memory_world_and_plaintext_runs(
    scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DURABLY_ENCRYPTION_KEY", raising=False)
    # Plaintext payloads: nothing to decrypt, nothing offered.
    async with (
        serve(create_app(world=scenario.world_url)) as base,
        httpx.AsyncClient(base_url=base) as c,
    ):
        html = (await c.get(f"/runs/{scenario.completed.run_id}")).text
        assert "decrypt-form" not in html and "decrypt-unavailable" not in html
    # memory://: the process's own key, as a registry in this process uses.
    url = f"memory://{tmp_path.name}-dash"
    wf = Workflows(world=url)

    @wf.workflow
    async def secret(x: str) -> str:
        return x.upper()

    async with wf:
        run = await start(secret, "hush")
        assert await run.return_value(timeout=10) == "HUSH"
        async with serve(create_app(world=url)) as base, httpx.AsyncClient(base_url=base) as c:
            shown = await post_decrypt(c, f"/runs/{run.run_id}")
            assert "&#39;HUSH&#39;" in shown.text
        [audit] = await audits(run)
        assert audit.data["via"] == "web 127.0.0.1"


async def test_a_mounted_dashboard_uses_the_registrys_key(secret_run: SecretRun) -> None:
    run = secret_run.run
    async with (
        serve(create_app(secret_run.registry)) as base,
        httpx.AsyncClient(base_url=base) as c,
    ):
        shown = await post_decrypt(c, f"/runs/{run.run_id}")
        assert "tracking-o-secret" in shown.text
    assert len(await audits(run)) == 1


def test_render_payload_opens_only_with_an_opener() -> None:
    from durably import serde
    from durably.crypto import KeyRing, Sealer
    from durably.events import EventType

    sealer = Sealer(KeyRing.parse(new_key("t")))
    plain = serde.encode({"pin": 1234}, where="test")
    ev = Event("r1", 3, EventType.STEP_COMPLETED, 0, {}, None, 0.0)
    stored = sealer.seal_event("r1", 3, "step_completed", 0, plain)
    assert sealed_key_id(stored) == "t"
    opaque = render_payload(stored, kind="value", where="x")
    assert opaque.state == "encrypted" and "1234" not in opaque.note
    decryption = Decryption(sealer)
    ev = Event("r1", 3, EventType.STEP_COMPLETED, 0, {}, stored, 0.0)
    shown = render_payload(stored, kind="value", where="x", opener=decryption.event(ev))
    assert shown.decrypted and "1234" in shown.text and shown.size == len(stored)
    assert decryption.runs() == ["r1"] and decryption.seqs("r1") == [3]
    # A plaintext payload does not count as decrypted.
    render_payload(plain, kind="value", where="x", opener=decryption.event(ev))
    for i in (0, 1, 2, 5, 7, 8):
        chunk = sealer.seal_chunk("r1", "", i, plain)
        render_payload(chunk, kind="value", where="x", opener=decryption.chunk("r1", "", i))
    assert decryption.what("r1") == "events, chunks 0-2, 5, 7-8 of stream '(default)'"


def test_web_refuses_a_malformed_key() -> None:
    result = CliRunner().invoke(cli, ["web", "--key", "not-a-key"])
    assert result.exit_code == 1
    assert "--key: an encryption key must look like KEY_ID:BASE64URL" in result.output


def test_a_postgres_world_without_a_key_says_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DURABLY_ENCRYPTION_KEY", raising=False)
    app = create_app(world="postgresql://nobody@127.0.0.1:1/none")
    problem = app.state.dashboard.key_problem()
    assert problem is not None and problem.startswith("no key: ") and "durably keygen" in problem
    monkeypatch.setenv("DURABLY_ENCRYPTION_KEY", new_key())
    assert app.state.dashboard.key_problem() is None

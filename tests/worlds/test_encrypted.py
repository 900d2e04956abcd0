"""Encryption at rest through real worlds, audited decryption, rotation, key handling."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import durably
from durably import DecryptionError, Workflows, get_writable, start
from durably.crypto import new_key
from durably.errors import KeyFileMissingError

SECRET = "4111-1111-1111-1111"
RESULT = "ssn-078-05-1120"


def _registry(url: str, key: str | bool | None = None) -> Workflows:
    wf = Workflows(world=url, encryption_key=key)

    @wf.step
    async def charge(card: str) -> str:
        out = get_writable()
        await out.write(f"charging {card}")
        await out.close()
        return RESULT

    @wf.step(max_retries=0)
    async def fail(card: str) -> None:
        raise ValueError(f"declined {card}")

    @wf.workflow
    async def pay(card: str) -> str:
        try:
            await fail(card)
        except ValueError:
            pass
        return str(await charge(card))

    return wf


def _all_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("w.db"))


async def test_no_plaintext_anywhere_in_the_sqlite_files(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    wf = _registry(url)
    try:
        run = await start(wf.workflows["pay"], SECRET)
        assert await run.return_value(timeout=30) == RESULT
        assert [c async for c in run.readable()] == [f"charging {SECRET}"]
        raw = _all_bytes(tmp_path)  # the database, its WAL and shared memory
        assert raw and SECRET.encode() not in raw and RESULT.encode() not in raw
        assert b"declined" not in raw
        key_file = tmp_path / "w.db.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    finally:
        await wf.aclose()
    # With encryption off the same secrets are there in plaintext: the check can fail.
    url2 = f"sqlite:///{tmp_path / 'plain.db'}"
    plain = _registry(url2, key=False)
    try:
        run = await start(plain.workflows["pay"], SECRET)
        await run.return_value(timeout=30)
    finally:
        await plain.aclose()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("plain.db"))
    assert SECRET.encode() in raw


async def test_tampered_byte_gives_decryption_error_and_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    wf = _registry(url)
    try:
        run = await start(wf.workflows["pay"], SECRET)
        await run.return_value(timeout=30)
    finally:
        await wf.aclose()
    db = sqlite3.connect(tmp_path / "w.db")
    (payload,) = db.execute(
        "SELECT payload FROM events WHERE run_id = ? AND type = 'run_completed'", (run.run_id,)
    ).fetchone()
    tampered = bytearray(payload)
    tampered[-3] ^= 0xFF
    db.execute(
        "UPDATE events SET payload = ? WHERE run_id = ? AND type = 'run_completed'",
        (bytes(tampered), run.run_id),
    )
    db.commit()
    count = db.execute("SELECT count(*) FROM events WHERE run_id = ?", (run.run_id,)).fetchone()
    db.close()
    again = _registry(url)
    try:
        with pytest.raises(DecryptionError):
            await (await again.get_run(run.run_id)).return_value(timeout=5)
        assert await (await again.get_run(run.run_id)).status() == "completed"
    finally:
        await again.aclose()
    db = sqlite3.connect(tmp_path / "w.db")
    assert (
        db.execute("SELECT count(*) FROM events WHERE run_id = ?", (run.run_id,)).fetchone()
        == count
    )
    db.close()


async def test_wrong_key_raises_and_never_returns_garbage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    wf = _registry(url, key=new_key("a"))
    try:
        run = await start(wf.workflows["pay"], SECRET)
        await run.return_value(timeout=30)
    finally:
        await wf.aclose()
    other = _registry(url, key=new_key("a"))
    try:
        with pytest.raises(DecryptionError):
            await (await other.get_run(run.run_id)).return_value(timeout=5)
        with pytest.raises(DecryptionError):
            _ = [c async for c in (await other.get_run(run.run_id)).readable()]
    finally:
        await other.aclose()


def _cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durably", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_rotation_round_trip_with_rekey(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    old, new = new_key("old"), new_key("new")
    wf = _registry(url, key=old)
    try:
        first = await start(wf.workflows["pay"], SECRET)
        await first.return_value(timeout=30)
    finally:
        await wf.aclose()
    rotated = _registry(url, key=f"{new},{old}")
    try:
        second = await start(rotated.workflows["pay"], SECRET)
        assert await second.return_value(timeout=30) == RESULT
        assert await (await rotated.get_run(first.run_id)).return_value(timeout=5) == RESULT
    finally:
        await rotated.aclose()
    out = _cli("rekey", "--world", url, "--key", f"{new},{old}", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout)
    assert counts["events"] > 0 and counts["chunks"] == 1
    again = _cli("rekey", "--world", url, "--key", f"{new},{old}", "--json", cwd=tmp_path)
    assert json.loads(again.stdout)["events"] == 0  # nothing left under the old key
    only_new = _registry(url, key=new)
    try:
        assert await (await only_new.get_run(first.run_id)).return_value(timeout=5) == RESULT
        chunks = [c async for c in (await only_new.get_run(first.run_id)).readable()]
        assert chunks == [f"charging {SECRET}"]
    finally:
        await only_new.aclose()


async def test_cli_decrypt_is_audited(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    wf = _registry(url)
    try:
        run = await start(wf.workflows["pay"], SECRET)
        await run.return_value(timeout=30)
    finally:
        await wf.aclose()
    hidden = _cli("inspect", "events", run.run_id, "--world", url, "--json", cwd=tmp_path)
    assert SECRET not in hidden.stdout and "<encrypted>" in hidden.stdout
    shown = _cli(
        "inspect", "events", run.run_id, "--world", url, "--json", "--decrypt", cwd=tmp_path
    )
    assert shown.returncode == 0, shown.stderr
    assert SECRET in shown.stdout
    events = json.loads(
        _cli("inspect", "events", run.run_id, "--world", url, "--json", cwd=tmp_path).stdout
    )
    audit = [e for e in events if e["type"] == "data_decrypted"]
    assert len(audit) == 1
    assert "@" in audit[0]["data"]["who"] and audit[0]["data"]["seqs"]
    bad = _cli(
        "inspect",
        "events",
        run.run_id,
        "--world",
        url,
        "--decrypt",
        "--key",
        new_key(),
        cwd=tmp_path,
    )
    assert bad.returncode == 1 and "not in the key ring" in bad.stderr


async def test_memory_world_encrypts_too() -> None:
    wf = Workflows(world="memory://enc-test")

    @wf.workflow
    async def echo(x: str) -> str:
        return x

    try:
        run = await start(echo, SECRET)
        assert await run.return_value(timeout=30) == SECRET
        world = await wf.open()
        raw_events = await world.inner.read_events(run.run_id)  # type: ignore[attr-defined]
        assert all(SECRET.encode() not in (e.payload or b"") for e in raw_events)
    finally:
        await wf.aclose()


def test_a_world_without_default_key_names_keygen(monkeypatch: pytest.MonkeyPatch) -> None:
    from durably.crypto import resolve_keyring

    monkeypatch.delenv("DURABLY_ENCRYPTION_KEY", raising=False)
    with pytest.raises(durably.ConfigurationError, match="durably keygen") as e:
        resolve_keyring("postgresql://u:secret@h/db", None)
    # The world is named as written (scheme included), without its password.
    assert "'postgresql://u:***@h/db'" in str(e.value) and "secret" not in str(e.value)
    assert resolve_keyring("postgresql://u@h/db", False) is None
    monkeypatch.setenv("DURABLY_ENCRYPTION_KEY", "off")
    assert resolve_keyring("postgresql://u@h/db", None) is None


def test_a_postgres_registry_without_a_key_fails_at_startup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DURABLY_ENCRYPTION_KEY", raising=False)
    with pytest.raises(durably.ConfigurationError, match="durably keygen"):
        Workflows(world="postgresql://postgres@127.0.0.1:5432/test")
    Workflows(world="postgresql://postgres@127.0.0.1:5432/test", encryption_key=new_key())


# -- a missing key file ------------------------------------------------------------------


async def test_a_missing_key_file_is_refused_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DURABLY_ENCRYPTION_KEY", raising=False)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    key_file = tmp_path / "w.db.key"
    wf = _registry(url)
    try:
        run = await start(wf.workflows["pay"], SECRET)
        assert await run.return_value(timeout=30) == RESULT
    finally:
        await wf.aclose()
    key_id = key_file.read_text().split(":", 1)[0]
    key_file.rename(tmp_path / "moved-away.key")

    again = _registry(url)
    try:
        with pytest.raises(KeyFileMissingError) as refused:
            await start(again.workflows["pay"], SECRET)
    finally:
        await again.aclose()
    msg = str(refused.value)
    # It names the key the data needs, the file expected and both ways to restore it.
    assert repr(key_id) in msg and str(key_file) in msg
    assert "DURABLY_ENCRYPTION_KEY" in msg and "encryption_key=" in msg
    assert isinstance(refused.value, DecryptionError)
    assert not key_file.exists()  # no new key beside data it could not read

    # Putting the key file back (or giving the key) is all it takes.
    (tmp_path / "moved-away.key").rename(key_file)
    back = _registry(url)
    try:
        assert await (await back.get_run(run.run_id)).return_value(timeout=5) == RESULT
    finally:
        await back.aclose()


async def test_a_new_or_plaintext_database_still_gets_a_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from durably.crypto import resolve_keyring

    monkeypatch.delenv("DURABLY_ENCRYPTION_KEY", raising=False)
    # An empty database file (and one whose tables hold no encrypted payload) is new.
    (tmp_path / "empty.db").touch()
    assert resolve_keyring(f"sqlite:///{tmp_path / 'empty.db'}", None) is not None
    assert (tmp_path / "empty.db.key").exists()
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    plain = _registry(url, key=False)
    try:
        run = await start(plain.workflows["pay"], SECRET)
        await run.return_value(timeout=30)
    finally:
        await plain.aclose()
    assert resolve_keyring(url, None) is not None
    assert (tmp_path / "plain.db.key").exists()

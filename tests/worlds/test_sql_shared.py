"""The pieces the SQL worlds share (worlds/sql), and the one place world URLs are read
(worlds/urls): migration loading, row decoding, schemes, default-key policy."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from durably.crypto import resolve_keyring
from durably.errors import ConfigurationError, KeyFileMissingError, WorldError
from durably.worlds import key_policy, open_world, scheme_of
from durably.worlds.memory import MemoryWorld
from durably.worlds.postgres import PostgresWorld
from durably.worlds.postgres.schema import load_migrations as pg_migrations
from durably.worlds.sql.migrations import Migration, pending_migrations, read_migrations
from durably.worlds.sql.rows import RUN_COLUMNS, hook_from_row, run_row_from_row
from durably.worlds.sqlite import SqliteWorld
from durably.worlds.sqlite.schema import load_migrations as sqlite_migrations
from durably.worlds.sqlite.schema import migrate
from durably.worlds.urls import world_class

# -- migrations --------------------------------------------------------------------------


def _folder(tmp_path: Path, names: list[str]) -> Path:
    for name in names:
        (tmp_path / name).write_text(f"-- {name}\nSELECT 1;\n")
    return tmp_path


def test_migrations_load_in_numeric_order_ignoring_other_files(tmp_path: Path) -> None:
    folder = _folder(tmp_path, ["010_ten.sql", "002_b.sql", "001_a.sql", "README.md", "x.sql"])
    for n in range(3, 10):
        (folder / f"{n:03d}_m{n}.sql").write_text("SELECT 1;")
    found = read_migrations(folder, "test")
    assert [m.version for m in found] == list(range(1, 11))
    assert found[0].name == "001_a.sql" and found[-1].name == "010_ten.sql"


@pytest.mark.parametrize(
    "names", [["001_a.sql", "003_c.sql"], ["002_b.sql"], ["001_a.sql", "01_again.sql"]]
)
def test_gaps_or_repeats_in_migration_numbers_are_refused(tmp_path: Path, names: list[str]) -> None:
    with pytest.raises(WorldError, match=r"test migrations are not numbered 1\.\.n"):
        read_migrations(_folder(tmp_path, names), "test")


def test_shipped_migrations_are_numbered_without_gaps() -> None:
    for found in (sqlite_migrations(), pg_migrations()):
        assert [m.version for m in found] == list(range(1, len(found) + 1))


def test_pending_migrations_skip_applied_ones_and_refuse_a_newer_schema() -> None:
    migs = [Migration(i, f"{i:03d}_m.sql", "SELECT 1;") for i in (1, 2, 3)]
    assert [m.version for m in pending_migrations(migs, 0, "db has version")] == [1, 2, 3]
    assert [m.version for m in pending_migrations(migs, 2, "db has version")] == [3]
    assert pending_migrations(migs, 3, "db has version") == []
    with pytest.raises(WorldError, match=r"db has version 4, newer than this durably knows \(3\)"):
        pending_migrations(migs, 4, "db has version")


def test_sqlite_migrate_is_idempotent(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    try:
        latest = sqlite_migrations()[-1].version
        assert migrate(conn, "m.db") == latest
        tables = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        assert migrate(conn, "m.db") == latest  # nothing left to apply, nothing changes
        assert conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall() == (
            tables
        )
        assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
    finally:
        conn.close()


def test_statements_split_at_semicolons_outside_strings() -> None:
    mig = Migration(1, "001_x.sql", "-- lead\nCREATE TABLE t (a TEXT DEFAULT ';');\n-- only\n")
    assert mig.statements() == ["CREATE TABLE t (a TEXT DEFAULT ';');"]
    with pytest.raises(WorldError, match="unterminated statement"):
        Migration(2, "002_y.sql", "SELECT 1; SELECT 'open").statements()


# -- rows --------------------------------------------------------------------------------


def test_run_rows_decode_from_an_offset() -> None:
    assert len(RUN_COLUMNS.split(",")) == 20
    values = ["r", "wf", "ns", "dep", "pending", 1.0, None, None, 3, None, None, None, None]
    row = ["k", 7, *values, 0, '{"a":"b"}', 2, 3, 4.0, None, None]
    decoded = run_row_from_row(row, 2)
    assert decoded.record.run_id == "r" and decoded.record.last_seq == 3
    assert decoded.record.cancel_requested is False  # SQLite's 0
    assert decoded.record.attributes == {"a": "b"}
    assert (decoded.decided_seq, decoded.turn_seq, decoded.turn_due_at) == (2, 3, 4.0)
    hook = hook_from_row(["t", "r", 1, "approve", "ns", 2.0, "{}"])
    assert hook.metadata == {} and hook.call == 1


# -- URLs --------------------------------------------------------------------------------


def test_the_scheme_is_read_case_insensitively() -> None:
    assert scheme_of("SQLite:///x.db") == "sqlite"
    assert scheme_of("postgres://h/db") == "postgres"
    assert scheme_of("no-scheme.db") == ""


def test_each_scheme_names_its_world() -> None:
    assert world_class("memory://") is MemoryWorld
    assert world_class("sqlite:///x.db") is SqliteWorld
    assert world_class("postgresql://h/db") is PostgresWorld
    assert world_class("POSTGRES://h/db") is PostgresWorld


@pytest.mark.parametrize("url", ["mysql://h/db", "ftp://x"])
def test_an_unknown_scheme_lists_the_known_ones(url: str) -> None:
    with pytest.raises(WorldError, match=r"is not one of .*memory://.*sqlite://"):
        open_world(url)


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("sqlite:/x.db", "'sqlite:' must be followed by '//'"),
        ("memory:", "'memory:' must be followed by '//'"),
        ("x.db", "not of the form SCHEME://"),
        ("://nothing", "not of the form SCHEME://"),
    ],
)
def test_a_url_without_scheme_shows_the_forms_that_work(url: str, hint: str) -> None:
    with pytest.raises(WorldError) as e:
        open_world(url)
    msg = str(e.value)
    assert hint in msg and "(none)" not in msg
    for form in ("sqlite:///relative/path.db", "sqlite:////abs/path.db", "memory://"):
        assert form in msg


@pytest.mark.parametrize("url", ["sqlite:///a\x00b.db", "sqlite:///a%00b.db", "memory://a\nb"])
def test_a_control_character_in_a_url_is_a_world_error(url: str) -> None:
    # A NUL byte used to surface as a bare ValueError when the file was opened.
    with pytest.raises(WorldError, match="control character"):
        open_world(url)


def test_a_malformed_sqlite_url_is_refused_when_the_world_is_made() -> None:
    with pytest.raises(WorldError, match="has a host part"):
        open_world("sqlite://host/x.db")


# -- default keys ------------------------------------------------------------------------


def test_sqlite_keeps_its_default_key_beside_the_database(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    policy = key_policy(f"sqlite:///{db}")
    assert policy.source == "file" and policy.path == Path(f"{db}.key")


def test_memory_makes_a_key_per_process_and_postgres_has_none() -> None:
    assert key_policy("memory://k").source == "process"
    assert key_policy("postgresql://u@h/db").source == "none"
    assert key_policy("unknown://x").source == "none"


def test_resolving_keys_follows_each_worlds_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DURABLY_ENCRYPTION_KEY", raising=False)
    db = tmp_path / "k.db"
    ring = resolve_keyring(f"sqlite:///{db}", None)
    assert ring is not None and Path(f"{db}.key").exists()
    again = resolve_keyring(f"sqlite:///{db}", None)
    assert again is not None and again.current == ring.current
    mem = resolve_keyring("memory://policy", None)
    assert mem is not None and resolve_keyring("memory://policy", None) == mem
    with pytest.raises(ConfigurationError, match="durably keygen"):
        resolve_keyring("postgresql://u@h/db", None)
    with pytest.raises(WorldError, match="names no database file"):
        resolve_keyring("sqlite:///", None)


def test_a_command_that_only_reads_never_makes_a_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DURABLY_ENCRYPTION_KEY", raising=False)
    with pytest.raises(KeyFileMissingError, match="no key file"):
        resolve_keyring(f"sqlite:///{tmp_path / 'typo' / 'x.db'}", None, create=False)
    assert list(tmp_path.iterdir()) == []

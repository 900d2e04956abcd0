"""Properties of world URLs: any string is a world (not yet opened) or a ``WorldError`` /
``ConfigurationError`` that says how to write it; what a URL says is what is parsed."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from durably.errors import ConfigurationError, WorldError
from durably.worlds import key_policy, open_world
from durably.worlds.postgres.config import PostgresConfig, parse_postgres_url, redact
from durably.worlds.sqlite.config import SqliteConfig, parse_sqlite_url
from durably.worlds.urls import world_class

SCHEMES = [
    "sqlite://",
    "sqlite:///",
    "sqlite:////",
    "SQLite:///",
    "sqlite:",
    "sqlite:/",
    "memory://",
    "memory:",
    "postgresql://",
    "postgres://",
    "POSTGRESQL://",
    "postgresql:///",
    "http://",
    "file://",
    "://",
    "\x00://",
    "",
]
# The characters URLs are made of, and those that break naive parsers.
url_chars = st.sampled_from([*"/:@?&=#%[].-_ ~+", "%00", "%ff", "%2F", "\x00", "\ud800"])
url_tails = st.lists(st.text(max_size=4) | url_chars, max_size=10).map("".join)
urls = st.builds(lambda s, t: s + t, st.sampled_from(SCHEMES), url_tails) | st.text()

SQLITE_NUL = "sqlite:///a\x00b.db"
POSTGRES_SURROGATE = "postgresql://h/db?a=\ud800"


def _usable(text: str) -> bool:
    """What a driver can be given: no NUL, and encodable as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _clear(e: Exception) -> None:
    assert isinstance(e, WorldError | ConfigurationError), f"{type(e).__name__}: {e}"
    assert str(e)


@given(urls)
@example(SQLITE_NUL)  # a NUL in the path reached SQLite (a bare ValueError when opened)
@example("sqlite:///a%00b.db")
@example("sqlite:///\ud800.db")  # a path SQLite cannot be given (UnicodeEncodeError)
@example(POSTGRES_SURROGATE)  # was a bare UnicodeEncodeError from open_world
@example("postgresql://u:p%00@h/db")
@example("postgresql://[::1/db")
@example("sqlite:/x.db")
@example("memory:")
def test_any_string_is_a_world_or_a_clear_error(url: str) -> None:
    try:
        world: Any = open_world(url)
    except Exception as e:
        _clear(e)
    else:
        config = getattr(world, "config", None)
        if isinstance(config, SqliteConfig):
            assert _usable(config.path), config
        if isinstance(config, PostgresConfig):
            assert _usable(config.dsn), config
    for fn in (key_policy, world_class):
        try:
            fn(url)
        except Exception as e:
            _clear(e)


# Path segments SQLite and every file system accept, less control characters, which a
# world URL refuses as stray bytes (see urls.check_text); quoting covers the rest.
segments = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc",), exclude_characters="/\\"),
    min_size=1,
    max_size=8,
).filter(lambda s: s not in (".", ".."))
paths = st.lists(segments, min_size=1, max_size=3).map("/".join)


@given(paths, st.booleans(), st.sampled_from(["", "full", "NORMAL", "off"]), st.integers(0, 10**9))
def test_a_sqlite_url_says_its_path_and_settings(
    path: str, absolute: bool, synchronous: str, busy: int
) -> None:
    query = "&".join(
        [f"synchronous={synchronous}"] * bool(synchronous) + [f"busy_timeout_ms={busy}"]
    )
    url = "sqlite:///" + ("/" if absolute else "") + quote(path) + "?" + query
    if path == ":memory:" and not absolute:
        with pytest.raises(WorldError, match="memory"):
            parse_sqlite_url(url)
        return
    config = parse_sqlite_url(url)
    assert config.path == os.path.abspath(("/" if absolute else "") + path)
    assert config.synchronous == (synchronous.lower() or "normal")
    assert config.busy_timeout_ms == busy


@given(urls.map(lambda u: "sqlite:///x.db?" + u))
def test_any_sqlite_query_is_read_or_refused_by_name(url: str) -> None:
    try:
        parse_sqlite_url(url)
    except WorldError as e:
        assert url in str(e) or repr(url) in str(e)


names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=10)
hosts = st.sampled_from(["localhost", "127.0.0.1", "db.example.com", "[::1]"])


@given(
    user=names,
    password=names,
    host=hosts,
    port=st.none() | st.integers(1, 65535),
    database=names,
    schema=st.none() | names.filter(lambda s: len(s.encode()) <= 63),
    pool_size=st.none() | st.integers(1, 1000),
    reconnect=st.none() | st.floats(0, 1e6),
    extra=st.dictionaries(st.sampled_from(["sslmode", "synchronous_commit", "jit"]), names),
)
def test_a_postgres_url_says_its_settings_and_never_shows_its_password(
    user: str,
    password: str,
    host: str,
    port: int | None,
    database: str,
    schema: str | None,
    pool_size: int | None,
    reconnect: float | None,
    extra: dict[str, str],
) -> None:
    params = dict(extra)
    if schema is not None:
        params["schema"] = schema
    if pool_size is not None:
        params["pool_size"] = str(pool_size)
    if reconnect is not None:
        params["reconnect_seconds"] = repr(reconnect)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    netloc += f":{port}" if port is not None else ""
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    url = f"postgresql://{netloc}/{quote(database, safe='')}?{query}"

    config = parse_postgres_url(url)
    assert config.schema == (schema if schema is not None else "durably")
    assert config.pool_size == (pool_size or 10)
    assert config.reconnect_seconds == (reconnect if reconnect is not None else 30.0)
    assert "schema=" not in config.dsn and "pool_size=" not in config.dsn
    for k in extra:
        assert f"{k}=" in config.dsn
    secret = quote(password, safe="")
    assert f":{secret}@" not in config.display
    assert f":{secret}@" not in redact(url)


@given(urls)
def test_redact_never_fails(url: str) -> None:
    assert isinstance(redact(url), str)

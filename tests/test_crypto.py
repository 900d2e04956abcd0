"""The sealer: AES-256-GCM per run, bound to each payload's place, keys with ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from durably.crypto import KeyRing, Sealer, is_sealed, new_key, plain_length, sealed_key_id
from durably.errors import ConfigurationError, DecryptionError


def sealer(*keys: str) -> Sealer:
    return Sealer(KeyRing.parse(",".join(keys)))


def test_round_trip_and_no_plaintext() -> None:
    s = sealer(new_key("k1"))
    ct = s.seal_event("run_a", 3, "step_completed", 0, b'{"card":"4242"}')
    assert is_sealed(ct) and b"4242" not in ct and sealed_key_id(ct) == "k1"
    assert s.open_event("run_a", 3, "step_completed", 0, ct) == b'{"card":"4242"}'


@pytest.mark.parametrize(
    "place",
    [
        ("run_b", 3, "step_completed", 0),  # another run
        ("run_a", 4, "step_completed", 0),  # another event
        ("run_a", 3, "step_failed", 0),  # another type
        ("run_a", 3, "step_completed", 1),  # another call
    ],
)
def test_a_ciphertext_cannot_move(place: tuple[str, int, str, int]) -> None:
    s = sealer(new_key("k1"))
    ct = s.seal_event("run_a", 3, "step_completed", 0, b"secret")
    with pytest.raises(DecryptionError, match=r"moved|wrong"):
        s.open_event(*place, ct)


def test_tampering_with_one_byte_is_detected() -> None:
    s = sealer(new_key("k1"))
    ct = bytearray(s.seal_chunk("run_a", "ns", 0, b"hello"))
    ct[-1] ^= 0x01
    with pytest.raises(DecryptionError):
        s.open_chunk("run_a", "ns", 0, bytes(ct))


def test_wrong_or_missing_key() -> None:
    ct = sealer(new_key("k1")).seal_event("r", 1, "run_created", None, b"x")
    with pytest.raises(DecryptionError, match="wrong"):
        sealer(new_key("k1")).open_event("r", 1, "run_created", None, ct)
    with pytest.raises(DecryptionError, match="not in the key ring"):
        sealer(new_key("k2")).open_event("r", 1, "run_created", None, ct)
    with pytest.raises(DecryptionError, match="no key"):
        Sealer(None).open_event("r", 1, "run_created", None, ct)


def test_rotation_new_data_uses_the_newest_key() -> None:
    old, new = new_key("old"), new_key("new")
    ct_old = sealer(old).seal_event("r", 1, "run_created", None, b"a")
    both = sealer(new, old)
    ct_new = both.seal_event("r", 2, "run_created", None, b"b")
    assert sealed_key_id(ct_new) == "new"
    assert both.open_event("r", 1, "run_created", None, ct_old) == b"a"
    assert both.open_event("r", 2, "run_created", None, ct_new) == b"b"


def test_plaintext_passes_through_and_off_means_off() -> None:
    s = Sealer(None)
    assert not s.enabled
    assert s.seal_event("r", 1, "x", None, b"{}") == b"{}"
    assert sealer(new_key()).open_event("r", 1, "x", None, b"{}") == b"{}"


@pytest.mark.parametrize("bad", ["", "k1:short", "k1:!!!notbase64", ",,,"])
def test_bad_keys_say_how_to_make_one(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="durably keygen"):
        KeyRing.parse(bad)


def test_the_key_file_is_never_visible_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reader (another process) that finds the file must find the whole key: while the
    # key is being written, the file must not exist yet under its name.
    import os

    from durably import crypto

    path = tmp_path / "db.key"
    seen: list[bool] = []
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        seen.append(path.exists())
        return real_write(fd, data)

    monkeypatch.setattr(crypto.os, "write", write)
    key = crypto.load_or_create_key_file(path)
    assert seen == [False]
    assert path.read_text().strip() == key and key
    assert [p.name for p in tmp_path.iterdir()] == ["db.key"]  # no temporary file left
    assert crypto.load_or_create_key_file(path) == key


def test_plain_length_is_the_plaintext_length_without_decrypting() -> None:
    sealer = Sealer(KeyRing.parse(new_key("k1")))
    for size in (0, 1, 100, 10_000):
        sealed = sealer.seal_event("run", 3, "step_created", 1, b"x" * size)
        assert sealed != b"x" * size
        assert plain_length(sealed) == size
    assert plain_length(b"plain json") == len(b"plain json")

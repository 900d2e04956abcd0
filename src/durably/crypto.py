"""Payload encryption: AES-256-GCM with a data key per run, keys with ids for rotation.

Every payload (arguments, results, errors, hook payloads, stream chunks) is sealed before
the world stores it. The data key of a run is HKDF-SHA256 of the master key with the run
id; the associated data binds the ciphertext to its place — run, sequence number, event
type and call for an event; run, namespace and index for a stream chunk — so a ciphertext
moved to another run or another event does not decrypt. Names, statuses, timestamps and
attributes stay plaintext.

A sealed payload is ``MAGIC | len(key_id) | key_id | nonce(12) | ciphertext+tag``. Stored
payloads written without encryption are plain JSON text, which never starts with MAGIC.

Keys are ``KEY_ID:BASE64URL(32 bytes)``; a key ring is several, comma separated, newest
first: new data uses the newest, old data decrypts with whichever key id it names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ConfigurationError, DecryptionError, KeyFileMissingError, redact_url
from .worlds.urls import key_policy

__all__ = [
    "HOOK_DIGEST_PREFIX",
    "MAGIC",
    "KeyRing",
    "Sealer",
    "is_sealed",
    "key_file_for",
    "load_or_create_key_file",
    "new_key",
    "plain_length",
    "sealed_key_id",
    "sealer_of",
]

MAGIC = b"\x00DE1"
_NONCE = 12
_TAG = 16

#: How a hook token's digest starts in the hook index (and in hook events): a stored
#: key with this prefix is a digest, anything else a raw token of a log written before.
HOOK_DIGEST_PREFIX = "hd1:"
#: The HMAC key of token digests when encryption is off (no secret: a plain hash).
_UNKEYED_DIGEST = b"durably hook token digest, no key"


def new_key(key_id: str | None = None) -> str:
    """A new master key as ``KEY_ID:BASE64URL`` (what ``durably keygen`` prints)."""
    kid = key_id or "k" + secrets.token_hex(3)
    raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return f"{kid}:{raw}"


def _decode_key(text: str) -> tuple[str, bytes]:
    text = text.strip()
    kid, sep, b64 = text.partition(":")
    if not sep:
        kid, b64 = "k0", text
    try:
        raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32 or not kid or len(kid.encode()) > 255:
        raise ConfigurationError(
            "an encryption key must look like KEY_ID:BASE64URL of 32 random bytes "
            "(make one with `durably keygen`)"
        )
    return kid, raw


@dataclass(frozen=True)
class KeyRing:
    """Master keys by id; ``current`` seals new data."""

    keys: dict[str, bytes]
    current: str

    @classmethod
    def parse(cls, text: str | bytes) -> KeyRing:
        """Parse ``KEY_ID:BASE64[,KEY_ID:BASE64...]`` (newest first)."""
        if isinstance(text, bytes):
            text = text.decode()
        parts = [p for p in text.replace("\n", ",").split(",") if p.strip()]
        if not parts:
            raise ConfigurationError("the encryption key is empty (make one with `durably keygen`)")
        keys: dict[str, bytes] = {}
        for part in parts:
            kid, raw = _decode_key(part)
            keys.setdefault(kid, raw)
        return cls(keys, _decode_key(parts[0])[0])


def key_file_for(db_path: str) -> Path:
    """The key file beside a database file (where the SQLite world keeps its key)."""
    return Path(db_path + ".key")


def load_or_create_key_file(
    path: Path, stored_key_id: Callable[[], str | None] | None = None, *, create: bool = True
) -> str:
    """Read the key file, or create it (mode 0600) and say so once on stderr.

    Args:
        path: the key file.
        stored_key_id: the id of the key that data already stored beside it needs
            (``None``: none stored); asked only when the file is missing.
        create: whether a missing file may be created (not by commands that only read).

    Raises:
        KeyFileMissingError: the file is missing and stored payloads are encrypted (a
            new key could not read them, so none is made), or ``create`` is false.
    """
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
        return path.read_text().strip()
    needed = stored_key_id() if stored_key_id is not None else None
    if needed is not None:
        raise KeyFileMissingError(
            f"the key file {path} is missing, and the database beside it holds payloads "
            f"encrypted with key {needed!r}; no new key was made, since it could not read "
            f"them. Put the key file back at {path} (a line 'KEY_ID:BASE64', mode 0600), or "
            f"give key {needed!r} with encryption_key= or $DURABLY_ENCRYPTION_KEY."
        )
    if not create:
        raise KeyFileMissingError(
            f"no key: there is no key file {path}; put it back there, or give the key "
            "with --key / encryption_key= or $DURABLY_ENCRYPTION_KEY"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_key()
    # Written whole beside it, then linked into place (which fails if the file exists):
    # another process never reads the key file half written (empty).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (key + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        # Another process made it meanwhile: use theirs.
        return path.read_text().strip()
    finally:
        os.unlink(tmp)
    sys.stderr.write(
        f"durably: created the encryption key file {path} (mode 0600). Keep it with the "
        "database: without it the stored payloads cannot be read.\n"
    )
    return key


def is_sealed(payload: bytes | None) -> bool:
    """True if ``payload`` is encrypted (not plaintext JSON)."""
    return payload is not None and payload[:4] == MAGIC


def plain_length(payload: bytes) -> int:
    """The length of a payload's plaintext, without decrypting it (AES-GCM adds a fixed
    overhead: the header, the key id, the nonce and the tag)."""
    if not is_sealed(payload):
        return len(payload)
    return len(payload) - (5 + payload[4] + _NONCE + _TAG)


def sealed_key_id(payload: bytes) -> str:
    """The id of the key a sealed payload was encrypted with."""
    n = payload[4]
    return payload[5 : 5 + n].decode()


def event_aad(run_id: str, seq: int, type_: str, call: int | None) -> bytes:
    """The associated data binding an event payload to its place."""
    return f"durably/event\x00{run_id}\x00{seq}\x00{type_}\x00{call}".encode()


def chunk_aad(run_id: str, namespace: str, index: int) -> bytes:
    """The associated data binding a stream chunk to its place."""
    return f"durably/chunk\x00{run_id}\x00{namespace}\x00{index}".encode()


class Sealer:
    """Seals and opens payloads with a :class:`KeyRing` (``None``: encryption off, and
    sealed payloads cannot be opened)."""

    def __init__(self, ring: KeyRing | None) -> None:
        self.ring = ring
        self._aeads: OrderedDict[tuple[str, str], AESGCM] = OrderedDict()
        self._digest_keys: dict[str, bytes] = {}
        self._headers: dict[str, bytes] = {}  # key id -> what a sealed payload starts with
        self._last: tuple[str, str, AESGCM] | None = None  # the last (run, key id, AEAD)

    @property
    def enabled(self) -> bool:
        """Whether new payloads are encrypted."""
        return self.ring is not None

    def _aead(self, key_id: str, run_id: str) -> AESGCM:
        last = self._last
        if last is not None and last[0] == run_id and last[1] == key_id:
            return last[2]  # a run's events come in a row: its key, again
        cache_key = (key_id, run_id)
        aead = self._aeads.get(cache_key)
        if aead is not None:
            self._aeads.move_to_end(cache_key)
            self._last = (run_id, key_id, aead)
            return aead
        assert self.ring is not None
        master = self.ring.keys.get(key_id)
        if master is None:
            raise DecryptionError(
                f"a payload of run {run_id} was encrypted with key {key_id!r}, which is not "
                f"in the key ring (known: {', '.join(self.ring.keys)}); add that key "
                "(KEY_ID:BASE64, comma separated, newest first)"
            )
        data_key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"durably run key\x00" + run_id.encode(),
        ).derive(master)
        aead = self._aeads[cache_key] = AESGCM(data_key)
        self._last = (run_id, key_id, aead)
        if len(self._aeads) > 4096:
            self._aeads.popitem(last=False)
        return aead

    def _seal(self, run_id: str, aad: bytes, payload: bytes) -> bytes:
        if self.ring is None:
            return payload
        kid = self.ring.current
        nonce = os.urandom(_NONCE)
        ct = self._aead(kid, run_id).encrypt(nonce, payload, aad)
        header = self._headers.get(kid)
        if header is None:
            kid_b = kid.encode()
            header = self._headers[kid] = MAGIC + bytes([len(kid_b)]) + kid_b
        return b"".join((header, nonce, ct))

    def _open(self, run_id: str, aad: bytes, payload: bytes, what: Callable[[], str]) -> bytes:
        # ``what`` names the payload in errors; it is formatted only for one (a replay
        # opens a payload per recorded step).
        if not is_sealed(payload):
            return payload
        if self.ring is None:
            raise DecryptionError(
                f"{what()} is encrypted and no key was given; set the key with "
                "Workflows(encryption_key=...) or $DURABLY_ENCRYPTION_KEY"
            )
        try:
            n = payload[4]
            kid = payload[5 : 5 + n].decode()
            nonce = payload[5 + n : 5 + n + _NONCE]
            ct = payload[5 + n + _NONCE :]
            return self._aead(kid, run_id).decrypt(nonce, ct, aad)
        except InvalidTag:
            raise DecryptionError(
                f"{what()} does not decrypt: the key is wrong, or the stored bytes were "
                "changed or moved from another run or event. Nothing was changed."
            ) from None
        except (IndexError, UnicodeDecodeError):
            raise DecryptionError(f"{what()} is not a well-formed encrypted payload") from None

    # -- hook tokens --------------------------------------------------------------------
    #
    # A hook's token is a bearer secret: whoever has it can resume the hook. The hook
    # index and the events hold only ``HMAC-SHA256(K, token)``, K derived from a master
    # key with HKDF, so a reader of the database cannot resume a hook; the token itself
    # is kept sealed in the ``hook_created`` payload (a replay gives the body its token).
    #
    # New digests use the ring's *oldest* key (the last listed): a rotation puts the new
    # key first and keeps the old ones, so processes with the old ring and the new one
    # compute the same digest (conflicts between them are still found). A lookup tries
    # every key of the ring, so hooks made before the ring changed stay resumable while
    # their key stays in it.

    def _digest(self, key_id: str | None, token: str) -> str:
        if key_id is None:
            key = _UNKEYED_DIGEST
        else:
            assert self.ring is not None
            found = self._digest_keys.get(key_id)
            if found is None:
                found = self._digest_keys[key_id] = HKDF(
                    algorithm=hashes.SHA256(),
                    length=32,
                    salt=None,
                    info=b"durably hook token digest",
                ).derive(self.ring.keys[key_id])
            key = found
        mac = hmac.new(key, token.encode(), hashlib.sha256).hexdigest()
        return HOOK_DIGEST_PREFIX + mac

    def hook_digest(self, token: str) -> str:
        """The index key of a new hook holding ``token`` (a keyed digest of it; a plain
        hash when encryption is off)."""
        if self.ring is None:
            return self._digest(None, token)
        return self._digest(list(self.ring.keys)[-1], token)

    def hook_digests(self, token: str) -> list[str]:
        """Every index key a live hook holding ``token`` may have (one per key)."""
        if self.ring is None:
            return [self._digest(None, token)]
        return [self._digest(kid, token) for kid in reversed(self.ring.keys)]

    def seal_event(
        self, run_id: str, seq: int, type_: str, call: int | None, payload: bytes
    ) -> bytes:
        """Encrypt an event payload for its place in the log."""
        return self._seal(run_id, event_aad(run_id, seq, type_, call), payload)

    def open_event(
        self, run_id: str, seq: int, type_: str, call: int | None, payload: bytes
    ) -> bytes:
        """Decrypt an event payload (plaintext passes through)."""
        return self._open(
            run_id,
            event_aad(run_id, seq, type_, call),
            payload,
            lambda: f"the payload of event {seq} ({type_}) of run {run_id}",
        )

    def seal_chunk(self, run_id: str, namespace: str, index: int, payload: bytes) -> bytes:
        """Encrypt a stream chunk for its place in the stream."""
        return self._seal(run_id, chunk_aad(run_id, namespace, index), payload)

    def open_chunk(self, run_id: str, namespace: str, index: int, payload: bytes) -> bytes:
        """Decrypt a stream chunk (plaintext passes through)."""
        return self._open(
            run_id,
            chunk_aad(run_id, namespace, index),
            payload,
            lambda: f"chunk {index} of stream {namespace or '(default)'!r} of run {run_id}",
        )


def sealer_of(world: object) -> Sealer:
    """The sealer of a registry's world (an ``EncryptedWorld``); encryption off else."""
    sealer = getattr(world, "sealer", None)
    return sealer if isinstance(sealer, Sealer) else Sealer(None)


_memory_keys: dict[str, str] = {}


def resolve_keyring(
    world_url: str, key: str | bytes | bool | None, *, create: bool = True
) -> KeyRing | None:
    """The key ring for a world: the argument, then ``$DURABLY_ENCRYPTION_KEY``, then the
    world's default (a key file beside an SQLite database, created on first use; an
    in-process key for ``memory://``). ``False`` (or the variable set to ``off``) turns
    encryption off. Other worlds have no default. ``create=False`` (commands that only
    read) never makes a key file.

    Raises:
        ConfigurationError: no key for a world that needs one given (names `durably keygen`).
        KeyFileMissingError: the key file is missing and the database beside it holds
            encrypted payloads (or ``create`` is false).
    """
    if key is False:
        return None
    if key is None or key is True:
        env = os.environ.get("DURABLY_ENCRYPTION_KEY")
        if env is not None and env.strip().lower() in ("off", "none", "false", "0"):
            return None
        key = env or None
    if key:
        return KeyRing.parse(key)
    policy = key_policy(world_url)  # the world says where its default key lives
    if policy.source == "process":
        return KeyRing.parse(_memory_keys.setdefault(world_url, new_key("mem")))
    if policy.source == "file" and policy.path is not None:
        text = load_or_create_key_file(policy.path, policy.stored_key_id, create=create)
        return KeyRing.parse(text)
    raise ConfigurationError(
        f"the world {redact_url(world_url)!r} needs an encryption key: every payload is "
        "encrypted before it is stored. Make one with `durably keygen` and pass it as "
        "Workflows(encryption_key=...) or $DURABLY_ENCRYPTION_KEY (the same key on every "
        "worker); set it to 'off' to store payloads in plaintext."
    )

"""Connector secrets sealed at rest (API keys, database passwords in ``tb_connector_config``).

The secrets column holds ``{"sealed": 1, "token": "<Fernet token>"}``: AES-128-CBC with an
HMAC-SHA256 over it (the ``cryptography`` package's Fernet), so a copy of the database, a backup
or a SQL console shows neither the values nor lets anyone change one unnoticed.

The key: ``TONGBAN_SECRETS_KEY`` (any passphrase, turned into a key with HKDF-SHA256; several
separated by commas: the first seals, every one opens, which is how a key is rotated), else the
key file ``TONGBAN_SECRETS_FILE`` (default ``$TONGBAN_HOME/secrets.key``, created once with mode
0600). Every process of one installation (web, workers, the command line) must see the same key:
on several machines set ``TONGBAN_SECRETS_KEY``.

Secrets stored before sealing (a plain object) are still read; ``Engine.upgrade`` seals them.
Secrets sealed with a key this process does not have are read as ``Unreadable`` (an empty mapping
that knows why): a connector using them fails with a clear error, the admin page says so, and
setting the secrets again seals them with the current key.
"""

from __future__ import annotations

import base64
import json
import os
import secrets as _random
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_ENV, FILE_ENV = "TONGBAN_SECRETS_KEY", "TONGBAN_SECRETS_FILE"
_cache: dict[tuple, MultiFernet] = {}
_lock = threading.Lock()


class Unreadable(dict):
    """Secrets sealed with a key this process does not have: empty, and says so. Written back
    unchanged, the sealed value it came from is stored again (never replaced by nothing)."""

    reason = (f"the connector's secrets were sealed with another key; set {KEY_ENV} (or the key file) "
              "to that key, or enter the secrets again")

    def __init__(self, stored: dict):
        super().__init__()
        self.stored = stored


def key_file() -> Path:
    default = Path(os.environ.get("TONGBAN_HOME", "var")) / "secrets.key"
    return Path(os.environ.get(FILE_ENV) or default)


def _derive(passphrase: str) -> bytes:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tongban", info=b"connector secrets").derive(
        passphrase.encode())
    return base64.urlsafe_b64encode(raw)


def _file_passphrase(path: Path) -> str:
    """The key file's content; created at most once, atomically, even by processes racing to create it."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{_random.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_random.token_urlsafe(32) + "\n")
        try:
            os.link(tmp, path)  # fails if another process created it first: then theirs is the key
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def box() -> MultiFernet:
    env = os.environ.get(KEY_ENV, "")
    passphrases = [p.strip() for p in env.split(",") if p.strip()]
    cache_key = ("env", tuple(passphrases)) if passphrases else ("file", str(key_file().resolve()))
    with _lock:
        found = _cache.get(cache_key)
        if found is None:
            if not passphrases:
                passphrases = [_file_passphrase(key_file())]
            found = _cache[cache_key] = MultiFernet([Fernet(_derive(p)) for p in passphrases])
        return found


def seal(values: dict) -> dict:
    if isinstance(values, Unreadable):
        return values.stored
    body = json.dumps(values or {}, ensure_ascii=False, sort_keys=True).encode()
    return {"sealed": 1, "token": box().encrypt(body).decode()}


def is_sealed(stored) -> bool:
    return isinstance(stored, dict) and stored.get("sealed") == 1 and isinstance(stored.get("token"), str)


def unseal(stored) -> dict:
    if stored is None:
        return {}
    if not is_sealed(stored):
        return dict(stored)  # stored before sealing: readable as it is, sealed by the next write
    try:
        return json.loads(box().decrypt(stored["token"].encode()))
    except InvalidToken:
        return Unreadable(stored)


def seal_stored(conn) -> int:
    """Seal the secrets stored before sealing existed (run by the schema upgrade); returns how many
    connectors' secrets were sealed now. Sealed ones are left as they are."""
    from sqlalchemy import JSON, column, inspect, select, table, update

    if not inspect(conn).has_table("tb_connector_config"):
        return 0
    t = table("tb_connector_config", column("id"), column("secrets", JSON))
    done = 0
    for row_id, stored in conn.execute(select(t.c.id, t.c.secrets)).all():
        if isinstance(stored, str):
            stored = json.loads(stored)
        if stored is None or is_sealed(stored):
            continue
        conn.execute(update(t).where(t.c.id == row_id).values(secrets=seal(dict(stored))))
        done += 1
    return done

"""Connector secrets are sealed at rest (engine/sealing.py): unreadable in the database, usable by the
engine, rotated with a second key, legacy plain rows sealed by the upgrade, and a wrong key is a
clear error that never destroys what is stored."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest
from sqlalchemy import text

from engine import sealing
from engine.errors import ConnectorError

SECRET = "k-3f9a1c0e7b"


@pytest.fixture(autouse=True)
def key_env(monkeypatch, tmp_path):
    monkeypatch.delenv(sealing.KEY_ENV, raising=False)
    monkeypatch.setenv(sealing.FILE_ENV, str(tmp_path / "keys" / "secrets.key"))


def stored(engine, name="exchange"):
    with engine.db.connect() as c:
        raw = c.execute(text("SELECT secrets FROM tb_connector_config WHERE name = :n"), {"n": name}).scalar()
    return raw if isinstance(raw, dict) else json.loads(raw)


def test_secrets_are_sealed_in_the_database_and_usable_by_the_engine(engine, tmp_path):
    engine.set_connector_config("exchange", {"base_url": "http://127.0.0.1:1"}, {"api_key": SECRET}, actor="admin")
    raw = stored(engine)
    assert sealing.is_sealed(raw) and SECRET not in json.dumps(raw)
    with engine.db.connect() as c:  # nowhere in the row
        row = c.execute(text("SELECT * FROM tb_connector_config")).all()
    assert SECRET not in repr(row)
    [cfg] = [c for c in engine.connector_configs() if c["name"] == "exchange"]
    assert cfg["secrets"]["api_key"] == "set"
    # the connector the engine builds has the key
    with engine.readers() as s:
        from engine.pulls import configs

        conn = engine.connector_pool.get("exchange", configs(s, ["exchange"])["exchange"])
    assert conn.secrets == {"api_key": SECRET}
    key_file = tmp_path / "keys" / "secrets.key"
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600


def test_a_rotated_key_still_opens_old_secrets_and_seals_new_ones(engine, monkeypatch):
    monkeypatch.setenv(sealing.KEY_ENV, "old passphrase")
    engine.set_connector_config("exchange", {}, {"api_key": SECRET}, actor="admin")
    old_token = stored(engine)["token"]
    monkeypatch.setenv(sealing.KEY_ENV, "new passphrase,old passphrase")
    with engine.readers() as s:
        from engine.pulls import configs

        assert configs(s, ["exchange"])["exchange"].secrets == {"api_key": SECRET}
    engine.set_connector_config("exchange", {}, {"api_key": SECRET + "2"}, actor="admin")
    monkeypatch.setenv(sealing.KEY_ENV, "new passphrase")  # the old key retired
    with engine.readers() as s:
        assert configs(s, ["exchange"])["exchange"].secrets == {"api_key": SECRET + "2"}
    assert stored(engine)["token"] != old_token


def test_a_wrong_key_is_a_clear_error_and_keeps_what_is_stored(engine, monkeypatch):
    monkeypatch.setenv(sealing.KEY_ENV, "the right key")
    engine.set_connector_config("exchange", {"base_url": "http://127.0.0.1:1"}, {"api_key": SECRET}, actor="admin")
    before = stored(engine)
    monkeypatch.setenv(sealing.KEY_ENV, "a wrong key")
    [cfg] = [c for c in engine.connector_configs() if c["name"] == "exchange"]
    assert cfg["secrets"]["api_key"] == "unreadable" and "another key" in cfg["secrets_error"]
    engine.connector_pool.forget()
    with engine.readers() as s:
        from engine.pulls import configs

        cfg_row = configs(s, ["exchange"])["exchange"]
    with pytest.raises(ConnectorError, match="sealed with another key") as err:
        engine.connector_pool.get("exchange", cfg_row)
    assert err.value.retryable is False
    # editing the configuration without secrets keeps the sealed ones exactly
    engine.set_connector_config("exchange", {"base_url": "http://127.0.0.1:2"}, actor="admin")
    assert stored(engine) == before
    monkeypatch.setenv(sealing.KEY_ENV, "the right key")
    with engine.readers() as s:
        assert configs(s, ["exchange"])["exchange"].secrets == {"api_key": SECRET}
    # entering secrets again under the wrong key replaces them all
    monkeypatch.setenv(sealing.KEY_ENV, "a wrong key")
    engine.set_connector_config("exchange", {}, {"api_key": "fresh"}, actor="admin")
    with engine.readers() as s:
        assert configs(s, ["exchange"])["exchange"].secrets == {"api_key": "fresh"}
    assert engine.verify_audit().ok


def test_the_upgrade_seals_secrets_stored_in_plain(engine):
    engine.set_connector_config("exchange", {}, {"api_key": SECRET}, actor="admin")
    with engine.db.begin() as c:  # as an installation from before sealing had it
        c.execute(text("UPDATE tb_connector_config SET secrets = :s WHERE name = 'exchange'"),
                  {"s": json.dumps({"api_key": SECRET})})
    assert stored(engine) == {"api_key": SECRET}
    with engine.readers() as s:  # still read as it is
        from engine.pulls import configs

        assert configs(s, ["exchange"])["exchange"].secrets == {"api_key": SECRET}
    engine.upgrade()
    assert sealing.is_sealed(stored(engine)) and SECRET not in json.dumps(stored(engine))
    with engine.readers() as s:
        assert configs(s, ["exchange"])["exchange"].secrets == {"api_key": SECRET}
    engine.upgrade()  # sealed ones are left alone
    assert sealing.is_sealed(stored(engine))


def _passphrase(path: str, queue) -> None:
    os.environ[sealing.FILE_ENV] = path
    queue.put(sealing._file_passphrase(sealing.key_file()))


def test_processes_racing_to_create_the_key_file_agree_on_one_key(tmp_path):
    path = str(tmp_path / "race" / "secrets.key")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_passphrase, args=(path, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    keys = {queue.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
    assert len(keys) == 1 and len(keys.pop()) >= 40
    assert sorted(os.listdir(tmp_path / "race")) == ["secrets.key"]  # no temporary file left behind

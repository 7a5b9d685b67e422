"""Users, roles, the org tree, passwords (argon2), bearer tokens and sign-in rate limiting."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.errors import NotAllowed, NotFound
from engine.models import User


def test_org_tree_and_users(engine):
    engine.add_department("p", "示范省", 1)
    engine.add_department("p.c", "示范市", 2, "p")
    engine.add_department("p.c.d", "开发区", 3, "p.c")
    with pytest.raises(NotAllowed, match="cannot sit under"):
        engine.add_department("x", "错层", 2, "p.c.d")
    with pytest.raises(NotFound):
        engine.add_department("y", "无上级", 4, "nope")
    levels = {d["code"]: (d["level_name"], d["parent"]) for d in engine.departments()}
    assert levels == {"p": ("省", None), "p.c": ("市", "p"), "p.c.d": ("区县", "p.c")}
    u = engine.add_user("clerk1", ["window"], "窗口一", roles=["clerk"], password="secret-pass",
                        department="p.c.d")
    assert u["roles"] == ["clerk"] and u["department"] == "p.c.d" and u["groups"] == ["window"]
    with pytest.raises(NotAllowed, match="unknown role"):
        engine.add_user("bad", roles=["superuser"])
    with pytest.raises(NotAllowed, match="8 characters"):
        engine.add_user("short", password="abc")


def test_department_filter_covers_the_subtree(engine):
    from tests.conftest import example_files

    engine.add_department("p", "示范省", 1)
    engine.add_department("p.c", "示范市", 2, "p")
    engine.set_group_department("window", "p.c")
    engine.deploy(example_files("exclusive_gateway.bpmn"))
    iid = engine.start("exclusive_gateway", {})["instance_id"]
    assert [t["instance_id"] for t in engine.tasks(department="p")] == [iid]
    engine.add_department("q", "他省", 1)
    assert engine.tasks(department="q") == []


def test_password_is_hashed_and_checked(engine):
    engine.add_user("clerk1", ["window"], password="secret-pass")
    with engine.readers() as s:
        stored = s.query(User).filter_by(name="clerk1").one().password_hash
    assert stored.startswith("$argon2") and "secret-pass" not in stored
    assert engine.sign_in("clerk1", "secret-pass", "10.0.0.1")["name"] == "clerk1"
    assert engine.sign_in("clerk1", "wrong-pass", "10.0.0.1") is None
    assert engine.sign_in("nobody", "whatever1", "10.0.0.1") is None
    engine.set_active("clerk1", False)
    assert engine.sign_in("clerk1", "secret-pass", "10.0.0.2") is None


def test_sign_in_rate_limit_per_user_and_window(engine, clock):
    engine.add_user("clerk1", password="secret-pass")
    for _ in range(5):
        assert engine.sign_in("clerk1", "bad-guess", "10.0.0.9") is None
    with pytest.raises(NotAllowed, match="too many"):
        engine.sign_in("clerk1", "secret-pass", "10.0.0.9")  # right password, still locked at that desk
    # the clerk at another desk is not locked out by someone guessing at the first one
    assert engine.sign_in("clerk1", "secret-pass", "10.0.0.8")["name"] == "clerk1"
    clock.advance(timedelta(minutes=16))
    assert engine.sign_in("clerk1", "secret-pass", "10.0.0.9")["name"] == "clerk1"
    actions = [e["action"] for e in engine.trail()]
    assert actions.count("sign_in.failed") == 5 and "sign_in.blocked" in actions and actions.count("sign_in") == 2


def test_guessing_one_name_from_many_addresses_locks_that_name(engine, clock):
    engine.add_user("clerk1", password="secret-pass")
    engine.add_user("clerk2", password="other-pass")
    for i in range(engine.LOGIN_LIMIT_USER):
        assert engine.sign_in("clerk1", "bad-guess", f"10.1.0.{i}") is None  # 1 try per address
    with pytest.raises(NotAllowed, match="too many"):
        engine.sign_in("clerk1", "secret-pass", "10.2.0.1")
    assert engine.sign_in("clerk2", "other-pass", "10.2.0.1")["name"] == "clerk2"  # other names unaffected
    blocked = [e for e in engine.trail() if e["action"] == "sign_in.blocked"]
    assert blocked[-1]["detail"] == {"client": "10.2.0.1", "by": "user"}
    clock.advance(timedelta(minutes=16))
    assert engine.sign_in("clerk1", "secret-pass", "10.2.0.1")["name"] == "clerk1"


def test_spraying_many_names_from_one_address_locks_that_address(engine, clock):
    engine.add_user("clerk1", password="secret-pass")
    for i in range(engine.LOGIN_LIMIT_CLIENT):
        assert engine.sign_in(f"name{i}", "Winter2026!", "10.3.0.1") is None
    with pytest.raises(NotAllowed, match="too many"):
        engine.sign_in("clerk1", "secret-pass", "10.3.0.1")
    assert engine.sign_in("clerk1", "secret-pass", "10.3.0.2")["name"] == "clerk1"
    # failures older than the window are not kept
    clock.advance(timedelta(minutes=16))
    assert engine.sign_in("nobody", "x", "10.3.0.3") is None
    with engine.readers() as s:
        from engine.models import LoginFailure
        assert {f.key for f in s.query(LoginFailure)} == {"pair:10.3.0.3|nobody", "user:nobody", "client:10.3.0.3"}


def test_a_few_wrong_guesses_then_the_right_password_start_the_desk_count_again(engine):
    engine.add_user("clerk1", password="secret-pass")
    for _ in range(3):
        for _ in range(4):
            assert engine.sign_in("clerk1", "typo-pass", "10.4.0.1") is None
        assert engine.sign_in("clerk1", "secret-pass", "10.4.0.1")["name"] == "clerk1"


def test_tokens_are_stored_hashed_and_can_be_revoked(engine):
    engine.add_user("robot", roles=["clerk"])
    issued = engine.issue_token("robot", "integration", actor="admin")
    assert issued["token"].startswith("tb_")
    assert engine.user_for_token(issued["token"])["name"] == "robot"
    assert engine.user_for_token(issued["token"] + "x") is None
    listed = engine.tokens()
    assert listed[0]["name"] == "integration" and "token" not in listed[0]
    engine.revoke_token(issued["id"], actor="admin")
    assert engine.user_for_token(issued["token"]) is None
    engine.set_active("robot", False)
    again = engine.issue_token  # a token of an inactive user does not sign in
    with pytest.raises(NotFound):
        again("robot", "x", actor="admin")

"""Users and groups (departments, roles and lanes all resolve to groups)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import NotAllowed, NotFound
from .models import ApiToken, Department, Group, Membership, User


def ensure_group(session: Session, name: str, display_name: str = "") -> Group:
    group = session.scalars(select(Group).where(Group.name == name)).first()
    if group is None:
        group = Group(name=name, display_name=display_name or name)
        session.add(group)
        session.flush()
    return group


def add_user(session: Session, clock, name: str, groups: list[str] = (), display_name: str = "") -> User:
    """Create the user or add the groups to an existing one."""
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        user = User(name=name, display_name=display_name or name, created_at=clock.now())
        session.add(user)
    for g in groups:
        group = ensure_group(session, g)
        if group not in user.groups:
            user.groups.append(group)
    session.flush()
    return user


def no_such_user(name: str) -> NotFound:
    return NotFound(f"no user '{name}' (add one with: tongban users add {name} --group G)")


def get_user(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None or not user.active:
        raise no_such_user(name)
    return user


NAME_SEP = "\x1f"  # between the names of ``group_names_joined`` (a control character no name contains)


def active_user_id(name):
    """SELECT of the id of the active user ``name`` (a value or a bind parameter)."""
    return select(User.id).where(User.name == name, User.active.is_(True))


def group_names_joined(name):
    """SELECT of the active user's group names joined by ``NAME_SEP`` in one value (NULL when none),
    for statements that read a user's groups along with other things; ``split_names`` reads it."""
    return (select(func.aggregate_strings(Group.name, NAME_SEP)).select_from(Membership)
            .join(Group, Group.id == Membership.group_id).join(User, User.id == Membership.user_id)
            .where(User.name == name, User.active.is_(True)))


def split_names(joined: str | None) -> set[str]:
    return set(joined.split(NAME_SEP)) if joined else set()


def groups_of(session: Session, name: str) -> set[str]:
    """The user's group names in one query; NotFound if there is no such active user."""
    rows = session.execute(
        select(User.id, Group.name).outerjoin(Membership, Membership.user_id == User.id)
        .outerjoin(Group, Group.id == Membership.group_id).where(User.name == name, User.active.is_(True))).all()
    if not rows:
        raise no_such_user(name)
    return {g for _, g in rows if g}


def group_names(user: User) -> set[str]:
    return {g.name for g in user.groups}


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


# ---- sign-in: passwords, roles, departments, tokens -------------------------------------

ROLES = ("designer", "clerk", "monitor", "admin")
LEVELS = {1: "省", 2: "市", 3: "区县", 4: "街镇", 5: "村社区"}
_hasher = None


def _argon2():
    global _hasher
    if _hasher is None:
        from argon2 import PasswordHasher

        _hasher = PasswordHasher()
    return _hasher


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise NotAllowed("a password needs at least 8 characters")
    return _argon2().hash(password)


_DUMMY_HASH: list[str] = []


def check_password(user: User | None, password: str) -> bool:
    """Whether the password is the user's. Without a user (or a password) a hash is verified all
    the same, so that the answer takes as long and does not tell whether the name exists."""
    from argon2.exceptions import InvalidHashError, VerificationError

    if user is None or not user.password_hash or not user.active:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(_argon2().hash(secrets.token_urlsafe(16)))
        try:
            _argon2().verify(_DUMMY_HASH[0], password)
        except (VerificationError, InvalidHashError):
            pass
        return False
    try:
        return _argon2().verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def set_roles(user: User, roles) -> None:
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise NotAllowed(f"unknown role(s) {sorted(unknown)}; roles are {', '.join(ROLES)}")
    user.roles = sorted(set(roles))


def ensure_department(session: Session, code: str, name: str, level: int, parent_code: str | None = None):
    if level not in LEVELS:
        raise NotAllowed(f"department level must be 1..5 ({', '.join(LEVELS.values())})")
    dept = session.scalars(select(Department).where(Department.code == code)).first()
    parent = None
    if parent_code:
        parent = session.scalars(select(Department).where(Department.code == parent_code)).first()
        if parent is None:
            raise NotFound(f"no department '{parent_code}'")
        if parent.level >= level:
            raise NotAllowed(f"department '{code}' (level {level}) cannot sit under level {parent.level}")
    if dept is None:
        dept = Department(code=code, name=name, level=level, parent_id=parent.id if parent else None)
        session.add(dept)
    else:
        dept.name, dept.level, dept.parent_id = name, level, parent.id if parent else None
    session.flush()
    return dept


def department_subtree(session: Session, department_id: int) -> set[int]:
    """Ids of the department and everything under it."""
    rows = session.execute(select(Department.id, Department.parent_id)).all()
    children: dict[int | None, list[int]] = {}
    for i, p in rows:
        children.setdefault(p, []).append(i)
    out, stack = set(), [department_id]
    while stack:
        d = stack.pop()
        if d not in out:
            out.add(d)
            stack.extend(children.get(d, []))
    return out


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, clock, user_name: str, name: str, created_by: str) -> tuple[ApiToken, str]:
    get_user(session, user_name)
    secret = "tb_" + secrets.token_urlsafe(32)
    row = ApiToken(name=name, token_hash=token_digest(secret), user_name=user_name, created_by=created_by,
                   created_at=clock.now())
    session.add(row)
    session.flush()
    return row, secret

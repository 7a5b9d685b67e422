"""Users and groups (departments, roles and lanes all resolve to groups)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import NotFound
from .models import Group, Membership, User


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


def get_user(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None or not user.active:
        raise NotFound(f"no user '{name}' (add one with: tongban users add {name} --group G)")
    return user


def groups_of(session: Session, name: str) -> set[str]:
    """The user's group names in one query; NotFound if there is no such active user."""
    rows = session.execute(
        select(User.id, Group.name).outerjoin(Membership, Membership.user_id == User.id)
        .outerjoin(Group, Group.id == Membership.group_id).where(User.name == name, User.active.is_(True))).all()
    if not rows:
        raise NotFound(f"no user '{name}' (add one with: tongban users add {name} --group G)")
    return {g for _, g in rows if g}


def group_names(user: User) -> set[str]:
    return {g.name for g in user.groups}


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))

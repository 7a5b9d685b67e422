"""Demo data for the embedded default: an org tree, groups in departments, one user per role
(and one clerk per department), the example processes. Idempotent: safe on every start."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_PASSWORD = "tongban-demo"

DEPARTMENTS = [
    # code, name, level, parent
    ("sx", "示范省", 1, None),
    ("sx.sz", "示范市", 2, "sx"),
    ("sx.sz.kf", "开发区", 3, "sx.sz"),
    ("sx.sz.kf.zwfw", "开发区政务服务中心", 3, "sx.sz"),
    ("sx.sz.kf.scj", "开发区市场监管局", 3, "sx.sz"),
    ("sx.sz.kf.yc", "开发区烟草专卖局", 3, "sx.sz"),
    ("sx.sz.kf.yj", "开发区药品监管分局", 3, "sx.sz"),
    ("sx.sz.kf.hd", "湖东街道", 4, "sx.sz.kf"),
    ("sx.sz.kf.hd.xy", "新苑社区", 5, "sx.sz.kf.hd"),
]

GROUPS = {
    # group: (display name, department)
    "window": ("综合窗口", "sx.sz.kf.zwfw"),
    "approval": ("审批科", "sx.sz.kf.zwfw"),
    "leader": ("分管领导", "sx.sz.kf.zwfw"),
    "market": ("市场监管", "sx.sz.kf.scj"),
    "tobacco": ("烟草专卖", "sx.sz.kf.yc"),
    "drug": ("药品监管", "sx.sz.kf.yj"),
}

# name: (display name, roles, groups, department)
USERS = {
    "window_clerk": ("王窗口", ["clerk"], ["window"], "sx.sz.kf.zwfw"),
    "approver": ("李审批", ["clerk"], ["approval"], "sx.sz.kf.zwfw"),
    "market_clerk": ("张市监", ["clerk"], ["market"], "sx.sz.kf.scj"),
    "tobacco_clerk": ("赵烟草", ["clerk"], ["tobacco"], "sx.sz.kf.yc"),
    "drug_clerk": ("陈药监", ["clerk"], ["drug"], "sx.sz.kf.yj"),
    "leader": ("周领导", ["clerk"], ["leader"], "sx.sz.kf.zwfw"),
    "designer": ("吴设计", ["designer"], [], "sx.sz"),
    "monitor": ("郑监察", ["monitor"], [], "sx.sz"),
    "admin": ("系统管理员", ["admin"], list(GROUPS), "sx"),
}


def seed(engine, *, password: str = DEMO_PASSWORD, processes: bool = True) -> list:
    """Create (or refresh) the demo org, users and processes; returns the deployed versions."""
    existing = {d["code"] for d in engine.departments()}
    for code, name, level, parent in DEPARTMENTS:
        if code not in existing:
            engine.add_department(code, name, level, parent)
    known_groups = {g["name"]: g for g in engine.groups()}
    for group, (_display, dept) in GROUPS.items():
        if known_groups.get(group, {}).get("department") != dept:
            engine.set_group_department(group, dept)
    users = {u["name"] for u in engine.users()}
    for name, (display, roles, groups, dept) in USERS.items():
        if name not in users:
            engine.add_user(name, groups, display, roles=roles, password=password, department=dept)
    deployed = []
    if processes:
        deployed = engine.deploy_paths([ROOT / "bpmn_examples"], actor="system")
    return deployed

"""Demo data for the embedded default: an org tree, groups in departments, one user per role
(and one clerk per department), the example processes and the process library (processes/).
Idempotent: safe on every start."""

from __future__ import annotations

import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_PASSWORD = "tongban-demo"
log = logging.getLogger("tongban.demo")

DEPARTMENTS = [
    # code, name, level, parent
    ("sx", "示范省", 1, None),
    ("sx.sz", "示范市", 2, "sx"),
    ("sx.sz.kf", "开发区", 3, "sx.sz"),
    ("sx.sz.kf.zwfw", "开发区政务服务中心", 3, "sx.sz"),
    ("sx.sz.kf.scj", "开发区市场监管局", 3, "sx.sz"),
    ("sx.sz.kf.yc", "开发区烟草专卖局", 3, "sx.sz"),
    ("sx.sz.kf.yj", "开发区药品监管分局", 3, "sx.sz"),
    ("sx.sz.kf.wl", "开发区文化和旅游局", 3, "sx.sz"),
    ("sx.sz.kf.xf", "开发区消防救援大队", 3, "sx.sz"),
    ("sx.sz.kf.cg", "开发区城市管理局", 3, "sx.sz"),
    ("sx.sz.kf.sw", "开发区税务局", 3, "sx.sz"),
    ("sx.sz.kf.rs", "开发区人力资源和社会保障局", 3, "sx.sz"),
    ("sx.sz.kf.tj", "开发区统计局", 3, "sx.sz"),
    ("sx.sz.kf.wj", "开发区卫生健康委", 3, "sx.sz"),
    ("sx.sz.kf.gjj", "开发区住房公积金中心", 3, "sx.sz"),
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
    "culture": ("文化旅游（出版物）", "sx.sz.kf.wl"),
    "fire": ("消防救援", "sx.sz.kf.xf"),
    "urban": ("城市管理（户外招牌）", "sx.sz.kf.cg"),
    "registry": ("登记注册（市场监管局登记科）", "sx.sz.kf.scj"),
    "tax": ("税务", "sx.sz.kf.sw"),
    "social": ("人力社保", "sx.sz.kf.rs"),
    "stats": ("统计", "sx.sz.kf.tj"),
    "health": ("卫生健康", "sx.sz.kf.wj"),
    "fund": ("住房公积金", "sx.sz.kf.gjj"),
}

# name: (display name, roles, groups, department)
USERS = {
    "window_clerk": ("王窗口", ["clerk"], ["window"], "sx.sz.kf.zwfw"),
    "approver": ("李审批", ["clerk"], ["approval"], "sx.sz.kf.zwfw"),
    "market_clerk": ("张市监", ["clerk"], ["market"], "sx.sz.kf.scj"),
    "tobacco_clerk": ("赵烟草", ["clerk"], ["tobacco"], "sx.sz.kf.yc"),
    "drug_clerk": ("陈药监", ["clerk"], ["drug"], "sx.sz.kf.yj"),
    "leader": ("周领导", ["clerk"], ["leader"], "sx.sz.kf.zwfw"),
    "culture_clerk": ("孙文旅", ["clerk"], ["culture"], "sx.sz.kf.wl"),
    "fire_clerk": ("冯消防", ["clerk"], ["fire"], "sx.sz.kf.xf"),
    "urban_clerk": ("韩城管", ["clerk"], ["urban"], "sx.sz.kf.cg"),
    "registry_clerk": ("何登记", ["clerk"], ["registry"], "sx.sz.kf.scj"),
    "tax_clerk": ("许税务", ["clerk"], ["tax"], "sx.sz.kf.sw"),
    "social_clerk": ("邓社保", ["clerk"], ["social"], "sx.sz.kf.rs"),
    "stats_clerk": ("曹统计", ["clerk"], ["stats"], "sx.sz.kf.tj"),
    "health_clerk": ("彭卫健", ["clerk"], ["health"], "sx.sz.kf.wj"),
    "fund_clerk": ("曾公积", ["clerk"], ["fund"], "sx.sz.kf.gjj"),
    "applicant": ("钱申请", ["clerk"], [], None),
    "designer": ("吴设计", ["designer"], [], "sx.sz"),
    "monitor": ("郑监察", ["monitor"], [], "sx.sz"),
    "admin": ("系统管理员", ["admin"], list(GROUPS), "sx"),
}


def library_folders(root: Path | None = None) -> list[Path]:
    """The process library: every folder under processes/ that holds a .bpmn file, sorted."""
    base = (root or ROOT) / "processes"
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and any(p.rglob("*.bpmn")))


def seed(engine, *, password: str = DEMO_PASSWORD, processes: bool = True, library: bool = True,
         report=None) -> list:
    """Create (or refresh) the demo org, users and processes; returns the deployed versions.

    ``library``: also deploy every folder of processes/. A folder that fails to deploy is
    reported (``report(message)``, default: the log at ERROR) with its located problems and
    skipped; the others are deployed and the product starts."""
    existing = {d["code"] for d in engine.departments()}
    for code, name, level, parent in DEPARTMENTS:
        if code not in existing:
            engine.add_department(code, name, level, parent)
    known_groups = {g["name"]: g for g in engine.groups()}
    for group, (_display, dept) in GROUPS.items():
        if known_groups.get(group, {}).get("department") != dept:
            engine.set_group_department(group, dept)
    users = {u["name"]: u for u in engine.users()}
    for name, (display, roles, groups, dept) in USERS.items():
        if name not in users:
            engine.add_user(name, groups, display, roles=roles, password=password, department=dept)
        elif set(groups) - set(users[name].get("groups") or []):
            # a demo database from before new groups existed: add the missing memberships only
            engine.add_user(name, sorted(set(groups) - set(users[name]["groups"])))
    deployed = []
    if processes:
        deployed = engine.deploy_paths([ROOT / "bpmn_examples"], actor="system")
    if processes and library:
        deployed += deploy_library(engine, report=report)
    return deployed


def deploy_library(engine, root: Path | None = None, report=None) -> list:
    """Deploy each library folder on its own; a failing folder is reported and skipped."""
    from engine.errors import EngineError, InvalidProcess

    say = report or (lambda message: log.error("%s", message))
    deployed = []
    for folder in library_folders(root):
        try:
            deployed += engine.deploy_paths([folder], actor="system")
        except InvalidProcess as exc:
            lines = "\n".join(f"  {p}" for p in exc.problems)
            say(f"NOT DEPLOYED: process library folder {folder.name} has {len(exc.problems)} problem(s):\n{lines}")
        except EngineError as exc:
            say(f"NOT DEPLOYED: process library folder {folder.name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one broken folder must not stop the product
            log.exception("deploying %s", folder)
            say(f"NOT DEPLOYED: process library folder {folder.name}: {type(exc).__name__}: {exc}")
    return deployed

"""Working days: Spring Festival and 调休 Saturdays from chinese-calendar, schedules loaded by an
administrator for a year the package does not know, regional overrides, provisional deadlines,
and the `tongban calendar` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime

import pytest

from engine.calendar import Calendar, package_has_year, parse_schedule
from engine.errors import Invalid

SCHEDULE_2027 = {
    "holidays": {"2027-01-01": "元旦", "2027-02-05": "春节", "2027-02-08": "春节", "2027-02-09": "春节",
                 "2027-02-10": "春节", "2027-02-11": "春节"},
    "workdays": {"2027-02-13": "春节调休"},
}


def test_spring_festival_2026_and_its_working_saturdays():
    cal = Calendar()
    assert cal.add_workdays(date(2026, 2, 13), 1) == date(2026, 2, 14)  # 调休 Saturday counts
    assert cal.add_workdays(date(2026, 2, 13), 2) == date(2026, 2, 24)  # the festival does not
    assert cal.add_workdays(date(2026, 2, 27), 1) == date(2026, 2, 28)
    assert cal.add_workdays(date(2026, 2, 27), 2) == date(2026, 3, 2)
    # 20 working days of 行政许可法 from a Friday before the festival
    assert cal.due(date(2026, 2, 6), 20) == (date(2026, 3, 12), False)  # 9-14 Feb, 24-28 Feb, 2-12 Mar
    assert cal.due(date(2026, 2, 6), 20, unit="day") == (date(2026, 2, 26), False)


def test_start_day_is_not_counted_and_zero_is_the_start():
    cal = Calendar()
    assert cal.add_workdays(date(2026, 11, 27), 0) == date(2026, 11, 27)
    assert cal.add_workdays(date(2026, 11, 27), 1) == date(2026, 11, 30)  # Friday → Monday
    with pytest.raises(ValueError):
        cal.add_workdays(date(2026, 11, 27), -1)


@pytest.mark.skipif(package_has_year(2027), reason="the installed chinese-calendar already knows 2027")
def test_unpublished_year_counts_weekends_and_is_provisional(engine):
    assert engine.calendar_due(date(2027, 2, 4), 2) == {
        "start": "2027-02-04", "n": 2, "unit": "workday", "region": "CN", "due": "2027-02-08",
        "provisional": True}
    status = engine.calendar_status()
    assert any(y["year"] == 2027 and y["status"] == "missing" for y in status["years"])
    assert status["warnings"] and not status["ok"]
    loaded = engine.load_calendar(json.dumps(SCHEDULE_2027), "2027.json", actor="admin")
    assert loaded == {"region": "CN", "years": [2027], "days": 7, "holidays": 6, "workdays": 1}
    # Thu 4 Feb + 2 working days: Fri 5 is a holiday, 8-11 too, Sat 13 is a 调休 working day
    assert engine.calendar_due(date(2027, 2, 4), 2)["due"] == "2027-02-13"
    assert engine.calendar_due(date(2027, 2, 4), 2)["provisional"] is False
    assert engine.calendar_status()["ok"] is True
    assert engine.trail()[0]["action"] == "calendar.load"
    # loading the year again replaces it
    engine.load_calendar("2027-01-01,holiday,元旦\n", "2027.csv", actor="admin")
    assert engine.calendar_due(date(2027, 2, 4), 2)["due"] == "2027-02-08"


def test_regional_overrides_sit_on_top_of_the_national_calendar(engine):
    engine.load_calendar("date,kind,name\n2026-12-01,holiday,地方节日\n", "local.csv", region="XZ")
    assert engine.calendar_due(date(2026, 11, 30), 1, region="XZ")["due"] == "2026-12-02"
    assert engine.calendar_due(date(2026, 11, 30), 1)["due"] == "2026-12-01"
    # the regional file overrides its own days only: the Spring Festival and its 调休 Saturday stay
    assert engine.calendar_due(date(2026, 2, 13), 1, region="XZ")["due"] == "2026-02-14"
    assert engine.calendar_due(date(2026, 2, 13), 2, region="XZ")["due"] == "2026-02-24"


def test_a_partial_national_file_for_a_published_year_overrides_only_its_days(engine):
    engine.load_calendar("2026-12-31,holiday,年末盘点\n", "extra.csv", actor="admin")
    assert engine.calendar_due(date(2026, 12, 30), 1)["due"] == "2027-01-01"  # 31 Dec off (2027: weekends only)
    assert engine.calendar_due(date(2026, 2, 13), 2)["due"] == "2026-02-24"  # the package's holidays stay
    assert engine.calendar_due(date(2026, 9, 30), 3)["due"] == "2026-10-10"  # and its 调休 Saturday


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("2026-13-01,holiday\n", "is not a date"),
    ("2026-12-01,party\n", "expected 'date,holiday|workday"),
    ("# nothing\n", "lists no days"),
])
def test_bad_schedule_files_are_refused_with_the_reason(engine, text, message):
    with pytest.raises(Invalid, match=message):
        engine.load_calendar(text, "bad.csv" if not text.startswith("{") else "bad.json")
    assert engine.calendar_status()["years"]  # nothing half-loaded: still answers


def test_parse_schedule_accepts_lists_and_bom():
    rows = parse_schedule('\ufeff{"holidays": ["2027-10-01"], "workdays": []}')
    assert rows == [(date(2027, 10, 1), False, "")]


def test_task_deadline_uses_the_loaded_calendar(engine, clock):
    from tests.conftest import example_files

    clock.set(datetime(2026, 11, 30, 1, 0, tzinfo=UTC))  # Monday 09:00 in Shanghai
    engine.deploy(example_files("boundary_timer.bpmn"))  # review: tb:sla limit=1 unit=workday
    first = engine.start("boundary_timer", {})["instance_id"]
    assert engine.tasks(instance_id=first)[0]["due_at"] == "2026-12-01T15:59:59+00:00"
    engine.load_calendar("2026-12-01,holiday,演练\n2026-12-02,holiday,演练\n", "drill.csv", region="CN")
    second = engine.start("boundary_timer", {})["instance_id"]
    assert engine.tasks(instance_id=second)[0]["due_at"] == "2026-12-03T15:59:59+00:00"


def _cli(*args, db):
    env = {"TONGBAN_DATABASE_URL": db, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, env=env,
                          cwd=str(__import__("pathlib").Path(__file__).resolve().parent.parent))


def test_calendar_cli(tmp_path):
    db = f"sqlite:///{tmp_path / 'cal.sqlite'}"
    r = _cli("calendar", "due", "2026-02-13", "2", "--json", db=db)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["due"] == "2026-02-24"
    r = _cli("calendar", "due", "2026-02-13", "2", db=db)
    assert r.stdout.strip() == "2026-02-24"
    r = _cli("calendar", "due", "2026-02-13", "2", "--unit", "day", db=db)
    assert r.stdout.strip() == "2026-02-15"
    r = _cli("calendar", "due", "13/02/2026", "2", db=db)
    assert r.returncode != 0 and "YYYY-MM-DD" in r.stderr
    f = tmp_path / "2027.json"
    f.write_text(json.dumps(SCHEDULE_2027), encoding="utf-8")
    r = _cli("calendar", "load", str(f), "--json", db=db)
    assert r.returncode == 0 and json.loads(r.stdout)["years"] == [2027]
    r = _cli("calendar", "status", "--json", db=db)
    assert r.returncode == 0
    years = {y["year"]: y["status"] for y in json.loads(r.stdout)["years"]}
    assert years[2027] == "loaded"
    # a region with nothing loaded answers with the national days, and says so on stderr
    r = _cli("calendar", "due", "2026-02-13", "2", "--region", "GDX", "--json", db=db)
    assert r.returncode == 0 and json.loads(r.stdout) == {
        "start": "2026-02-13", "n": 2, "unit": "workday", "region": "GDX", "due": "2026-02-24", "provisional": False}
    assert "WARNING: no schedule is loaded for region GDX" in r.stderr
    f.write_text(json.dumps(SCHEDULE_2027), encoding="utf-8")
    assert _cli("calendar", "load", str(f), "--region", "GD", db=db).returncode == 0
    r = _cli("calendar", "due", "2026-02-13", "2", "--region", "GD", db=db)
    assert r.stdout.strip() == "2026-02-24" and "WARNING" not in r.stderr
    assert "regions with a schedule: GD" in _cli("calendar", "due", "2026-02-13", "2", "--region", "XX", db=db).stderr


def test_admin_uploads_a_schedule_and_checks_a_deadline(client_for, demo_engine):
    admin = client_for("admin")
    page = admin.get("/admin/calendar")
    assert page.status_code == 200 and 'data-year="2026"' in page.get_data(as_text=True)
    assert client_for("window_clerk").get("/admin/calendar").status_code == 403
    import io

    r = admin.post("/admin/calendar", data={"csrf_token": admin.csrf, "region": "CN",
                                            "file": (io.BytesIO(json.dumps(SCHEDULE_2027).encode()), "2027.json")},
                   content_type="multipart/form-data")
    assert r.status_code == 200 and "已导入 7 天" in r.get_data(as_text=True)
    assert 2027 in {y["year"] for y in demo_engine.calendar_status()["years"] if y["status"] == "loaded"}
    r = admin.post("/admin/calendar", data={"region": "CN",
                                            "file": (io.BytesIO(b"2027-01-01,holiday\n"), "x.csv")},
                   content_type="multipart/form-data")
    assert r.status_code == 400  # no CSRF token
    r = admin.post("/admin/calendar", data={"csrf_token": admin.csrf,
                                            "file": (io.BytesIO(b"2027-01-01,party\n"), "bad.csv")},
                   content_type="multipart/form-data")
    assert r.status_code == 400 and "holiday|workday" in r.get_data(as_text=True)
    r = admin.get("/admin/calendar?start=2027-02-04&n=2&unit=workday")
    assert '<strong>2027-02-13</strong>' in r.get_data(as_text=True)


@pytest.mark.skipif(package_has_year(2027), reason="the installed chinese-calendar already knows 2027")
def test_worker_start_warns_loudly_about_a_missing_year(engine, clock, caplog):
    from cli.worker import warn_about_calendar

    clock.set(datetime(2026, 11, 27, 2, 0, tzinfo=UTC))
    with caplog.at_level("WARNING", logger="tongban.worker"):
        warnings = warn_about_calendar(engine)
    assert warnings and "2027" in warnings[0]
    assert any("CALENDAR" in r.message and "2027" in r.message for r in caplog.records)
    engine.load_calendar(json.dumps(SCHEDULE_2027), "2027.json")
    assert warn_about_calendar(engine) == []

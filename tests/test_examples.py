"""Every example in bpmn_examples/ deploys and runs to its end through the engine,
driven by the recipes in bpmn_examples/recipes.json as a clerk and the worker would."""

from __future__ import annotations

import json

import pytest

from engine.sla import _duration
from tests.conftest import EXAMPLES, example_files

RECIPES = json.loads((EXAMPLES / "recipes.json").read_text(encoding="utf-8"))


def test_there_is_a_recipe_for_every_example_file():
    files = {p.name for p in EXAMPLES.glob("*.bpmn")}
    assert len(files) >= 10
    assert files <= {r["file"] for r in RECIPES}


def _actor_for(engine, task):
    if task["assignee"]:
        engine.add_user(task["assignee"], [])
        return task["assignee"]
    return "admin"


@pytest.mark.parametrize("recipe", RECIPES, ids=[r["name"] for r in RECIPES])
def test_example_runs_to_its_end(engine, clock, recipe):
    files = example_files(recipe["file"], *recipe.get("dmn_files", []))
    deployed = {d.key for d in engine.deploy(files)}
    assert recipe["key"] in deployed
    started = engine.start(recipe["key"], recipe["start_data"], business_key=recipe["name"], actor="admin")
    iid = started["instance_id"]
    for step in recipe["steps"]:
        if "complete" in step:
            open_tasks = [t for t in engine.tasks(instance_id=iid) if t["bpmn_id"] == step["complete"]]
            assert open_tasks, f"no open task {step['complete']} in {engine.tasks(instance_id=iid)}"
            task = open_tasks[0]
            engine.complete(task["id"], _actor_for(engine, task), step["data"])
        elif "advance" in step:
            clock.advance(_duration(step["advance"]))
            engine.run_due_jobs("test-worker")
        elif "message" in step:
            result = engine.send_message(step["message"], step["payload"], step.get("correlation"))
            assert result["delivered_to"] == [iid]
    shown = engine.show(iid)
    assert shown["status"] == "completed", shown
    assert shown["open_tasks"] == []
    for key, value in recipe["expect_end_data"].items():
        assert shown["data"].get(key) == value, (key, shown["data"])
    assert engine.verify_audit().ok

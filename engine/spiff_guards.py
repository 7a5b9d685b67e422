"""Checks SpiffWorkflow leaves to Python itself, made at the element so that bad process data
becomes a located error (an incident, a 4xx answer) instead of an unhandled ``TypeError``.

A parallel multi-instance task iterates its input collection as given: a missing collection
(``None``) or a number raises ``TypeError`` from inside the engine step, and a text is split into
its characters (three 会签 votes for "a,b"). Before the children are made, the collection must be a
list (or tuple) or a mapping; anything else raises SpiffWorkflow's own ``WorkflowDataException`` for
that task, which the runtime translates like any other step failure."""

from __future__ import annotations

from collections.abc import Mapping

from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import (
    MultiInstanceTask,
    ParallelMultiInstanceTask,
    SequentialMultiInstanceTask,
)


def collection_problem(value, name: str) -> str | None:
    """Why ``value`` cannot be a multi-instance input collection named ``name`` (None when it can)."""
    if isinstance(value, list | tuple | Mapping):
        return None
    if value is None:
        return f"the multi-instance collection '{name}' has no value (a list is needed)"
    if isinstance(value, str):
        return f"the multi-instance collection '{name}' is a text, not a list: {value[:60]!r}"
    return f"the multi-instance collection '{name}' is a {type(value).__name__}, not a list"


def _checked(method):
    def check_then(self: MultiInstanceTask, my_task, *args, **kwargs):
        if self.data_input is not None:
            name = getattr(self.data_input, "bpmn_id", None) or getattr(self.data_input, "name", "?")
            value = self.data_input.get(my_task) if self.data_input.exists(my_task) else None
            problem = collection_problem(value, name)
            if problem:
                self.raise_data_exception(problem, my_task)
        return method(self, my_task, *args, **kwargs)

    check_then.tb_guarded = True
    return check_then


def install() -> None:
    """Wrap the points where SpiffWorkflow first reads a multi-instance input (idempotent)."""
    for cls, attr in ((ParallelMultiInstanceTask, "create_children"),
                      (SequentialMultiInstanceTask, "init_remaining_items")):
        method = cls.__dict__[attr]
        if not getattr(method, "tb_guarded", False):
            setattr(cls, attr, _checked(method))

"""SpiffWorkflow state without the spec: the spec is stored once per definition version."""

from __future__ import annotations

import functools
import json
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG


class StateOnlyWorkflowConverter(BpmnWorkflowConverter):
    """Writes the instance state only; on reading, the caller supplies the parsed specs."""

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct):
        spec = dct.pop("spec")
        subprocess_specs = dct.pop("subprocess_specs")
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


@functools.cache
def spec_registry():
    return BpmnWorkflowSerializer.configure(SPIFF_CONFIG)


@functools.cache
def _state_serializer() -> BpmnWorkflowSerializer:
    config = dict(SPIFF_CONFIG)
    config[BpmnWorkflow] = StateOnlyWorkflowConverter
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))


def dump_state(workflow: BpmnWorkflow) -> str:
    ser = _state_serializer()
    return json.dumps(ser.registry.convert(workflow), cls=ser._encoder_cls, separators=(",", ":"))


def load_state(state: str, spec, subprocess_specs, script_engine) -> BpmnWorkflow:
    ser = _state_serializer()
    dct = json.loads(state)
    dct["spec"] = spec
    dct["subprocess_specs"] = subprocess_specs
    workflow = ser.registry.restore(dct)
    workflow.script_engine = script_engine
    return workflow


def to_jsonable(value):
    """Task data as plain JSON (dates and other objects as text) for read models."""
    return json.loads(json.dumps(value, default=str))

"""Generate a sequential user-task process: start -> N user tasks -> end.

Used by bench/bench_engine.py for the "does one step get dearer as history grows" test.
No diagram (DI) is generated; the engine does not need it.

    .venv/bin/python bench/sequential.py 100 > /tmp/seq100.bpmn
    .venv/bin/python bench/sequential.py 20 --key my_seq --group clerks -o /tmp/seq20.bpmn
"""

from __future__ import annotations

import argparse
import sys
from xml.sax.saxutils import quoteattr

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
TB_NS = "urn:tongban:bpmn:1"


def sequential_bpmn(steps: int, key: str | None = None, group: str = "bench") -> bytes:
    """BPMN 2.0 XML for ``start -> step_1 .. step_<steps> (user tasks) -> end``.

    Every user task carries ``tb:candidateGroups=<group>``.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    key = key or f"bench_seq_{steps}"
    nodes = ["start"] + [f"step_{i}" for i in range(1, steps + 1)] + ["end"]
    flows = [(f"flow_{i}", nodes[i], nodes[i + 1]) for i in range(len(nodes) - 1)]
    incoming = {t: f for f, _, t in flows}
    outgoing = {s: f for f, s, _ in flows}
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}" xmlns:tb="{TB_NS}" '
        f'id="Definitions_{key}" targetNamespace="urn:tongban:bench">',
        f'  <bpmn:process id={quoteattr(key)} name={quoteattr(f"Sequential {steps} steps")} isExecutable="true">',
        '    <bpmn:startEvent id="start">',
        f'      <bpmn:outgoing>{outgoing["start"]}</bpmn:outgoing>',
        '    </bpmn:startEvent>',
    ]
    for i in range(1, steps + 1):
        node = f"step_{i}"
        out += [
            f'    <bpmn:userTask id="{node}" name="Step {i}" tb:candidateGroups={quoteattr(group)}>',
            f'      <bpmn:incoming>{incoming[node]}</bpmn:incoming>',
            f'      <bpmn:outgoing>{outgoing[node]}</bpmn:outgoing>',
            '    </bpmn:userTask>',
        ]
    out += [
        '    <bpmn:endEvent id="end">',
        f'      <bpmn:incoming>{incoming["end"]}</bpmn:incoming>',
        '    </bpmn:endEvent>',
    ]
    out += [f'    <bpmn:sequenceFlow id="{f}" sourceRef="{s}" targetRef="{t}"/>' for f, s, t in flows]
    out += ['  </bpmn:process>', '</bpmn:definitions>', '']
    return "\n".join(out).encode("utf-8")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("steps", type=int, help="number of sequential user tasks")
    p.add_argument("--key", help="process id (default bench_seq_<steps>)")
    p.add_argument("--group", default="bench", help="tb:candidateGroups of every task (default: bench)")
    p.add_argument("-o", "--output", help="write here instead of stdout")
    args = p.parse_args(argv)
    xml = sequential_bpmn(args.steps, args.key, args.group)
    if args.output:
        with open(args.output, "wb") as fh:
            fh.write(xml)
    else:
        sys.stdout.buffer.write(xml)
    return 0


if __name__ == "__main__":
    sys.exit(main())

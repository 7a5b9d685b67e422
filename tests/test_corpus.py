"""The importer against real-world BPMN: every file of the OMG BPMN MIWG test suite (models
exported by ~30 modelling tools), each uploaded alone, either deploys or is rejected with
problems that say where (a line or an element id). Validation only, no database, so this runs
in the normal suite (about a second).

The counts in docs/importer.md come from:

    .venv/bin/python -m tests.test_corpus
"""

from __future__ import annotations

import re
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.definitions import check
from engine.errors import Problem

CORPUS = Path(__file__).resolve().parents[2] / "shared/corpora/bpmn-miwg"


def corpus_files() -> list[Path]:
    return sorted({*CORPUS.rglob("*.bpmn"), *CORPUS.rglob("*.xml")})


def reason(problem: Problem) -> str:
    """A problem's message without the ids, names and numbers of one file, to count alike ones."""
    text = problem.message
    if "isExecutable" in text:
        return 'process is marked isExecutable="false" (a descriptive model)'
    if text.startswith("data store"):
        return "data store (the engine has none)"
    text = text.split("; ")[0]  # drop the advice after the finding
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\d+", "N", text)
    return text if len(text) <= 150 else text[:149] + "…"


@dataclass
class Outcome:
    deployable: list[tuple[str, list[str]]] = field(default_factory=list)
    rejected: dict[str, list[Problem]] = field(default_factory=dict)
    crashed: dict[str, str] = field(default_factory=dict)

    def reasons(self) -> Counter:
        """Rejected files counted by their first problem (the one the error message leads with)."""
        return Counter(reason(problems[0]) for problems in self.rejected.values())

    def unlocated(self) -> list[str]:
        return [name for name, problems in self.rejected.items()
                if not any(p.line or p.element_id for p in problems)]


def run_corpus() -> Outcome:
    outcome = Outcome()
    for path in corpus_files():
        name = str(path.relative_to(CORPUS))
        try:
            keys, problems = check({name: path.read_bytes()})
        except Exception:  # noqa: BLE001 - the test is that nothing escapes check()
            outcome.crashed[name] = traceback.format_exc()
            continue
        if problems:
            outcome.rejected[name] = problems
        else:
            outcome.deployable.append((name, keys))
    return outcome


def summary(outcome: Outcome, top: int = 12) -> str:
    total = len(outcome.deployable) + len(outcome.rejected) + len(outcome.crashed)
    lines = [f"{total} files: {len(outcome.deployable)} deployable, {len(outcome.rejected)} rejected, "
             f"{len(outcome.crashed)} crashed, {len(outcome.unlocated())} rejected without a location", "",
             "| rejected files | first problem |", "|---:|---|"]
    lines += [f"| {n} | {r.replace('|', '/')} |" for r, n in outcome.reasons().most_common(top)]
    lines += ["", "Deployable:", ""]
    lines += [f"* `{name}` → {', '.join(f'`{k}`' for k in keys)}" for name, keys in outcome.deployable]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def outcome() -> Outcome:
    if not CORPUS.is_dir() or not corpus_files():
        pytest.skip(f"BPMN MIWG corpus not found at {CORPUS}")
    result = run_corpus()
    print("\n" + summary(result))
    return result


def test_no_file_makes_the_importer_crash(outcome):
    assert outcome.crashed == {}, "\n\n".join(f"{k}:\n{v}" for k, v in outcome.crashed.items())


def test_every_rejected_file_says_where(outcome):
    unlocated = {name: [p.as_dict() for p in outcome.rejected[name]] for name in outcome.unlocated()}
    assert unlocated == {}


def test_every_problem_names_the_file_it_is_in(outcome):
    wrong = {name: [str(p) for p in problems if p.file != name]
             for name, problems in outcome.rejected.items() if any(p.file != name for p in problems)}
    assert wrong == {}


def test_the_corpus_is_really_walked(outcome):
    assert len(outcome.deployable) + len(outcome.rejected) == len(corpus_files()) > 300
    # the reference models are descriptive, but several tools export executable ones that deploy
    assert len(outcome.deployable) >= 10
    assert "Reference/C.9.1.bpmn" in dict(outcome.deployable)


if __name__ == "__main__":
    print(summary(run_corpus()))

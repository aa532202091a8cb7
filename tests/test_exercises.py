"""Every exercise set, generically: solutions earn full marks, stubs earn 0 without crashing,
exercises/ is generated from solutions/, and check cells match the registered checks.

The loops run over every notebook in solutions/, so a new lesson is covered when its notebook lands.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import re

import nbformat
import pytest

from course_utils.grading import checks_for, get_check
from course_utils.grading.grader import feedback_name, main
from course_utils.notebook_tools.exercises import make_exercise, stub_source, write_exercises
from course_utils.notebook_tools.paths import folder

SETS = sorted(p.stem for p in folder("solutions").glob("*.ipynb"))


def _grade(source, out) -> tuple[dict[str, dict], object]:
    """Run the grader over a course folder; return the gradebook rows by submission, and the out folder."""
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([str(source), *(a for s in SETS for a in ("--set", s)), "--out", str(out), "--jobs", "2"]) == 0
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        return {row["submission"]: row for row in csv.DictReader(fh)}, out


@pytest.fixture(scope="module")
def graded_solutions(tmp_path_factory):
    return _grade(folder("solutions"), tmp_path_factory.mktemp("solutions_graded"))


@pytest.fixture(scope="module")
def graded_exercises(tmp_path_factory):
    return _grade(folder("exercises"), tmp_path_factory.mktemp("exercises_graded"))


def test_there_are_exercise_sets():
    assert SETS, "no notebooks in solutions/"


@pytest.mark.parametrize("exercise_set", SETS)
def test_solution_earns_full_marks(graded_solutions, exercise_set):
    rows, out = graded_solutions
    row = rows[f"{exercise_set}.ipynb"]
    text = (out / "feedback" / feedback_name(f"{exercise_set}.ipynb")).read_text(encoding="utf-8")
    assert row["status"] == "ok", text
    assert row["exercise_set"] == exercise_set
    for chk in checks_for(exercise_set):
        assert float(row[chk.check_id]) == chk.max_points, text
    assert float(row["total"]) == float(row["max_points"]) == sum(c.max_points for c in checks_for(exercise_set))


@pytest.mark.parametrize("exercise_set", SETS)
def test_exercise_stubs_earn_zero_without_crashing(graded_exercises, exercise_set):
    rows, out = graded_exercises
    row = rows[f"{exercise_set}.ipynb"]
    text = (out / "feedback" / feedback_name(f"{exercise_set}.ipynb")).read_text(encoding="utf-8")
    assert row["status"] == "ok", text
    assert row["exercise_set"] == exercise_set
    for chk in checks_for(exercise_set):
        assert float(row[chk.check_id]) == 0.0, text
        assert f"[ ] {chk.check_id} (" in text, f"{chk.check_id} should report 'not attempted':\n{text}"
    assert text.count("not attempted yet") == len(checks_for(exercise_set))
    assert float(row["total"]) == 0.0
    assert "notes:" not in text, f"a cell of the exercise notebook raised:\n{text}"


def test_exercises_are_up_to_date():
    assert write_exercises(check=True) == [], "exercises/ is stale: run `make exercises`"


@pytest.mark.parametrize("exercise_set", SETS)
def test_check_cells_match_the_registry(exercise_set):
    nb = nbformat.read(folder("exercises") / f"{exercise_set}.ipynb", as_version=4)
    assert nb.metadata["course"]["exercise_set"] == exercise_set
    found = []
    for index, cell in enumerate(nb.cells):
        course = cell.metadata.get("course", {})
        if "check" not in course:
            continue
        cid = course["check"]
        assert cell.cell_type == "code", f"cell {index}: a check cell must be a code cell"
        assert get_check(cid).exercise_set == exercise_set, f"cell {index}: {cid} belongs to another set"
        assert re.fullmatch(rf"""check\(\s*["']{re.escape(cid)}["']\s*,.*\)\s*""", cell.source, re.S), \
            f"cell {index}: the check cell for {cid} should call check({cid!r}, ...), not {cell.source!r}"
        found.append(cid)
    assert collections.Counter(found) == collections.Counter(c.check_id for c in checks_for(exercise_set)), \
        "every registered check needs exactly one check cell"


# --------------------------------------------------------------------------- stub_source


def test_stub_keeps_indentation():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n"
    assert stub_source(source) == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"


def test_stub_without_trailing_newline_and_at_top_level():
    source = "x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION"
    assert stub_source(source) == "x = 1\n# YOUR CODE HERE\nraise NotImplementedError()"


def test_stub_replaces_every_block():
    source = ("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n\n"
              "class A:\n    def g(self):\n        ### BEGIN SOLUTION\n        return 2\n        ### END SOLUTION\n"
              "        # kept\n")
    assert stub_source(source) == (
        "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\n"
        "class A:\n    def g(self):\n        # YOUR CODE HERE\n        raise NotImplementedError()\n"
        "        # kept\n")


def test_source_without_blocks_is_unchanged():
    assert stub_source("print(1)\n") == "print(1)\n"


@pytest.mark.parametrize("source", [
    "### BEGIN SOLUTION\nx = 1\n",
    "x = 1\n### END SOLUTION\n",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\nx\n### END SOLUTION\n",
    "### END SOLUTION\nx = 1\n### BEGIN SOLUTION\n",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\nx\n### END SOLUTION\n### END SOLUTION\n",
])
def test_unbalanced_or_nested_markers_raise_naming_the_cell(source):
    with pytest.raises(ValueError, match="lesson.ipynb, cell 7"):
        stub_source(source, "lesson.ipynb, cell 7")


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def test_make_exercise_names_the_bad_cell():
    nb = _notebook("import math", "def f():\n    ### BEGIN SOLUTION\n    return 1\n")
    with pytest.raises(ValueError, match=r"99_demo\.ipynb, cell 1"):
        make_exercise(nb, "99_demo.ipynb")


def test_make_exercise_needs_a_block():
    with pytest.raises(ValueError, match="no '### BEGIN SOLUTION' block"):
        make_exercise(_notebook("print(1)"), "99_demo.ipynb")


def test_make_exercise_sets_metadata_and_clears_outputs():
    nb = _notebook("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n")
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[0].execution_count = 3
    ex = make_exercise(nb, "99_demo.ipynb")
    assert ex.metadata["course"] == {"exercise_set": "99_demo", "generated_from": "solutions/99_demo.ipynb"}
    assert ex.cells[0].outputs == [] and ex.cells[0].execution_count is None
    assert "return 1" in nb.cells[0].source, "the solution notebook itself must not change"

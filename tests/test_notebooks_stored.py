"""Lessons are stored with the outputs of a full run; exercises and solutions are stored clean."""

from __future__ import annotations

import re

import nbformat
import pytest

from course_utils.notebook_tools.paths import folder

LESSONS = sorted(folder("notebooks").glob("*.ipynb"))


def test_every_lesson_has_an_exercise_set_and_a_solution():
    names = {p.name for p in LESSONS}
    assert names == {p.name for p in folder("solutions").glob("*.ipynb")} == {p.name for p in folder("exercises").glob("*.ipynb")}


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_is_stored_executed_top_to_bottom(path):
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: render it (make render): counts {counts}"
    assert sum(1 for c in code if c.outputs) >= len(code) // 3, f"{path.name} has too few stored outputs"
    errors = [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, f"{path.name} stores an error output"


@pytest.mark.parametrize("path", sorted(folder("solutions").glob("*.ipynb")) + sorted(folder("exercises").glob("*.ipynb")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_solutions_and_exercises_are_stored_clean(path):
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert all(not c.outputs and c.get("execution_count") is None for c in code), f"{path} stores outputs"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_looks_right_before_it_is_run(path):
    """No stored output needs a kernel to look right: no widget views (a static snapshot instead), no
    frozen progress bars (a summary line instead)."""
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        for output in cell.outputs:
            data = output.get("data", {})
            assert "application/vnd.jupyter.widget-view+json" not in data, \
                f"{path.name}, code cell {index}: a stored widget view (shows as text before the lesson runs): make render"
            text = output.get("text", "") + "".join(data.get("text/plain", ""))
            assert not re.search(r"\b0%\|", text), f"{path.name}, code cell {index}: a frozen progress bar is stored"
    assert "widgets" not in nb.metadata, f"{path.name} stores widget state that nothing uses: make render"

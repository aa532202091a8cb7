"""Lessons are stored with the outputs of a full run; exercises and solutions are stored clean."""

from __future__ import annotations

import base64
import re
import struct

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


MAX_FIGURE_WIDTH = 1100  # px: a figure must stay readable in a normal JupyterLab window


def _png_size(b64: str) -> tuple[int, int]:
    head = base64.b64decode(b64[:64])
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_figures_are_readable_at_1100_px(path):
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        for output in cell.outputs:
            png = output.get("data", {}).get("image/png")
            if png:
                width, height = _png_size(png if isinstance(png, str) else "".join(png))
                assert width <= MAX_FIGURE_WIDTH, f"{path.name}, code cell {index}: a figure {width} px wide " \
                                                  f"(at most {MAX_FIGURE_WIDTH}: use a smaller figsize)"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_ends_with_links_to_its_exercises_and_the_next_lesson(path):
    last = nbformat.read(path, as_version=4).cells[-1]
    assert last.cell_type == "markdown", f"{path.name} should end with a markdown cell of links"
    assert f"../exercises/{path.name}" in last.source, f"{path.name}'s last cell should link to its exercises"
    later = [p for p in LESSONS if p.name > path.name]
    target = later[0].name if later else "README.md"
    assert target in last.source, f"{path.name}'s last cell should link to {target}"

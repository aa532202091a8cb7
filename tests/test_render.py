"""The renderer stores lessons that look right before they are run: finished progress bars are
dropped (the training loop's summary line stays), and widgets become static snapshots."""

from __future__ import annotations

import nbformat
import pytest

from course_utils.notebook_tools.render import IGNORE_OUTPUT, bench_table, render_notebook

WIDGET_CELL = """\
import ipywidgets as widgets
import matplotlib.pyplot as plt

def show(temperature=1.5, mode="soft"):
    plt.figure(figsize=(3, 2)); plt.plot([0, 1], [0, temperature]); plt.title(mode); plt.show()
    print(f"temperature is {temperature}")

widgets.interact(show, temperature=(0.5, 4.0, 0.5), mode=["soft", "hard"]);
"""
TRAIN_CELL = """\
import torch
from course_utils.training import train
model = torch.nn.Linear(2, 1)
history = train(model, lambda step: torch.ones(4, 2), lambda m, x: m(x).pow(2).mean(), steps=5, desc="tiny run")
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    path = tmp_path_factory.mktemp("render") / "lesson.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(WIDGET_CELL), nbformat.v4.new_code_cell(TRAIN_CELL)]
    nbformat.write(nb, path)
    render_notebook(path, timeout=120)
    return nbformat.read(path, as_version=4)


def test_a_widget_is_stored_as_a_snapshot_that_names_its_controls(rendered):
    cell = rendered.cells[0]
    kinds = [o.output_type for o in cell.outputs]
    assert all("application/vnd.jupyter.widget-view+json" not in o.get("data", {}) for o in cell.outputs)
    note = cell.outputs[0]
    assert note.output_type == "stream" and note.text.startswith("[interactive widget")
    assert "temperature = 1.5 (slider from 0.5 to 4.0)" in note.text
    assert "mode = 'soft' (choices: soft, hard)" in note.text
    assert "Run this cell" in note.text
    assert any(o.output_type == "display_data" and "image/png" in o.data for o in cell.outputs), kinds
    assert any(o.output_type == "stream" and "temperature is 1.5" in o.text for o in cell.outputs), kinds
    assert IGNORE_OUTPUT in cell.metadata.tags
    assert "widgets" not in rendered.metadata


def test_a_finished_progress_bar_is_dropped_and_the_summary_line_kept(rendered):
    outputs = rendered.cells[1].outputs
    assert all("application/vnd.jupyter.widget-view+json" not in o.get("data", {}) for o in outputs)
    text = "".join(o.get("text", "") for o in outputs)
    assert "tiny run: 5 steps in" in text and "final loss" in text
    assert "0%|" not in text
    assert IGNORE_OUTPUT in rendered.cells[1].metadata.tags  # a live run shows the bar again


def test_the_bench_table_lists_every_notebook_and_the_total(tmp_path):
    times = {tmp_path / "notebooks" / "00_a.ipynb": 12.25, tmp_path / "solutions" / "00_a.ipynb": 3.5}
    table = bench_table(times, load_before=0.25)
    assert "| `notebooks/00_a.ipynb` | 12.2 |" in table or "| `notebooks/00_a.ipynb` | 12.3 |" in table
    assert "| `solutions/00_a.ipynb` | 3.5 |" in table
    assert "| **total** | **15.8** |" in table
    assert "load average before the run: 0.25" in table

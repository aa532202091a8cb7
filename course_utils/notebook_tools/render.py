"""Re-render the lesson notebooks' stored outputs on the CPU, and time each one.

    python -m course_utils.notebook_tools.render                 # every notebook in notebooks/
    python -m course_utils.notebook_tools.render notebooks/01_bottleneck.ipynb
    python -m course_utils.notebook_tools.render --no-write solutions/*.ipynb   # time only
    python -m course_utils.notebook_tools.render --bench notebooks/TIMINGS.md     # time every notebook, write a table

Timings are measured, never asserted: ``make bench`` writes the table that the README links.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from .paths import folder

_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
IGNORE_OUTPUT = "nbval-ignore-output"


def _is_progress_bar(output) -> bool:
    """Whether a stored output is a tqdm progress-bar widget (its text fallback reads like '45%|####  | 9/20')."""
    data = output.get("data", {})
    text = data.get("text/plain", "")
    text = "".join(text) if isinstance(text, list) else text
    return _WIDGET_VIEW in data and "|" in text and "/" in text and "it" in text


def drop_progress_bars(nb) -> int:
    """Remove finished progress bars from the stored outputs; return how many were removed.

    A bar closes itself when its loop ends (``leave=False``), but the notebook file keeps the widget,
    and an untrusted or not-yet-run notebook shows its text fallback, a frozen ``0%| | 0/300``. The
    training loop prints a one-line summary instead, which is what the stored output keeps. The cell is
    tagged ``nbval-ignore-output``: a live run shows the bar again.
    """
    removed = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = [o for o in cell.get("outputs", []) if not _is_progress_bar(o)]
        if len(kept) < len(cell.get("outputs", [])):
            removed += len(cell.outputs) - len(kept)
            cell.outputs = kept
            _tag_ignore_output(cell)  # a live run shows the bar again, so the outputs cannot be compared
    return removed


_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_CONTROLS = {"FloatSliderModel", "IntSliderModel", "FloatLogSliderModel", "DropdownModel", "TextModel", "IntTextModel",
             "FloatTextModel", "CheckboxModel", "ToggleButtonsModel", "RadioButtonsModel", "SelectionSliderModel",
             "IntRangeSliderModel", "FloatRangeSliderModel", "ToggleButtonModel"}


def _tag_ignore_output(cell) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if IGNORE_OUTPUT not in tags:
        tags.append(IGNORE_OUTPUT)


def _children(model: dict) -> list[str]:
    ids = []
    for value in model.get("state", {}).values():
        items = value if isinstance(value, list) else [value]
        ids += [x[len("IPY_MODEL_"):] for x in items if isinstance(x, str) and x.startswith("IPY_MODEL_")]
    return ids


def _describe_control(model: dict) -> str:
    state = model["state"]
    name = state.get("description") or model["model_name"].replace("Model", "").lower()
    value = state.get("value")
    if "_options_labels" in state and isinstance(value, int) and not isinstance(value, bool) and state.get("index") is not None:
        value = state["_options_labels"][state["index"]]
    elif state.get("_options_labels") and state.get("index") is not None:
        value = state["_options_labels"][state["index"]]
    text = f"{name} = {value!r}" if isinstance(value, str) else f"{name} = {value}"
    if "min" in state and "max" in state and "Slider" in model["model_name"]:
        text += f" (slider from {state['min']} to {state['max']})"
    elif state.get("_options_labels"):
        text += f" (choices: {', '.join(map(str, state['_options_labels']))})"
    return text


def snapshot_widgets(nb) -> int:
    """Replace each stored widget by a static snapshot of what it showed; return how many were replaced.

    A stored widget needs a running kernel: before the lesson is run, JupyterLab shows its text fallback
    (``interactive(children=(FloatSlider(...``) or "model not found". The snapshot keeps what the widget's
    output area showed when the lesson was rendered (its plot, its text) under one line that names the
    controls and says to run the cell. Running the cell replaces the snapshot by the live widget, so the
    cell's stored output cannot be compared by nbval: it is tagged ``nbval-ignore-output``.
    """
    state = nb.metadata.get("widgets", {}).get(_WIDGET_STATE, {}).get("state", {})
    replaced = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs, had_widget = [], False
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(_WIDGET_VIEW)
            if view is None:
                outputs.append(output)
                continue
            had_widget = True
            seen, queue, controls, shown = set(), [view.get("model_id")], [], []
            while queue:  # walk the widget's tree of models: its controls and its output areas
                model_id = queue.pop(0)
                if model_id in seen or model_id not in state:
                    continue
                seen.add(model_id)
                model = state[model_id]
                if model["model_name"] in _CONTROLS:
                    controls.append(_describe_control(model))
                if model["model_name"] == "OutputModel":
                    shown += model["state"].get("outputs", [])
                queue += _children(model)
            what = f" (controls: {'; '.join(controls)})" if controls else ""
            note = f"[interactive widget{what}. Run this cell to use it; below is what it showed when the lesson was stored.]"
            outputs.append(nbformat.v4.new_output("stream", name="stdout", text=note + "\n"))
            outputs += [nbformat.from_dict(o) for o in shown]
        cell.outputs = outputs
        if had_widget:
            replaced += 1
            _tag_ignore_output(cell)
    nb.metadata.pop("widgets", None)  # nothing refers to the saved widget models any more
    return replaced


STORED_THREADS = "1"  # stored outputs are made, and compared by nbval, with one CPU thread


def render_notebook(path: Path, *, write: bool = True, timeout: int = 600, device: str = "cpu",
                    threads: str = STORED_THREADS) -> float:
    """Execute a notebook top to bottom in its own folder; store its outputs; return seconds taken.

    The kernel runs with ``COURSE_DEVICE=device`` and ``COURSE_THREADS=threads``: a different thread
    count can change a float sum's rounding and so a training run's numbers, and nbval compares them.
    ``threads="auto"`` leaves the choice to the course (one thread per idle core), as a learner gets it.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    auto = str(threads) == "auto"
    settings = {"COURSE_DEVICE": device, "COURSE_THREADS": None if auto else str(threads),
                "OMP_NUM_THREADS": None if auto else os.environ.get("OMP_NUM_THREADS")}
    previous = {name: os.environ.get(name) for name in settings}
    for name, value in settings.items():  # the kernel inherits this environment
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent.resolve())}}).execute()
        seconds = time.perf_counter() - start
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if write:
        drop_progress_bars(nb)
        snapshot_widgets(nb)
        nbformat.write(nb, path)
    return seconds


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_table(times: dict[Path, float], load_before: float | None, threads: str = STORED_THREADS) -> str:
    """A markdown table of notebook run times, with what they were measured on."""
    import torch

    threads = ("the course's automatic choice (one per idle core)" if threads == "auto"
               else f"{threads} (COURSE_THREADS={threads}{', as stored outputs are made' if threads == STORED_THREADS else ''})")
    lines = [
        "# Notebook run times",
        "",
        "Written by `make bench` (`python -m course_utils.notebook_tools.render --bench`): each notebook run top to",
        "bottom once, on the CPU, in a fresh kernel, outputs not stored. Budget: at most 90 s a notebook on a quiet",
        "2-core CPU. These are measurements, not tests; run `make bench` on a quiet machine to refresh them.",
        "",
        f"- measured: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {_cpu_name()}, {os.cpu_count()} logical cores; torch {torch.__version__}; threads: {threads}",
        f"- load average before the run: {load_before:.2f}" if load_before is not None else "- load average: unknown",
        "",
        "| notebook | seconds |",
        "|---|---:|",
    ]
    lines += [f"| `{path.parent.name}/{path.name}` | {seconds:.1f} |" for path, seconds in times.items()]
    lines += [f"| **total** | **{sum(times.values()):.1f}** |", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: every notebook in notebooks/)")
    parser.add_argument("--no-write", action="store_true", help="run and time only, keep the files as they are")
    parser.add_argument("--device", default="cpu", help="device for the run (default cpu, as stored outputs are)")
    parser.add_argument("--threads", default=STORED_THREADS,
                        help="CPU threads for the kernel (default 1, as stored outputs are made; 'auto': the course's "
                             "own choice, one per idle core)")
    parser.add_argument("--bench", type=Path, metavar="REPORT.md",
                        help="time every notebook of notebooks/, solutions/ and exercises/ (or the paths given) "
                             "without storing outputs, and write a markdown table to REPORT.md")
    args = parser.parse_args(argv)
    if args.bench:
        args.no_write = True
    default = sorted(folder("notebooks").glob("*.ipynb"))
    if args.bench:
        default += sorted(folder("solutions").glob("*.ipynb")) + sorted(folder("exercises").glob("*.ipynb"))
    paths = args.paths or default
    if not paths:
        print("no notebooks to render", file=sys.stderr)
        return 1
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    times: dict[Path, float] = {}
    for path in paths:
        times[Path(path)] = seconds = render_notebook(path, write=not args.no_write, device=args.device,
                                                      threads=args.threads)
        print(f"{seconds:7.1f} s  {path}", flush=True)
    print(f"{sum(times.values()):7.1f} s  total")
    if args.bench:
        args.bench.write_text(bench_table(times, load_before, str(args.threads)), encoding="utf-8")
        print(f"wrote {args.bench}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

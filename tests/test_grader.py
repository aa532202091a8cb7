"""The instructor's grader, end to end: one grader run over a folder of fixture submissions.

The fixtures are built from solutions/00_orientation.ipynb and exercises/00_orientation.ipynb, so
they follow those notebooks when they change. Every kernel-running fixture is graded in a single
run (module-scoped), which keeps this file to a few kernel starts' worth of time.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import os
import time
from pathlib import Path

import nbformat
import pytest

from course_utils.grading import checks_for, run_check
from course_utils.grading import core
from course_utils.grading.grader import Grade, _check_id, _environment, feedback_name, gradebook_columns, main
from course_utils.notebook_tools.exercises import BEGIN
from course_utils.notebook_tools.paths import folder

SET = "00_orientation"
CHECKS = checks_for(SET)
FULL = {c.check_id: c.max_points for c in CHECKS}
MAX = sum(FULL.values())
CELL_TIMEOUT = 10


def _solution() -> nbformat.NotebookNode:
    nb = nbformat.read(folder("solutions") / f"{SET}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def _exercise() -> nbformat.NotebookNode:
    return nbformat.read(folder("exercises") / f"{SET}.ipynb", as_version=4)


def _check_id(cell) -> str | None:
    return cell.metadata.get("course", {}).get("check") if cell.cell_type == "code" else None


def _solution_cells(nb) -> list[int]:
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and BEGIN in cell.source]


def _check_cells(nb) -> list[int]:
    return [i for i, cell in enumerate(nb.cells) if _check_id(cell)]


def _check_after(nb, index: int) -> str:
    """The id of the first check cell after cell ``index``."""
    return next(_check_id(c) for c in nb.cells[index + 1:] if _check_id(c))


def _code(source: str):
    return nbformat.v4.new_code_cell(source)


def _build(root: Path) -> dict[str, dict]:
    """Write the fixture submissions under ``root``; return name -> expected points per check."""
    sol, ex = _solution(), _exercise()
    first, second = _solution_cells(sol)[:2]
    expected = {}

    def save(name: str, nb, points: dict[str, float]) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        expected[name] = points

    save("full.ipynb", sol, dict(FULL))

    partial = copy.deepcopy(ex)  # exercise cells line up one to one with the solution's
    partial.cells[first].source = sol.cells[first].source
    done = _check_after(sol, first)
    save("partial.ipynb", partial, {cid: (FULL[cid] if cid == done else 0.0) for cid in FULL})

    crashing = copy.deepcopy(sol)
    crashing.cells.insert(0, _code('raise RuntimeError("boom")'))
    save("crashing.ipynb", crashing, dict(FULL))

    looping = copy.deepcopy(sol)
    looping.cells.insert(second, _code("while True:\n    pass"))
    save("looping.ipynb", looping, dict(FULL))

    deleted = copy.deepcopy(sol)
    gone = _check_id(deleted.cells[_check_cells(deleted)[0]])
    del deleted.cells[_check_cells(deleted)[0]]
    save("deleted.ipynb", deleted, {cid: (0.0 if cid == gone else FULL[cid]) for cid in FULL})

    save("week 2/homework final (2).ipynb", sol, dict(FULL))

    tampered = copy.deepcopy(sol)
    for i in _check_cells(tampered):
        tampered.cells[i].source = 'print("full marks")'
    save("tampered.ipynb", tampered, dict(FULL))

    tampered_stub = copy.deepcopy(ex)  # a tampered check over an unsolved stub: still the real check
    for i in _check_cells(tampered_stub):
        tampered_stub.cells[i].source = 'print("full marks")'
    save("tampered_stub.ipynb", tampered_stub, {cid: 0.0 for cid in FULL})

    (root / "broken.ipynb").write_text('{"cells": [', encoding="utf-8")
    no_set = copy.deepcopy(sol)
    del no_set.metadata["course"]
    nbformat.write(no_set, root / "no_set.ipynb")
    unknown = copy.deepcopy(sol)
    unknown.metadata["course"]["exercise_set"] = "99_nonexistent"
    nbformat.write(unknown, root / "unknown_set.ipynb")
    (root / ".ipynb_checkpoints").mkdir()
    nbformat.write(sol, root / ".ipynb_checkpoints" / "full-checkpoint.ipynb")  # must be skipped
    return expected


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Build the fixtures, run the grader once over them, and collect everything the tests need."""
    root = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("gradebook")
    expected = _build(root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main([str(root), "--set", SET, "--out", str(out), "--timeout", "60", "--cell-timeout", str(CELL_TIMEOUT), "--jobs", "2"])
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns, rows = reader.fieldnames, {row["submission"]: row for row in reader}
    return dict(root=root, out=out, expected=expected, before=before, code=code, stdout=stdout.getvalue(),
                columns=columns, rows=rows)


def feedback(graded, submission: str) -> str:
    return (graded["out"] / "feedback" / feedback_name(submission)).read_text(encoding="utf-8")


def test_exit_status_and_columns(graded):
    assert graded["code"] == 0
    in_notebook_order = [cid for cell in _exercise().cells if (cid := _check_id(cell))]
    assert sorted(in_notebook_order) == sorted(FULL)
    assert graded["columns"] == ["submission", "exercise_set", "status", *in_notebook_order, "total", "max_points"]
    assert sorted(graded["rows"]) == sorted([*graded["expected"], "broken.ipynb", "no_set.ipynb", "unknown_set.ipynb"])


@pytest.mark.parametrize("name", ["full.ipynb", "partial.ipynb", "crashing.ipynb", "looping.ipynb", "deleted.ipynb",
                                  "week 2/homework final (2).ipynb", "tampered.ipynb", "tampered_stub.ipynb"])
def test_gradebook_row(graded, name):
    row, points = graded["rows"][name], graded["expected"][name]
    assert row["exercise_set"] == SET
    assert row["status"] == "ok"
    assert {cid: float(row[cid]) for cid in FULL} == points
    assert float(row["total"]) == sum(points.values())
    assert float(row["max_points"]) == MAX


def test_full_marks_feedback(graded):
    text = feedback(graded, "full.ipynb")
    assert f"points:       {MAX:g}/{MAX:g}" in text
    assert all(f"[ok] {cid}" in text for cid in FULL)
    assert "notes:" not in text


def test_partial_feedback_says_not_attempted(graded):
    text = feedback(graded, "partial.ipynb")
    assert "not attempted yet" in text


def test_crash_is_named_in_feedback(graded):
    text = feedback(graded, "crashing.ipynb")
    assert "cell 0" in text and "RuntimeError: boom" in text


def test_infinite_loop_is_interrupted_and_later_checks_run(graded):
    text = feedback(graded, "looping.ipynb")
    assert f"ran longer than the cell time limit ({CELL_TIMEOUT} s) and was interrupted" in text
    assert "while True:" in text  # the note quotes the cell's first line
    assert all(f"[ok] {cid}" in text for cid in FULL)  # the check after the loop ran and earned its points


def test_deleted_check_cell_is_not_restored(graded):
    text = feedback(graded, "deleted.ipynb")
    gone = next(cid for cid, pts in graded["expected"]["deleted.ipynb"].items() if pts == 0)
    assert f"{gone}" in text and "the check cell is missing" in text
    assert f"exercises/{SET}.ipynb" in text


def test_tampered_check_cell_runs_the_real_check(graded):
    assert "not attempted yet" in feedback(graded, "tampered_stub.ipynb")


@pytest.mark.parametrize("name, why", [("broken.ipynb", "invalid JSON"),
                                       ("no_set.ipynb", "names no exercise set"),
                                       ("unknown_set.ipynb", "exercise set '99_nonexistent', but this grading run is for 00_orientation")])
def test_ungradable_files_get_an_error_row(graded, name, why):
    row = graded["rows"][name]
    assert row["status"].startswith("error: ") and why in row["status"]
    assert row["total"] == "0"
    assert all(row[cid] == "" for cid in FULL)
    assert why in feedback(graded, name)


def test_submissions_are_not_modified(graded):
    after = {p: p.read_bytes() for p in graded["root"].rglob("*") if p.is_file()}
    assert after == graded["before"]


def test_feedback_files_and_summary(graded):
    names = sorted(p.name for p in (graded["out"] / "feedback").iterdir())
    assert names == sorted(feedback_name(s) for s in graded["rows"])
    assert "week 2__homework final (2).txt" in names
    for submission in graded["rows"]:
        assert submission in graded["stdout"]
        assert f"submission:   {submission}" in feedback(graded, submission)


def test_records_round_trip():
    """The grader replays the notebook's record of a check and computes the same points and feedback."""
    def normalise(scores):  # right weights, but no ValueError for bad input: partial credit
        return [s / sum(scores) for s in scores]

    result, record = core.record_check("00.normalise", normalise)
    replayed = core.replay_check(core.load_record(record))
    assert 0 < replayed.points < replayed.max_points
    assert replayed.points == result.points and replayed.feedback() == result.feedback()


def test_a_result_the_check_cannot_use_is_feedback_not_a_traceback():
    """normalise returning None (a forgotten `return`) scores 0 with feedback instead of raising."""
    result, record = core.record_check("00.normalise", lambda scores: None)
    assert result.status == "bad_result" and result.points == 0
    assert "could not be checked: TypeError" in result.feedback()
    assert core.replay_check(core.load_record(record)).feedback() == result.feedback()


def _processes_with(marker: str) -> list[int]:
    """Pids of live processes whose command line holds ``marker`` (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes() \
                    and "\tZ" not in (entry / "status").read_text():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc to find left-over processes")
def test_timeout_kills_the_kernel_and_a_dead_kernel_is_an_error(tmp_path):
    """A cell that ignores interrupts hits the overall time limit; its kernel, and a process it started and
    detached, are killed with it."""
    marker = f"course-grader-test-{os.getpid()}-{time.monotonic_ns()}"
    stubborn = _solution()
    stubborn.cells.insert(0, _code(
        "import signal, subprocess, sys, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)  # deaf to interrupts\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}], start_new_session=True)\n"
        "while True:\n    time.sleep(1)"))
    dies = _solution()
    dies.cells.insert(0, _code("import os\nos._exit(3)"))
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    nbformat.write(stubborn, subs / "stubborn.ipynb")
    nbformat.write(dies, subs / "dies.ipynb")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([str(subs), "--set", SET, "--out", str(out), "--timeout", "15", "--cell-timeout", "2", "--jobs", "2"]) == 0
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        rows = {row["submission"]: row for row in csv.DictReader(fh)}
    stubborn_text, dies_text = (out / "feedback" / "stubborn.txt").read_text(), (out / "feedback" / "dies.txt").read_text()
    assert rows["stubborn.ipynb"]["status"] == "timeout" and rows["stubborn.ipynb"]["total"] == "0", stubborn_text
    assert "timed out" in stubborn_text
    assert rows["dies.ipynb"]["status"] == "error: the kernel died" and rows["dies.ipynb"]["total"] == "0", dies_text
    assert "while cell 0" in dies_text
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_with(marker), "a process the timed-out submission started is still running"


def test_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "missing"), "--set", SET, "--out", str(tmp_path / "out")])
    assert exc.value.code == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--set", SET, "--out", str(tmp_path / "out")])
    assert exc.value.code == 2 and "no *.ipynb files" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--set", SET, "--out", str(tmp_path / "out"), "--timeout", "0"])
    assert exc.value.code == 2 and "must be a positive number" in capsys.readouterr().err


def test_gradebook_columns_follow_the_exercise_notebook(tmp_path):
    """Columns follow the order of the check cells in the exercise notebook, not the registry's order."""
    nb = _exercise()
    check_cells = [i for i, cell in enumerate(nb.cells) if _check_id(cell)]
    assert len(check_cells) >= 2, "the fixture set needs two checks to test their order"
    first, last = check_cells[0], check_cells[-1]
    nb.cells[first], nb.cells[last] = nb.cells[last], nb.cells[first]
    nbformat.write(nb, tmp_path / f"{SET}.ipynb")
    grade = Grade("a.ipynb", SET, max_points=MAX)
    swapped = [_check_id(nb.cells[i]) for i in check_cells]
    assert gradebook_columns([grade], tmp_path) == swapped
    assert gradebook_columns([grade], tmp_path) != [c.check_id for c in CHECKS]


@pytest.mark.parametrize("threads", [1, 3])
def test_each_submission_gets_its_thread_count(tmp_path, threads):
    env = _environment(threads)
    assert env["COURSE_THREADS"] == env["OMP_NUM_THREADS"] == str(threads)


def test_without_a_sandbox_the_grader_says_so_and_still_grades_from_records(tmp_path, capsys):
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    nbformat.write(_solution(), subs / "full.ipynb")
    assert main([str(subs), "--set", SET, "--out", str(out), "--sandbox", "off", "--timeout", "60"]) == 0
    captured = capsys.readouterr()
    assert "WARNING: grading WITHOUT a sandbox (--sandbox off)" in captured.err
    assert "WITHOUT a sandbox" in captured.out
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        row = next(csv.DictReader(fh))
    assert float(row["total"]) == MAX


def test_a_missing_bubblewrap_is_named(monkeypatch, tmp_path):
    from course_utils.grading import sandbox

    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    sandbox.problem.cache_clear()
    try:
        assert "bubblewrap is not installed" in sandbox.problem(tmp_path)
    finally:
        sandbox.problem.cache_clear()


def test_a_file_that_vanished_or_is_not_a_file_is_its_own_row(tmp_path):
    from course_utils.grading.grader import Settings, grade_submission

    settings = Settings(exercises_dir=folder("exercises"), sets=(SET,))
    gone = grade_submission(tmp_path / "gone.ipynb", tmp_path, settings)
    assert gone.status == "error: the file disappeared before it could be read; submit it again" and gone.total == 0
    os.mkfifo(tmp_path / "pipe.ipynb")
    pipe = grade_submission(tmp_path / "pipe.ipynb", tmp_path, settings)
    assert pipe.status.startswith("error: this is not a plain file") and pipe.total == 0


def test_the_output_folder_may_not_be_inside_the_submissions(tmp_path, capsys):
    nbformat.write(_solution(), tmp_path / "full.ipynb")
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--set", SET, "--out", str(tmp_path / "out")])
    assert exc.value.code == 2 and "must not be inside the submissions folder" in capsys.readouterr().err


def test_an_unknown_set_on_the_command_line_is_a_usage_error(tmp_path, capsys):
    nbformat.write(_solution(), tmp_path / "full.ipynb")
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--set", "99_nothing", "--out", str(tmp_path.parent / "out-unknown")])
    assert exc.value.code == 2 and "no checks for exercise set '99_nothing'" in capsys.readouterr().err

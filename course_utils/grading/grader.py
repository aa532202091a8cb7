"""The instructor's grader: a folder of submitted notebooks -> a gradebook with feedback.

    python -m course_utils.grading.grader SUBMISSIONS_DIR --out OUTDIR [--timeout 300] [--cell-timeout 120]

Every ``*.ipynb`` under SUBMISSIONS_DIR (recursively) is graded on its own:

1. Its exercise set is read from the notebook metadata (``metadata.course.exercise_set``), not from
   the file name, so a renamed file is graded like any other.
2. A copy is prepared in a temporary folder (the submission itself is never modified): every check
   cell (a code cell with ``metadata.course.check``) gets the source of the same check cell in
   ``exercises/<set>.ipynb``, so a learner cannot alter a check. A deleted check cell is not added
   back: that check scores 0 and the feedback says to restore it.
3. The copy runs in its own process (and process group) with an overall time limit; the kernel
   runs every cell even when one raises, and a cell that runs past ``--cell-timeout`` is interrupted
   so the cells after it still run. Each check cell appends its result to a results file
   (``COURSE_GRADING_RESULTS``, see ``core.check``).
4. Points come from those results (partial credit per check); a check without a result scores 0
   with the reason (check cell missing, the cell raised an error, the submission timed out).

Output: ``OUTDIR/gradebook.csv`` (one row per submission, one column per check, total and maximum)
and ``OUTDIR/feedback/<submission>.txt`` (the learner's feedback). Failed submissions are grades,
not errors: the exit status is 0 unless the command line itself is wrong.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .core import RESULTS_ENV, CheckResult, Part, checks_for

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds course_utils/

# The program of the grading process. It imports nothing from the course (importing course_utils
# would import torch, seconds per submission): it executes the notebook and logs JSON lines to the
# progress file: "kernel" (its pid, as soon as it is launched), "start" and "cell" (its outcome) per
# code cell, then "done" or "failed". Arguments: notebook, progress file, cell time limit in seconds.
# On POSIX the kernel talks over Unix sockets in the working folder: two kernels starting at once
# over TCP can pick the same free port, and the loser hangs on exit instead of failing.
_WORKER = r"""
import json, os, sys
sys.modules["rfc3987_syntax"] = None  # optional for jsonschema, which nbformat imports; it takes seconds to import
import nbformat
from nbclient import NotebookClient

notebook, progress, cell_timeout = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = open(progress, "a", encoding="utf-8")

def record(**event):
    log.write(json.dumps(event) + "\n")
    log.flush()

client = NotebookClient(nbformat.read(notebook, as_version=4), timeout=cell_timeout, allow_errors=True,
                        interrupt_on_timeout=True, kernel_name="python3")

client.km = client.create_kernel_manager()
if os.name == "posix":
    client.km.transport, client.km.ip = "ipc", os.path.join(os.getcwd(), "kernel")
launch = client.async_start_new_kernel

async def launch_and_record(**kwargs):
    await launch(**kwargs)
    record(event="kernel", pid=getattr(getattr(client.km, "provisioner", None), "pid", None))

def on_execute(cell, cell_index):
    record(event="start", index=cell_index)

def on_cell(cell, cell_index, execute_reply):
    content = (execute_reply or {}).get("content", {})
    record(event="cell", index=cell_index, status=content.get("status", "unknown"),
           ename=content.get("ename", ""), evalue=content.get("evalue", ""))

client.async_start_new_kernel = launch_and_record
client.on_cell_execute = on_execute
client.on_cell_executed = on_cell
try:
    client.execute()
except Exception as err:  # the kernel died or could not start, ...
    why = "the kernel died" if type(err).__name__ == "DeadKernelError" else f"{type(err).__name__}: {err}"
    record(event="failed", error=why)
else:
    record(event="done")
"""


@dataclass
class Settings:
    """What every submission is graded with."""

    exercises_dir: Path
    timeout: float = 300.0
    cell_timeout: int = 120
    threads: int = 1  # torch CPU threads per submission: jobs side by side must not wait on each other


@dataclass
class CheckGrade:
    """One check's points and feedback for one submission."""

    check_id: str
    points: float
    max_points: float
    feedback: str


@dataclass
class Grade:
    """The grade of one submission: a gradebook row plus the learner's feedback."""

    submission: str  # path relative to the submissions folder
    exercise_set: str = ""
    status: str = "ok"  # ok | timeout | error: <why>
    checks: list[CheckGrade] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    max_points: float | None = None  # None when the exercise set is unknown

    @property
    def total(self) -> float:
        return float(sum(c.points for c in self.checks))


class SubmissionError(Exception):
    """The submission cannot be graded at all (not a notebook, no or unknown exercise set)."""


@dataclass
class RunReport:
    """What happened when the prepared notebook ran."""

    results: dict[str, CheckResult]  # check id -> last result recorded
    cells: dict[int, dict]  # cell index -> last execution event for that cell
    running: int | None = None  # the cell that had started but not finished when the run ended
    finished: bool = False
    timed_out: bool = False
    failure: str = ""  # why the run stopped early (kernel died, could not start, ...)


# --------------------------------------------------------------------------- finding submissions


def find_submissions(root: Path) -> list[Path]:
    """Every ``*.ipynb`` file under ``root``, checkpoints skipped, sorted by relative path."""
    found = [p for p in root.rglob("*.ipynb") if p.is_file() and ".ipynb_checkpoints" not in p.relative_to(root).parts]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _check_id(cell) -> str | None:
    """The check id of a code cell (``metadata.course.check``), or None."""
    course = cell.get("metadata", {}).get("course")
    if cell.get("cell_type") == "code" and isinstance(course, dict) and isinstance(course.get("check"), str):
        return course["check"]
    return None


def read_submission(path: Path) -> tuple[nbformat.NotebookNode, str]:
    """Read a submitted notebook and its exercise set; raise SubmissionError saying why it can't be graded."""
    try:
        text = path.read_text(encoding="utf-8")
        json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SubmissionError(f"not a notebook file (invalid JSON: {err})") from None
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as err:  # nbformat raises several kinds for a JSON file that is no notebook
        raise SubmissionError(f"not a Jupyter notebook ({type(err).__name__}: {err})") from None
    course = nb.metadata.get("course")
    exercise_set = course.get("exercise_set") if isinstance(course, dict) else None
    if not isinstance(exercise_set, str) or not exercise_set:
        raise SubmissionError("the notebook metadata names no exercise set (metadata.course.exercise_set); "
                              "submit the notebook you started from exercises/")
    return nb, exercise_set


@functools.lru_cache(maxsize=None)
def reference_check_cells(exercises_dir: Path, exercise_set: str) -> dict[str, str]:
    """Check id -> check cell source, from ``exercises/<set>.ipynb`` (read once per grader run)."""
    path = exercises_dir / f"{exercise_set}.ipynb"
    if not path.is_file():
        raise SubmissionError(f"no reference notebook {path} for exercise set {exercise_set!r}")
    nb = nbformat.read(path, as_version=4)
    return {cid: cell.source for cell in nb.cells if (cid := _check_id(cell))}


def prepare(nb: nbformat.NotebookNode, reference: dict[str, str]) -> dict[str, list[int]]:
    """Restore every check cell's source from ``reference`` (in place); return check id -> cell indices."""
    where: dict[str, list[int]] = {}
    for index, cell in enumerate(nb.cells):
        cid = _check_id(cell)
        if cid in reference:
            cell.source = reference[cid]
            cell.outputs = []
            where.setdefault(cid, []).append(index)
    return where


# --------------------------------------------------------------------------- running one notebook


def _environment(results: Path, threads: int = 1) -> dict[str, str]:
    """The grading process's environment; the kernel inherits it (and imports course_utils from here)."""
    env = dict(os.environ)
    env[RESULTS_ENV] = str(results)
    env["COURSE_DEVICE"] = "cpu"
    env["COURSE_THREADS"] = str(threads)  # read by course_utils.runtime.choose_cpu_threads in the kernel
    env["OMP_NUM_THREADS"] = str(threads)  # and by torch itself, before the first import of course_utils
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # silences a debugger warning in the kernel
    return env


def _kill_group(pid: int | None) -> None:
    """Kill the process group led by ``pid`` (the grading process, or the kernel: each has its own)."""
    if not pid:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_json_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue  # e.g. a line cut short when the process was killed
        if isinstance(data, dict):
            events.append(data)
    return events


def _result_from_json(data: dict) -> CheckResult:
    """Rebuild a CheckResult from the JSON that ``core.check`` wrote."""
    parts = [Part(p["what"], float(p["points"]), float(p["earned"]), p.get("message", "")) for p in data.get("parts", [])]
    return CheckResult(data["check_id"], data.get("title", ""), float(data["max_points"]), parts,
                       data.get("status", "graded"), data.get("message", ""))


def run_notebook(nb: nbformat.NotebookNode, workdir: Path, settings: Settings) -> RunReport:
    """Run a prepared notebook in its own process group under the time limits; collect what happened."""
    notebook, results, progress = workdir / "submission.ipynb", workdir / "results.jsonl", workdir / "progress.jsonl"
    nbformat.write(nb, notebook)
    with open(workdir / "grading.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(notebook), str(progress), str(settings.cell_timeout)],
                                cwd=workdir, env=_environment(results, settings.threads), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=settings.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            proc.wait()
    events = _read_json_lines(progress)
    report = RunReport(results={}, cells={}, timed_out=timed_out)
    for data in _read_json_lines(results):
        try:
            result = _result_from_json(data)
        except (KeyError, TypeError, ValueError):
            continue
        report.results[result.check_id] = result  # a check run twice counts its last run
    for event in events:
        if event.get("event") == "start":
            report.running = int(event["index"])
        elif event.get("event") == "cell":
            report.cells[int(event["index"])] = event
            report.running = None
        elif event.get("event") == "done":
            report.finished = True
        elif event.get("event") == "failed":
            report.failure = event.get("error", "unknown error")
    if not report.finished:  # the kernel runs in a session of its own: make sure it is gone too
        for event in events:
            if event.get("event") == "kernel":
                _kill_group(event.get("pid"))
    if not (report.finished or report.failure or timed_out):
        lines = (workdir / "grading.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()
        report.failure = f"the grading process exited with status {proc.returncode}" + (f": {lines[-1]}" if lines else "")
    return report


# --------------------------------------------------------------------------- scoring


def _first_line(source: str) -> str:
    line = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


def _where(nb: nbformat.NotebookNode, index: int) -> str:
    return f"cell {index} (counting from 0; it starts `{_first_line(nb.cells[index].source)}`)"


def _cell_notes(nb: nbformat.NotebookNode, report: RunReport, settings: Settings) -> list[str]:
    """A note per cell that raised or was interrupted, and one if the run ended early."""
    notes = []
    for index, event in sorted(report.cells.items()):
        if event.get("status") != "error":
            continue
        where = _where(nb, index)
        if event.get("ename") == "KeyboardInterrupt":
            notes.append(f"{where} ran longer than the cell time limit ({settings.cell_timeout} s) and was interrupted")
        else:
            notes.append(f"{where} raised {event.get('ename')}: {event.get('evalue')}")
    during = f" while {_where(nb, report.running)} was running" if report.running is not None else ""
    if report.timed_out:
        notes.append(f"the notebook ran longer than the time limit ({settings.timeout:g} s) and was stopped{during}")
    elif report.failure:
        notes.append(f"the notebook stopped early{during}: {report.failure}")
    return notes


def _why_no_result(indices: list[int], report: RunReport, settings: Settings) -> str:
    """Why a present check cell recorded no result."""
    event = report.cells.get(indices[-1])
    if event and event.get("status") == "error":
        if event.get("ename") == "KeyboardInterrupt":
            return f"no result: the check cell ran past the cell time limit ({settings.cell_timeout} s) and was interrupted"
        return f"no result: the check cell raised {event.get('ename')}: {event.get('evalue')}"
    if event is None and report.timed_out:
        return f"did not run: the submission timed out ({settings.timeout:g} s) before this check"
    if event is None and report.failure:
        return f"did not run: the notebook stopped before this check ({report.failure})"
    return "no result: the check cell ran but recorded nothing (was `check` redefined in your notebook?)"


def score(nb: nbformat.NotebookNode, exercise_set: str, where: dict[str, list[int]], report: RunReport,
          settings: Settings) -> list[CheckGrade]:
    """Points and feedback for every check of the set."""
    grades = []
    for chk in checks_for(exercise_set):
        head = f"[x] {chk.check_id} ({chk.title}): 0/{chk.max_points:g} points"
        if chk.check_id not in where:
            grades.append(CheckGrade(chk.check_id, 0.0, chk.max_points,
                                     f"{head}\n    the check cell is missing: restore the cell "
                                     f"`check(\"{chk.check_id}\", ...)` from exercises/{exercise_set}.ipynb"))
        elif chk.check_id in report.results:
            result = report.results[chk.check_id]
            grades.append(CheckGrade(chk.check_id, result.points, chk.max_points, result.feedback()))
        else:
            grades.append(CheckGrade(chk.check_id, 0.0, chk.max_points,
                                     f"{head}\n    {_why_no_result(where[chk.check_id], report, settings)}"))
    return grades


def grade_submission(path: Path, root: Path, settings: Settings) -> Grade:
    """Grade one submitted notebook; any failure becomes part of the grade."""
    grade = Grade(submission=path.relative_to(root).as_posix())
    try:
        nb, grade.exercise_set = read_submission(path)
        try:
            grade.max_points = sum(c.max_points for c in checks_for(grade.exercise_set))
        except KeyError:
            raise SubmissionError(f"unknown exercise set {grade.exercise_set!r} in the notebook metadata") from None
        reference = reference_check_cells(settings.exercises_dir, grade.exercise_set)
    except SubmissionError as err:
        grade.status = f"error: {err}"
        return grade
    where = prepare(nb, reference)
    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        report = run_notebook(nb, Path(tmp), settings)
    grade.checks = score(nb, grade.exercise_set, where, report, settings)
    grade.notes = _cell_notes(nb, report, settings)
    if report.timed_out:
        grade.status = "timeout"
    elif report.failure:
        grade.status = f"error: {report.failure}"
    return grade


# --------------------------------------------------------------------------- output


def _number(x: float) -> str:
    return f"{x:g}"


def gradebook_columns(grades: list[Grade], exercises_dir: Path | None = None) -> list[str]:
    """The check columns: exercise sets in course order, and within a set the order in which its check
    cells stand in the exercise notebook (the registry's order where there is no reference notebook)."""
    sets = sorted({g.exercise_set for g in grades if g.max_points is not None})
    columns: list[str] = []
    for exercise_set in sets:
        order: list[str] = []
        if exercises_dir is not None:
            try:
                order = list(reference_check_cells(exercises_dir, exercise_set))
            except SubmissionError:
                order = []
        order += [c.check_id for c in checks_for(exercise_set) if c.check_id not in order]
        columns += [cid for cid in order if cid not in columns]
    columns += sorted({c.check_id for g in grades for c in g.checks} - set(columns))
    return columns


def write_gradebook(grades: list[Grade], path: Path, exercises_dir: Path | None = None) -> None:
    """One row per submission, one column per check (blank where the check is not in its set)."""
    check_ids = gradebook_columns(grades, exercises_dir)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["submission", "exercise_set", "status", *check_ids, "total", "max_points"])
        for g in grades:
            points = {c.check_id: _number(c.points) for c in g.checks}
            writer.writerow([g.submission, g.exercise_set, g.status, *(points.get(cid, "") for cid in check_ids),
                             _number(g.total), "" if g.max_points is None else _number(g.max_points)])


def feedback_name(submission: str) -> str:
    """``week 1/hw.ipynb`` -> ``week 1__hw.txt``."""
    name = submission.replace("/", "__")
    return (name[: -len(".ipynb")] if name.endswith(".ipynb") else name) + ".txt"


def feedback_text(g: Grade) -> str:
    """The learner's feedback file: a header, each check's feedback, then notes."""
    total = f"{_number(g.total)}/{_number(g.max_points)}" if g.max_points is not None else "0 (could not be graded)"
    lines = [f"submission:   {g.submission}", f"exercise set: {g.exercise_set or '(unknown)'}",
             f"points:       {total}", f"status:       {g.status}", ""]
    if not g.checks:
        lines.append(f"This notebook could not be graded: {g.status.removeprefix('error: ')}")
    lines += [c.feedback for c in g.checks]
    if g.notes:
        lines += ["", "notes:"] + [f"  - {note}" for note in g.notes]
    return "\n".join(lines) + "\n"


def write_feedback(grades: list[Grade], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for g in grades:
        name, n = feedback_name(g.submission), 1
        while name in used:  # 'a/b.ipynb' and 'a__b.ipynb' would collide
            n += 1
            name = f"{feedback_name(g.submission)[:-4]}-{n}.txt"
        used.add(name)
        (folder / name).write_text(feedback_text(g), encoding="utf-8")


def summary_table(grades: list[Grade]) -> str:
    """A short fixed-width table: submission, set, points, status."""
    rows = [("submission", "exercise set", "points", "status")]
    for g in grades:
        pts = f"{_number(g.total)}/{_number(g.max_points)}" if g.max_points is not None else "0"
        rows.append((g.submission, g.exercise_set or "-", pts, g.status))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows)


# --------------------------------------------------------------------------- command line


def grade_folder(root: Path, out: Path, settings: Settings, jobs: int = 1) -> list[Grade]:
    """Grade every notebook under ``root``; write the gradebook and feedback files to ``out``."""
    paths = find_submissions(root)
    reference_check_cells.cache_clear()  # exercises/ may have changed since an earlier call
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        grades = list(pool.map(lambda p: grade_submission(p, root, settings), paths))
    out.mkdir(parents=True, exist_ok=True)
    write_gradebook(grades, out / "gradebook.csv", settings.exercises_dir)
    write_feedback(grades, out / "feedback")
    return grades


def _positive(kind):
    """An argparse type: a positive int or float."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive {'whole ' if kind is int else ''}number, got {text!r}")
        return value
    return parse


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``course-grade``); returns the exit status."""
    from ..notebook_tools.paths import folder

    parser = argparse.ArgumentParser(prog="python -m course_utils.grading.grader",
                                     description="Grade a folder of exercise notebooks: gradebook.csv plus a feedback file each.")
    parser.add_argument("submissions", type=Path, help="folder of submitted notebooks (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, help="output folder for gradebook.csv and feedback/")
    parser.add_argument("--timeout", type=_positive(float), default=300.0,
                        help="seconds one submission may run in all (default 300)")
    parser.add_argument("--cell-timeout", type=_positive(int), default=120,
                        help="seconds one cell may run before it is interrupted (default 120)")
    parser.add_argument("--exercises-dir", type=Path, default=None,
                        help="reference exercise notebooks (default: the course's exercises/)")
    parser.add_argument("--jobs", type=_positive(int), default=1, help="submissions graded at once (default 1)")
    parser.add_argument("--threads", type=_positive(int), default=1,
                        help="torch CPU threads per submission (default 1: with more, jobs side by side and any other "
                             "busy process make every training step many times slower)")
    args = parser.parse_args(argv)

    if not args.submissions.is_dir():
        parser.error(f"submissions folder {args.submissions} does not exist or is not a folder")
    exercises_dir = args.exercises_dir or folder("exercises")
    if not exercises_dir.is_dir():
        parser.error(f"exercises folder {exercises_dir} does not exist")
    if not find_submissions(args.submissions):
        parser.error(f"no *.ipynb files under {args.submissions}")

    settings = Settings(exercises_dir=exercises_dir, timeout=args.timeout, cell_timeout=args.cell_timeout,
                        threads=args.threads)
    grades = grade_folder(args.submissions, args.out, settings, jobs=args.jobs)
    print(summary_table(grades))
    print(f"\nwrote {args.out / 'gradebook.csv'} and {len(grades)} feedback file(s) in {args.out / 'feedback'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

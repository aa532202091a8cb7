"""The instructor's grader: a folder of submitted notebooks -> a gradebook with feedback.

    python -m course_utils.grading.grader SUBMISSIONS_DIR --set 02_attention_basics --out OUTDIR

Every ``*.ipynb`` under SUBMISSIONS_DIR (recursively) is graded on its own, and nothing one
submission does can change another's row or the points its own answers earn:

1. The file is read without following links out of the folder (a link to a file outside is
   refused), as a plain file only (a FIFO, a folder, a vanished or undecodable file is that
   submission's error row). Its exercise set comes from the notebook metadata
   (``metadata.course.exercise_set``) and must be one the instructor named with ``--set``.
2. Every check cell (a code cell with ``metadata.course.check``) gets the source of the same cell
   in ``exercises/<set>.ipynb``; a deleted check cell is not added back and scores 0.
3. The notebook runs in a sandbox (``sandbox``: bubblewrap; a read-only view of the course, no
   network, a private size-capped scratch folder, a memory cap, every process ended with it) under
   an overall time limit; a cell past ``--cell-timeout`` is interrupted so the rest still runs.
4. Each check cell saves a *record* of its calls into the learner's code (``record``). The grader
   loads records as data only and replays each check in its own process (``core.replay_check``):
   points come from the grader's copy of the check, on the grader's inputs, never from anything the
   notebook printed or wrote, and never exceed a check's maximum.

Output: ``OUTDIR/gradebook.csv`` (one row per submission, one column per check, total and maximum),
written atomically once every submission is graded, and ``OUTDIR/feedback/<submission>.txt``. Failed
submissions are grades, not errors: the exit status is 0 unless the command line itself is wrong.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import csv
import functools
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import record as _record
from . import sandbox
from .core import checks_for, replay_check

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds course_utils/
_WORKER = Path(__file__).resolve().with_name("notebook_worker.py")
MAX_NOTEBOOK_BYTES = 32 * 2**20
_STREAM_LINE = 96 * 2**20  # one event line (a base64 record of at most 64 MiB fits)
_REPLAYING = threading.Lock()


@dataclass
class Settings:
    """What every submission is graded with."""

    exercises_dir: Path
    sets: tuple[str, ...] = ()  # the exercise sets being graded (--set); empty: any known set
    timeout: float = 300.0
    cell_timeout: int = 120
    threads: int = 1  # torch CPU threads per submission: jobs side by side must not wait on each other
    memory_mb: int = 3072  # address space of each process of a submission
    output_mb: int = 64  # printed output kept count, largest file, and the scratch folder is 4x this
    use_sandbox: bool = True
    hidden: tuple[Path, ...] = ()  # folders the sandbox hides (the submissions, the output)


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

    submission: str  # path relative to the submissions folder, made printable
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
    """What happened when the prepared notebook ran, as the grader saw it."""

    records: list[dict]  # loaded records, in the order they arrived
    cells: dict[int, dict]  # cell index -> last execution event for that cell
    running: int | None = None  # the cell that had started but not finished when the run ended
    finished: bool = False
    timed_out: bool = False
    failure: str = ""  # why the run stopped early (kernel died, could not start, ...)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- finding and reading submissions


def printable(relative: str) -> str:
    """A file name as text that can go into a CSV and a feedback file (undecodable bytes escaped)."""
    raw = os.fsencode(relative)
    return raw.decode("utf-8", "backslashreplace").translate({c: f"\\x{c:02x}" for c in range(32)})


def find_submissions(root: Path) -> list[Path]:
    """Every ``*.ipynb`` under ``root`` (links to folders not followed), checkpoints skipped, sorted."""
    found = []
    for folder_, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
        found += [Path(folder_) / f for f in files if f.endswith(".ipynb")]
        found += [Path(folder_) / d for d in dirs if d.endswith(".ipynb")]  # a folder named x.ipynb: an error row
    return sorted(found, key=lambda p: os.fsencode(p.relative_to(root)))


def _read_bytes(path: Path, root: Path) -> bytes:
    """The file's bytes; SubmissionError if it is a link out of the folder, not a plain file, gone, or too big."""
    try:
        if path.is_symlink():
            target = Path(os.path.realpath(path))
            if not target.is_relative_to(Path(os.path.realpath(root))):
                raise SubmissionError("a link to a file outside the submissions folder is refused; submit the notebook itself")
        fd = os.open(os.path.realpath(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise SubmissionError("the file disappeared before it could be read; submit it again") from None
    except OSError as err:
        raise SubmissionError(f"the file could not be opened ({err.strerror}); submit a plain .ipynb file") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SubmissionError("this is a folder, not a notebook file")
        raise SubmissionError("this is not a plain file (a pipe or a device?); submit the .ipynb file itself")
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_NOTEBOOK_BYTES + 1)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise SubmissionError(f"the notebook is larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB; clear its outputs "
                              "(Edit > Clear Outputs of All Cells) and submit it again")
    return data


def _check_id(cell) -> str | None:
    """The check id of a code cell (``metadata.course.check``), or None."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    course = meta.get("course") if isinstance(meta, dict) else None
    if cell.get("cell_type") == "code" and isinstance(course, dict) and isinstance(course.get("check"), str):
        return course["check"]
    return None


def read_submission(path: Path, root: Path | None = None) -> tuple[nbformat.NotebookNode, str]:
    """Read a submitted notebook and its exercise set; raise SubmissionError saying why it can't be graded."""
    data = _read_bytes(path, root or path.parent)
    try:
        text = data.decode("utf-8")
        json.loads(text)
    except UnicodeDecodeError as err:
        raise SubmissionError(f"not a notebook file (not UTF-8 text: {err.reason} at byte {err.start})") from None
    except (json.JSONDecodeError, RecursionError) as err:
        raise SubmissionError(f"not a notebook file (invalid JSON: {err})") from None
    try:
        nb = nbformat.reads(text, as_version=4)
        cells = [c for c in nb.cells if not isinstance(c, dict) or not isinstance(c.get("source", ""), str)]
        if cells:
            raise ValueError("a cell without source text")
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


def _environment(threads: int = 1, scratch: str = sandbox.SCRATCH) -> dict[str, str]:
    """The worker's environment (the kernel inherits it): no variable of the instructor's beyond PATH and locale."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    env["HOME"] = scratch
    env["TMPDIR"] = scratch
    for name, sub in (("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_DATA_DIR", "jupyter"),
                      ("JUPYTER_CONFIG_DIR", "jupyter-config"), ("IPYTHONDIR", "ipython"), ("MPLCONFIGDIR", "mpl")):
        env[name] = os.path.join(scratch, sub)
    env["MPLBACKEND"] = "Agg"
    env["COURSE_DEVICE"] = "cpu"
    env["COURSE_THREADS"] = str(threads)  # read by course_utils.runtime.choose_cpu_threads in the kernel
    env["OMP_NUM_THREADS"] = str(threads)  # and by torch itself, before the first import of course_utils
    env["PYTHONPATH"] = str(_PACKAGE_ROOT)
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # silences a debugger warning in the kernel
    return env


def _kill_group(pid: int | None) -> None:
    """Kill the process group led by ``pid``."""
    if not pid:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Reader(threading.Thread):
    """Reads the worker's event stream: JSON lines, at most ``cap`` bytes in all; anything else is skipped."""

    def __init__(self, stream, cap: int):
        super().__init__(daemon=True)
        self.stream, self.cap, self.events, self.flooded = stream, cap, [], False

    def run(self) -> None:
        total = 0
        while line := self.stream.readline(_STREAM_LINE):
            total += len(line)
            if total > self.cap:
                self.flooded = True
                break
            try:
                event = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                continue  # a line cut short, or not ours
            if isinstance(event, dict) and isinstance(event.get("event"), str):
                self.events.append(event)
        self.stream.close()


def _load(event: dict) -> dict | str:
    """A record event -> the record, or why it cannot be used."""
    try:
        return _record.loads(base64.b64decode(str(event.get("data", "")), validate=True))
    except (binascii.Error, ValueError) as err:
        return str(err)


def run_notebook(nb: nbformat.NotebookNode, settings: Settings) -> RunReport:
    """Run a prepared notebook in its sandbox under the time limits; collect what it reported."""
    inner = [sys.executable, str(_WORKER), str(settings.cell_timeout), str(settings.memory_mb * 2**20),
             str(settings.output_mb * 2**20)]
    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        if settings.use_sandbox:
            cmd, cwd, env = sandbox.command(inner, _PACKAGE_ROOT, list(settings.hidden), 4 * settings.output_mb * 2**20),                 None, _environment(settings.threads)
        else:
            cmd, cwd, env = inner, tmp, _environment(settings.threads, tmp)
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        reader = _Reader(proc.stdout, cap=4 * settings.output_mb * 2**20)
        reader.start()
        try:
            proc.stdin.write(nbformat.writes(nb).encode("utf-8"))
            proc.stdin.close()
        except BrokenPipeError:
            pass
        timed_out, deadline = False, time.monotonic() + settings.timeout
        while proc.poll() is None and not reader.flooded:  # the worker runs; its stream is read meanwhile
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(0.1)
        if not timed_out and not reader.flooded:
            reader.join(5)  # the stream's last events (the sandbox closes it as it ends)
        _kill_group(proc.pid)  # bwrap, and with it every process of the sandbox; without one, the worker's group
        proc.wait()
        reader.join(5)
        report = RunReport(records=[], cells={}, timed_out=timed_out)
        if reader.flooded:
            report.notes.append(f"the notebook sent more than {4 * settings.output_mb} MiB to the grader and was stopped")
        for event in reader.events:
            kind = event["event"]
            if kind == "start" and isinstance(event.get("index"), int):
                report.running = event["index"]
            elif kind == "cell" and isinstance(event.get("index"), int):
                report.cells[event["index"]] = event
                report.running = None
            elif kind == "record":
                loaded = _load(event)
                if isinstance(loaded, dict):
                    report.records.append(loaded)
                else:
                    report.notes.append(f"a check record could not be used ({loaded})")
            elif kind == "note" and isinstance(event.get("text"), str):
                report.notes.append(event["text"][:300])
            elif kind == "done":
                report.finished = True
            elif kind == "failed":
                report.failure = str(event.get("error", "unknown error"))[:500]
            elif kind == "kernel" and not settings.use_sandbox and isinstance(event.get("pid"), int):
                _kill_group(event["pid"])  # no process namespace: end the kernel's own session by hand
        if not (report.finished or report.failure or timed_out):
            report.failure = f"the grading process exited with status {proc.returncode}" + \
                (" (its event stream was cut)" if reader.flooded else "")
        return report


# --------------------------------------------------------------------------- scoring


def _first_line(source: str) -> str:
    line = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


def _where(nb: nbformat.NotebookNode, index: int) -> str:
    if not 0 <= index < len(nb.cells):
        return f"cell {index}"
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
    return notes + report.notes


def _why_no_result(indices: list[int], report: RunReport, settings: Settings) -> str:
    """Why a present check cell left no record."""
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
    """Points and feedback for every check of the set, each replayed here from the notebook's last record of it."""
    last = {r["check_id"]: r for r in report.records}
    grades = []
    for chk in checks_for(exercise_set):
        head = f"[x] {chk.check_id} ({chk.title}): 0/{chk.max_points:g} points"
        if chk.check_id not in where:
            grades.append(CheckGrade(chk.check_id, 0.0, chk.max_points,
                                     f"{head}\n    the check cell is missing: restore the cell "
                                     f"`check(\"{chk.check_id}\", ...)` from exercises/{exercise_set}.ipynb"))
        elif chk.check_id in last:
            with _REPLAYING:  # checks switch functions off process-wide while they run: one replay at a time
                result = replay_check(last[chk.check_id])
            points = min(max(result.points, 0.0), chk.max_points)
            grades.append(CheckGrade(chk.check_id, points, chk.max_points, result.feedback()))
        else:
            grades.append(CheckGrade(chk.check_id, 0.0, chk.max_points,
                                     f"{head}\n    {_why_no_result(where[chk.check_id], report, settings)}"))
    return grades


def grade_submission(path: Path, root: Path, settings: Settings) -> Grade:
    """Grade one submitted notebook; any failure becomes part of the grade."""
    grade = Grade(submission=printable(os.fsdecode(path.relative_to(root))))
    try:
        nb, grade.exercise_set = read_submission(path, root)
        grade.exercise_set = printable(grade.exercise_set)[:100]
        if settings.sets and grade.exercise_set not in settings.sets:
            raise SubmissionError(f"this notebook is exercise set {grade.exercise_set!r}, but this grading run is for "
                                  f"{', '.join(settings.sets)}: submit the notebook of the set you were asked for")
        try:
            grade.max_points = sum(c.max_points for c in checks_for(grade.exercise_set))
        except KeyError:
            raise SubmissionError(f"unknown exercise set {grade.exercise_set!r} in the notebook metadata") from None
        reference = reference_check_cells(settings.exercises_dir, grade.exercise_set)
    except SubmissionError as err:
        grade.status = f"error: {err}"
        return grade
    where = prepare(nb, reference)
    report = run_notebook(nb, settings)
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


def _replace_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder: readers see the old file or the new."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_gradebook(grades: list[Grade], path: Path, exercises_dir: Path | None = None) -> None:
    """One row per submission, one column per check (blank where the check is not in its set), written at once."""
    check_ids = gradebook_columns(grades, exercises_dir)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["submission", "exercise_set", "status", *check_ids, "total", "max_points"])
    for g in grades:
        points = {c.check_id: _number(c.points) for c in g.checks}
        writer.writerow([g.submission, g.exercise_set, g.status, *(points.get(cid, "") for cid in check_ids),
                         _number(g.total), "" if g.max_points is None else _number(g.max_points)])
    _replace_atomically(path, buffer.getvalue())


def feedback_name(submission: str) -> str:
    """``week 1/hw.ipynb`` -> ``week 1__hw.txt`` (characters a file name should not hold become ``_``)."""
    name = submission.replace("/", "__")
    name = "".join(c if c.isprintable() and c not in '\\:*?"<>|' else "_" for c in name)
    return (name[: -len(".ipynb")] if name.endswith(".ipynb") else name)[:200] + ".txt"


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
        _replace_atomically(folder / name, feedback_text(g))


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
    out.mkdir(parents=True, exist_ok=True)
    settings.hidden = tuple({Path(os.path.realpath(root)), Path(os.path.realpath(out)), *settings.hidden})

    def grade_one(path: Path) -> Grade:
        try:
            return grade_submission(path, root, settings)
        except Exception as err:  # noqa: BLE001  (one submission never stops the run)
            return Grade(printable(os.fsdecode(path.relative_to(root))),
                         status=f"error: the grader could not grade this file ({type(err).__name__}: {err})")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        grades = list(pool.map(grade_one, paths))
    write_feedback(grades, out / "feedback")
    write_gradebook(grades, out / "gradebook.csv", settings.exercises_dir)
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


SANDBOX_WARNING = ("WARNING: grading WITHOUT a sandbox ({why}). Submitted code runs with your rights: it can read "
                   "and change your files, reach the network, and leave processes behind. Points are still computed "
                   "by the grader from each notebook's records, but only the sandbox keeps submissions from "
                   "harming each other or this machine.")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``course-grade``); returns the exit status."""
    from ..notebook_tools.paths import folder

    parser = argparse.ArgumentParser(prog="python -m course_utils.grading.grader",
                                     description="Grade a folder of exercise notebooks: gradebook.csv plus a feedback file each.")
    parser.add_argument("submissions", type=Path, help="folder of submitted notebooks (searched recursively)")
    parser.add_argument("--set", dest="sets", action="append", required=True, metavar="EXERCISE_SET",
                        help="the exercise set being graded, e.g. 02_attention_basics (repeat for several); a notebook "
                             "of another set scores 0 with a message")
    parser.add_argument("--out", type=Path, required=True, help="output folder for gradebook.csv and feedback/")
    parser.add_argument("--timeout", type=_positive(float), default=300.0,
                        help="seconds one submission may run in all (default 300)")
    parser.add_argument("--cell-timeout", type=_positive(int), default=120,
                        help="seconds one cell may run before it is interrupted (default 120)")
    parser.add_argument("--memory-mb", type=_positive(int), default=3072,
                        help="memory (address space) each process of a submission may use, in MiB (default 3072)")
    parser.add_argument("--output-mb", type=_positive(int), default=64,
                        help="output a submission may print and largest file it may write, in MiB (default 64)")
    parser.add_argument("--sandbox", choices=("auto", "require", "off"), default="auto",
                        help="auto (default): bubblewrap where it works, else grade without and say so; require: "
                             "refuse to grade without it; off: no sandbox")
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
    for name in args.sets:
        try:
            checks_for(name)
        except KeyError as err:
            parser.error(str(err).strip("'\""))
    if not find_submissions(args.submissions):
        parser.error(f"no *.ipynb files under {args.submissions}")
    if Path(os.path.realpath(args.out)).is_relative_to(Path(os.path.realpath(args.submissions))):
        parser.error("the output folder must not be inside the submissions folder")

    why = "" if args.sandbox == "off" else sandbox.problem(_PACKAGE_ROOT)
    if args.sandbox == "off" or why:
        if args.sandbox == "require":
            parser.error(f"--sandbox require, but the sandbox does not work here: {why}")
        print(SANDBOX_WARNING.format(why=why or "--sandbox off"), file=sys.stderr)
    settings = Settings(exercises_dir=exercises_dir, sets=tuple(args.sets), timeout=args.timeout,
                        cell_timeout=args.cell_timeout, threads=args.threads, memory_mb=args.memory_mb,
                        output_mb=args.output_mb, use_sandbox=not (args.sandbox == "off" or why))
    grades = grade_folder(args.submissions, args.out, settings, jobs=args.jobs)
    print(summary_table(grades))
    mode = "in a bubblewrap sandbox" if settings.use_sandbox else "WITHOUT a sandbox"
    print(f"\ngraded {len(grades)} submission(s) {mode}; wrote {args.out / 'gradebook.csv'} and the feedback files "
          f"in {args.out / 'feedback'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

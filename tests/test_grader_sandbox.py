"""The grader against hostile submissions, graded in one run beside honest ones.

Each fixture tries one way to gain points or to do harm: redefining ``check``, patching the grading
code or ``torch.allclose``, forging records (and a pickle that would run code in the grader),
writing to other submissions, the course, or the gradebook (also from a process left behind),
reading the instructor's files, reaching the network, exhausting memory, flooding output and the
disk, killing its own processes, and odd files (a FIFO, links in and out of the folder, undecodable
and multi-line names, a folder named like a notebook, a notebook of another exercise set). The
honest submissions' points must not change, no row may exceed its maximum, every file outside the
output folder must hash the same before and after, and nothing a submission started may survive.

These tests need the sandbox (bubblewrap); without it they skip, saying why, unless
COURSE_REQUIRE_SANDBOX=1 (CI sets it), which turns the skip into a failure.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import io
import os
import time
from pathlib import Path

import nbformat
import pytest

from course_utils.grading import checks_for, run_check
from course_utils.grading import sandbox
from course_utils.grading.grader import _PACKAGE_ROOT, feedback_name, main
from course_utils.notebook_tools.paths import folder
from test_grader import _processes_with

SET = "00_orientation"
FULL = {c.check_id: c.max_points for c in checks_for(SET)}
MAX = sum(FULL.values())
ZERO = {cid: 0.0 for cid in FULL}
MEMORY_MB, OUTPUT_MB = 2048, 8

_why = sandbox.problem(_PACKAGE_ROOT)
if _why and os.environ.get("COURSE_REQUIRE_SANDBOX") == "1":
    raise RuntimeError(f"COURSE_REQUIRE_SANDBOX=1 but the grader's sandbox does not work here: {_why}")
pytestmark = pytest.mark.skipif(bool(_why), reason=f"the grader's sandbox does not work here: {_why}")


# --------------------------------------------------------------------------- notebooks


def _read(kind: str, exercise_set: str = SET) -> nbformat.NotebookNode:
    nb = nbformat.read(folder(kind) / f"{exercise_set}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def _code(source: str):
    return nbformat.v4.new_code_cell(source)


def _defining(nb, name: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and f"def {name}(" in c.source)


WRONG = {  # plausible wrong answers to exercise set 00: no ValueError, always the first word, guesses
    "normalise": "def normalise(scores):\n    return [s / max(scores) for s in scores]\n",
    "top_word": "def top_word(weights, words):\n    return words[0]\n",
    "cat_weight_at_six": "def cat_weight_at_six():\n    return 0.5\n\n\ndef cat_score_for_half():\n    return 1.0\n",
}


def _wrong_points() -> dict[str, float]:
    """What the wrong answers earn when nobody cheats (run here, in the test's own process)."""
    space: dict = {}
    for source in WRONG.values():
        exec(source, space)  # noqa: S102  (the test's own fixture code)
    return {"00.normalise": run_check("00.normalise", space["normalise"]).points,
            "00.top_word": run_check("00.top_word", space["top_word"]).points,
            "00.predict": run_check("00.predict", space["cat_weight_at_six"], space["cat_score_for_half"]).points}


def _wrong() -> nbformat.NotebookNode:
    nb = _read("solutions")
    for name, source in WRONG.items():
        nb.cells[_defining(nb, name)].source = source
    return nb


def _after_import(nb, source: str) -> nbformat.NotebookNode:
    """``nb`` with a cell of ``source`` right after the cell that imports ``check``."""
    nb = copy.deepcopy(nb)
    at = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "import check" in c.source)
    nb.cells.insert(at + 1, _code(source))
    return nb


def _at(nb, index: int, source: str) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    nb.cells.insert(len(nb.cells) if index < 0 else index, _code(source))
    return nb


def _must_fail(attempts: str) -> str:
    """A cell that tries each statement and raises, naming them, if any succeeds."""
    lines = ["escaped = []"]
    for statement in attempts.strip().splitlines():
        lines += ["try:", f"    {statement}", f"    escaped.append({statement!r})", "except BaseException:", "    pass"]
    lines += ["if escaped:", "    raise RuntimeError(f'ESCAPED: {escaped}')"]
    return "\n".join(lines)


def _evil_pickle(marker: Path) -> bytes:
    """Protocol-0 pickle bytes for ``os.system('touch MARKER')`` (written by hand: no class needed to make it)."""
    return b"cos\nsystem\n(S'" + f"touch {marker}".encode() + b"'\ntR."


def _build(root: Path, out: Path, outside: Path, markers: dict) -> dict[str, dict | str]:
    """Write every submission under ``root``; return name -> expected points per check, or a status prefix."""
    sol, ex, wrong = _read("solutions"), _read("exercises"), _wrong()
    wrong_points = _wrong_points()
    assert sum(wrong_points.values()) < MAX, "the wrong answers must lose points for the cheating tests to mean anything"
    expected: dict[str, dict | str] = {}

    def save(name: str, nb, points) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        expected[name] = points

    partial = copy.deepcopy(ex)
    partial.cells[_defining(ex, "normalise")].source = sol.cells[_defining(sol, "normalise")].source
    save("honest/full.ipynb", sol, dict(FULL))
    save("honest/partial.ipynb", partial, {**ZERO, "00.normalise": FULL["00.normalise"]})
    save("honest/wrong.ipynb", wrong, wrong_points)

    # cheating: the points must be what the answers earn
    save("cheat/redefine_check.ipynb", _after_import(ex, "def check(*args):\n    print('[ok] full marks')"), dict(ZERO))
    save("cheat/patch_grading.ipynb", _after_import(wrong, (
        "import course_utils.grading.core as core, course_utils.grading.record as record\n"
        "def always(self, ok, points, what, hint=''):\n"
        "    self.parts.append(core.Part(what, points, points))\n    return True\n"
        "core.Checker.expect = always\ncore.Checker.require = always")), wrong_points)
    save("cheat/forge_fingerprints.ipynb", _after_import(wrong, (
        "import course_utils.grading.record as record\nrecord.fingerprint = lambda *a: 'forged'")), dict(ZERO))
    save("cheat/patch_torch.ipynb", _after_import(wrong, (
        "import math, torch, course_utils.grading.tensor_checks as tc\n"
        "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
        "tc.close = lambda *a, **k: True\nmath.isclose = lambda *a, **k: True")), wrong_points)
    save("cheat/forge_records.ipynb", _at(wrong, -1, (
        "import os, io, torch, json, base64, sys\n"
        "folder = os.environ['COURSE_GRADING_RECORDS']\n"
        "for i, cid in enumerate(['00.normalise', '00.top_word', '00.predict'] * 300):\n"
        "    rec = {'format': 1, 'check_id': cid, 'objects': [], 'calls': [], 'points': 1000}\n"
        "    buf = io.BytesIO(); torch.save(rec, buf)\n"
        "    open(os.path.join(folder, f'99999-{i:05d}.pt'), 'wb').write(buf.getvalue())\n"
        f"evil = {_evil_pickle(markers['pickle'])!r}  # a pickle that calls os.system when loaded without weights_only\n"
        "open(os.path.join(folder, '99999-99999.pt'), 'wb').write(evil)\n"
        "line = json.dumps({'event': 'record', 'data': base64.b64encode(evil).decode()}) + '\\n'\n"
        "os.write(1, line.encode()); sys.__stdout__.write(line); print(line)\n"
        "os.write(1, (json.dumps({'event': 'done'}) + '\\n').encode())")), dict(ZERO))

    # attacks on the other submissions, the course, the gradebook; secrets and the network
    course = Path(_PACKAGE_ROOT)
    targets = [root / "honest" / "full.ipynb", out / "gradebook.csv", course / "exercises" / f"{SET}.ipynb",
               course / "course_utils" / "grading" / "core.py"]
    attempts = [f"open({str(p)!r}, 'w').write('{{}}')" for p in targets]
    attempts += [f"os.remove({str(root / 'honest' / 'partial.ipynb')!r})",
                 f"open({str(course / 'course_utils' / 'grading' / 'lessons' / 'l99_planted.py')!r}, 'w').write('1/0')",
                 f"open({str(course / 'course_utils' / 'planted.py')!r}, 'w').write('1/0')",
                 f"os.symlink('/tmp', {str(root / 'planted')!r})",
                 f"os.rename({str(course / 'exercises')!r}, {str(course / 'exercises_moved')!r})"]
    save("attack/files.ipynb", _at(sol, 1, "import os\n" + _must_fail("\n".join(attempts))), dict(FULL))
    secrets = ["open('/etc/shadow').read(1)", f"os.listdir({str(root)!r})", f"os.listdir({str(out)!r})",
               f"open({str(outside)!r}).read(1)", "open(os.path.expanduser('~root/.bash_history')).read(1)",
               "socket.create_connection(('pypi.org', 443), timeout=3)",
               "socket.create_connection(('1.1.1.1', 53), timeout=3)"]
    save("attack/secrets.ipynb", _at(sol, 1, "import os, socket\n" + _must_fail("\n".join(secrets))), dict(FULL))
    save("attack/leftover_processes.ipynb", _at(sol, -1, (
        "import subprocess, sys\n"
        f"script = 'import time; time.sleep(3); open({str(out / 'gradebook.csv')!r}, \"w\").write(\"rewritten\")'\n"
        "for i in range(20):\n"
        f"    subprocess.Popen([sys.executable, '-c', script, {markers['process']!r}], start_new_session=True,\n"
        "                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)")), dict(FULL))

    # floods: memory, printed output, the scratch disk
    save("flood/memory.ipynb", _at(sol, 1, (
        "small = bytearray(256 * 2**20)  # a quarter of a GiB is allowed\n"
        f"huge = bytearray({MEMORY_MB + 512} * 2**20)  # more than the cap is not")), dict(FULL))
    save("flood/output.ipynb", _at(sol, 1, (
        f"for _ in range({OUTPUT_MB * 3}):\n    print('x' * 2**20)\n"
        "import os\ntry:\n"
        f"    open('/tmp/big', 'wb').write(b'0' * ({OUTPUT_MB * 6} * 2**20))\n"
        "finally:\n    os.remove('/tmp/big')  # so that the check cells can still save their records")), dict(FULL))

    # signals: killing the worker, or every process it can see
    save("signals/kill_parent.ipynb", _at(sol, 0, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"), "error: ")
    save("signals/kill_everything.ipynb", _at(sol, 0, "import os, signal\nos.kill(-1, signal.SIGKILL)"), "error: ")

    # odd files
    (root / "odd").mkdir()
    os.mkfifo(root / "odd" / "pipe.ipynb")
    expected["odd/pipe.ipynb"] = "error: this is not a plain file"
    nbformat.write(sol, outside)
    (root / "odd" / "link_out.ipynb").symlink_to(outside)
    expected["odd/link_out.ipynb"] = "error: a link to a file outside the submissions folder is refused"
    (root / "odd" / "link_in.ipynb").symlink_to(root / "honest" / "full.ipynb")
    expected["odd/link_in.ipynb"] = dict(FULL)
    (root / "odd" / "folder.ipynb").mkdir()
    expected["odd/folder.ipynb"] = "error: this is a folder"
    (root / "odd" / "latin1.ipynb").write_bytes(nbformat.writes(sol).replace("normalise", "normalis\u00e9")
                                                 .encode("latin-1", "replace"))
    expected["odd/latin1.ipynb"] = "error: not a notebook file (not UTF-8 text"
    named = copy.deepcopy(sol)
    named.cells.insert(0, nbformat.v4.new_markdown_cell("caf\u00e9 \u2603 \U0001f600 \x00 \u202e end"))
    save("odd/new\nline \u202e.ipynb", named, dict(FULL))
    os.makedirs(os.fsencode(root / "odd"), exist_ok=True)
    with open(os.fsencode(root / "odd") + b"/\xff\xfe name.ipynb", "wb") as fh:
        fh.write(nbformat.writes(sol).encode("utf-8"))
    expected[os.fsdecode(b"odd/\xff\xfe name.ipynb")] = dict(FULL)
    save("odd/other_set.ipynb", _read("solutions", "01_bottleneck"),
         "error: this notebook is exercise set '01_bottleneck', but this grading run is for 00_orientation")
    return expected


# --------------------------------------------------------------------------- one grading run


def _hashes(*roots: Path) -> dict[str, str]:
    found = {}
    for top in roots:
        for dirpath, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d not in (".venv", ".git", "__pycache__", ".pytest_cache")]
            for name in files:
                path = os.path.join(dirpath, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    found[path] = f"link:{os.readlink(path)}" if os.path.islink(path) else "special"
                    continue
                with open(path, "rb") as fh:
                    found[path] = hashlib.sha256(fh.read()).hexdigest()
            found.update({os.path.join(dirpath, d): "folder" for d in dirs})
    return found


def _printable(name: str) -> str:
    from course_utils.grading.grader import printable
    return printable(name)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    root, out, outside = base / "submissions", base / "out", base / "outside.ipynb"
    root.mkdir()
    markers = {"pickle": base / "pickle-ran", "process": f"course-hostile-{os.getpid()}-{time.monotonic_ns()}"}
    expected = _build(root, out, outside, markers)
    course = Path(_PACKAGE_ROOT)
    watched = (root, course / "course_utils", course / "exercises", course / "solutions", course / "notebooks")
    before = _hashes(*watched)
    outside_before = outside.read_bytes()
    stdout = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(stdout):
        code = main([str(root), "--set", SET, "--out", str(out), "--jobs", "2", "--timeout", "90", "--cell-timeout", "30",
                     "--memory-mb", str(MEMORY_MB), "--output-mb", str(OUTPUT_MB), "--sandbox", "require"])
    seconds = time.monotonic() - started
    gradebook = (out / "gradebook.csv").read_bytes()
    time.sleep(4)  # the left-over processes would rewrite the gradebook after 3 s
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        rows = {row["submission"]: row for row in csv.DictReader(fh)}
    return dict(root=root, out=out, expected=expected, rows=rows, code=code, stdout=stdout.getvalue(), before=before,
                after=_hashes(*watched), gradebook=gradebook, gradebook_after=(out / "gradebook.csv").read_bytes(),
                markers=markers, outside=(outside_before, outside.read_bytes()), seconds=seconds)


def _feedback(run, name: str) -> str:
    return (run["out"] / "feedback" / feedback_name(_printable(name))).read_text(encoding="utf-8")


def test_every_submission_has_a_row(run):
    assert run["code"] == 0
    assert sorted(run["rows"]) == sorted(_printable(n) for n in run["expected"])


@pytest.mark.parametrize("name", ["honest/full.ipynb", "honest/partial.ipynb", "honest/wrong.ipynb",
                                  "cheat/redefine_check.ipynb", "cheat/patch_grading.ipynb", "cheat/patch_torch.ipynb",
                                  "cheat/forge_fingerprints.ipynb",
                                  "cheat/forge_records.ipynb", "attack/files.ipynb", "attack/secrets.ipynb",
                                  "attack/leftover_processes.ipynb", "flood/memory.ipynb", "flood/output.ipynb",
                                  "odd/link_in.ipynb", "odd/new\nline \u202e.ipynb", os.fsdecode(b"odd/\xff\xfe name.ipynb")])
def test_points_are_what_the_answers_earn(run, name):
    row, want = run["rows"][_printable(name)], run["expected"][name]
    text = _feedback(run, name)
    assert {cid: float(row[cid]) for cid in FULL} == want, text
    assert row["status"] == "ok", text
    for word in ("ESCAPED", "LEAKED"):
        assert word not in text, text


@pytest.mark.parametrize("name", ["signals/kill_parent.ipynb", "signals/kill_everything.ipynb", "odd/pipe.ipynb",
                                  "odd/link_out.ipynb", "odd/folder.ipynb", "odd/latin1.ipynb", "odd/other_set.ipynb"])
def test_a_broken_or_refused_submission_is_its_own_row(run, name):
    row = run["rows"][_printable(name)]
    assert row["status"].startswith(run["expected"][name]), row["status"]
    assert float(row["total"]) == 0
    assert row["status"].removeprefix("error: ") in _feedback(run, name) or "error" in _feedback(run, name)


def test_no_row_exceeds_its_maximum(run):
    for row in run["rows"].values():
        assert float(row["total"]) <= MAX and all(float(row[c] or 0) <= FULL[c] for c in FULL)


def test_no_file_outside_the_output_changed(run):
    changed = {p for p in set(run["before"]) | set(run["after"]) if run["before"].get(p) != run["after"].get(p)}
    assert not changed, f"changed, created or deleted: {sorted(changed)}"
    assert run["outside"][0] == run["outside"][1]


def test_the_gradebook_is_not_rewritten_after_the_grader_exits(run):
    assert run["gradebook_after"] == run["gradebook"]
    assert not _processes_with(run["markers"]["process"]), "a process a submission started is still running"


def test_a_record_made_on_other_inputs_is_refused(run):
    assert "the record was made on other inputs than the grader's" in _feedback(run, "cheat/forge_fingerprints.ipynb")


def test_a_hostile_record_runs_no_code_in_the_grader(run):
    assert not run["markers"]["pickle"].exists()
    assert "could not be used" in _feedback(run, "cheat/forge_records.ipynb")


def test_memory_is_capped_and_the_rest_of_the_notebook_runs(run):
    text = _feedback(run, "flood/memory.ipynb")
    assert "raised MemoryError" in text, text
    assert "[ok] 00.normalise" in text


def test_output_and_disk_floods_are_capped(run):
    text = _feedback(run, "flood/output.ipynb")
    assert f"printed more than {OUTPUT_MB} MiB" in text, text
    assert "No space left on device" in text or "File too large" in text, text


def test_signals_end_only_their_own_submission(run):
    for name in ("signals/kill_parent.ipynb", "signals/kill_everything.ipynb"):
        assert "stopped early" in _feedback(run, name) or "exited" in run["rows"][name]["status"]
    assert float(run["rows"]["honest/full.ipynb"]["total"]) == MAX


def test_the_summary_says_it_used_the_sandbox(run):
    assert "in a bubblewrap sandbox" in run["stdout"]

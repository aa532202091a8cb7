"""Write ``exercises/`` from ``solutions/``.

Every block between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers) becomes
a stub that raises NotImplementedError, at the block's indentation; outputs and execution counts
are cleared; the notebook metadata names the exercise set, which the grader reads.

    python -m course_utils.notebook_tools.exercises          # write exercises/
    python -m course_utils.notebook_tools.exercises --check  # exit 1 if exercises/ is stale
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

from .paths import folder

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_BLOCK = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(?:\n|\Z)", re.M | re.S)


def stub_source(source: str, where: str = "cell") -> str:
    """Replace each solution block in ``source`` by the learner's stub; reject unbalanced markers."""
    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"{where}: {source.count(BEGIN)} '{BEGIN}' but {source.count(END)} '{END}' markers")

    def stub(match: re.Match) -> str:
        inner = match.group(0)
        if inner.count(BEGIN) > 1:
            raise ValueError(f"{where}: solution blocks must not be nested")
        indent = match.group(1)
        return f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()\n"

    out = _BLOCK.sub(stub, source)
    if BEGIN in out or END in out:
        raise ValueError(f"{where}: a '{BEGIN}' marker has no matching '{END}' after it")
    return out.rstrip("\n") if not source.endswith("\n") else out


def make_exercise(solution: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The exercise notebook for one solution notebook (the input is not modified)."""
    nb = copy.deepcopy(solution)
    n_blocks = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            if BEGIN in cell.source:
                raise ValueError(f"{name}, cell {index}: solution markers are only allowed in code cells")
            continue
        n_blocks += cell.source.count(BEGIN)
        cell.source = stub_source(cell.source, f"{name}, cell {index}")
        cell.outputs = []
        cell.execution_count = None
    if n_blocks == 0:
        raise ValueError(f"{name}: no '{BEGIN}' block found; an exercise notebook needs at least one")
    stem = Path(name).stem
    course = dict(nb.metadata.get("course", {}))
    if course.get("exercise_set", stem) != stem:
        raise ValueError(f"{name}: metadata names exercise set {course['exercise_set']!r}, the file is {stem!r}")
    course.update(exercise_set=stem, generated_from=f"solutions/{Path(name).name}")
    nb.metadata["course"] = course
    return nb


def _rendered(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def write_exercises(solutions_dir: Path | None = None, exercises_dir: Path | None = None, *, check: bool = False) -> list[str]:
    """Write (or, with ``check``, compare) every exercise; return the names that were stale."""
    solutions_dir = Path(solutions_dir or folder("solutions"))
    exercises_dir = Path(exercises_dir or folder("exercises"))
    sources = sorted(solutions_dir.glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"no solution notebooks in {solutions_dir}")
    stale = []
    expected_names = set()
    for src in sources:
        text = _rendered(make_exercise(nbformat.read(src, as_version=4), src.name))
        target = exercises_dir / src.name
        expected_names.add(src.name)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            stale.append(src.name)
            if not check:
                exercises_dir.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    orphans = sorted(p.name for p in exercises_dir.glob("*.ipynb") if p.name not in expected_names)
    if orphans:
        stale += [f"{name} (no solution notebook)" for name in orphans]
    return stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if exercises/ is stale")
    parser.add_argument("--solutions", type=Path, default=None)
    parser.add_argument("--exercises", type=Path, default=None)
    args = parser.parse_args(argv)
    stale = write_exercises(args.solutions, args.exercises, check=args.check)
    if args.check:
        if stale:
            print("exercises/ is out of date with solutions/: " + ", ".join(stale), file=sys.stderr)
            print("run: make exercises", file=sys.stderr)
            return 1
        print("exercises/ matches solutions/")
        return 0
    print(f"wrote {len(stale)} exercise notebook(s)" + (f": {', '.join(stale)}" if stale else " (all up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

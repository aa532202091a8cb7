"""Re-render the lesson notebooks' stored outputs on the CPU, and time each one.

    python -m course_utils.notebook_tools.render                 # every notebook in notebooks/
    python -m course_utils.notebook_tools.render notebooks/01_bottleneck.ipynb
    python -m course_utils.notebook_tools.render --no-write solutions/*.ipynb   # time only
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from .paths import folder


def render_notebook(path: Path, *, write: bool = True, timeout: int = 600, device: str = "cpu") -> float:
    """Execute a notebook top to bottom in its own folder; store its outputs; return seconds taken."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    previous = os.environ.get("COURSE_DEVICE")
    os.environ["COURSE_DEVICE"] = device  # the kernel inherits this environment
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent.resolve())}}).execute()
        seconds = time.perf_counter() - start
    finally:
        if previous is None:
            os.environ.pop("COURSE_DEVICE", None)
        else:
            os.environ["COURSE_DEVICE"] = previous
    if write:
        nbformat.write(nb, path)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: every notebook in notebooks/)")
    parser.add_argument("--no-write", action="store_true", help="run and time only, keep the files as they are")
    parser.add_argument("--device", default="cpu", help="device for the run (default cpu, as stored outputs are)")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(folder("notebooks").glob("*.ipynb"))
    if not paths:
        print("no notebooks to render", file=sys.stderr)
        return 1
    total = 0.0
    for path in paths:
        seconds = render_notebook(path, write=not args.no_write, device=args.device)
        total += seconds
        print(f"{seconds:7.1f} s  {path}", flush=True)
    print(f"{total:7.1f} s  total")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the course's folders are, found from this package's location (or COURSE_ROOT)."""

from __future__ import annotations

import os
from pathlib import Path


def course_root() -> Path:
    root = os.environ.get("COURSE_ROOT")
    return Path(root).resolve() if root else Path(__file__).resolve().parents[2]


def folder(name: str) -> Path:
    if name not in ("notebooks", "exercises", "solutions", "tests"):
        raise ValueError(f"unknown course folder {name!r}")
    return course_root() / name

"""Notebook tooling: write exercises/ from solutions/, re-render the lessons' stored outputs."""

from .exercises import make_exercise, write_exercises
from .render import render_notebook

__all__ = ["make_exercise", "write_exercises", "render_notebook"]

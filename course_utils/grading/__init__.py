"""Graded exercises: checks with points and feedback (core), the checks of each lesson (lessons/),
and the instructor's grader that turns a folder of submissions into a gradebook (grader)."""

from .core import CheckResult, check, checks_for, get_check, register, run_check

__all__ = ["check", "run_check", "checks_for", "get_check", "register", "CheckResult"]

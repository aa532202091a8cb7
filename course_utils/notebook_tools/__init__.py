"""Notebook tooling: write exercises/ from solutions/ (exercises.py), re-render the lessons (render.py)."""

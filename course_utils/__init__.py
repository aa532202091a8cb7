"""Helpers shared by the notebooks of the attention course.

The package is split by concept, so a reader can find each piece by its folder:

- ``runtime``         device choice, seeding, CPU/GPU configurations
- ``data``            seeded task generators, vocabularies, batching
- ``models``          the finished models that lessons built (imported by later lessons)
- ``training``        the one training loop and the evaluation helpers
- ``viz``             plots shared by the lessons
- ``grading``         graded-exercise checks and the instructor's grader
- ``notebook_tools``  exercise generation and re-rendering of the lesson notebooks
"""

from .runtime import get_device, seed_everything, pick_config, describe_device, choose_cpu_threads

choose_cpu_threads()  # one thread per idle core unless COURSE_THREADS / OMP_NUM_THREADS says otherwise (see runtime)

__all__ = ["get_device", "seed_everything", "pick_config", "describe_device", "choose_cpu_threads"]

# Two commands for a fresh machine (see README.md):
#   make lab    set up the environment if needed, open the course in JupyterLab
#   make test   set up the environment if needed, run every test
# Both create .venv/ when it is missing and reuse it when it is there.

VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.course-installed
NBVAL_SANITIZE := tests/nbval_sanitize.cfg
# Jupyter refuses to run as root unless told; containers often run as root.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test test-unit test-notebooks test-exercises test-browser test-gpu bench exercises render grade clean-venv

$(STAMP): pyproject.toml
	@echo "Setting up the course in $(VENV)/ (first time only: a few minutes, mostly downloading PyTorch and JupyterLab)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar on --editable '.[test]'
	touch $(STAMP)
	@echo "The course is installed in $(VENV)/"

# The course's own notebooks are trusted, so that their stored widgets and plots show before they are run.
lab: $(STAMP)
	$(VENV)/bin/jupyter trust notebooks/*.ipynb exercises/*.ipynb
	$(VENV)/bin/jupyter lab $(LAB_ARGS) --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks/00_orientation.ipynb

test: test-unit test-notebooks test-exercises test-browser

test-unit: $(STAMP)
	$(PY) -m pytest tests --ignore=tests/browser

# JupyterLab in headless Chromium (Debian's chromium; never downloaded): every lesson with a widget is run,
# one control of each widget moved, and any error shown in a cell fails. Skips, saying why, without Chromium.
test-browser: $(STAMP)
	$(PY) -m pytest tests/browser

# Stored outputs are made with one CPU thread (render); the comparison runs with the same.
test-notebooks: $(STAMP)
	COURSE_THREADS=1 $(PY) -m pytest --nbval --nbval-current-env --nbval-sanitize-with $(NBVAL_SANITIZE) notebooks

test-exercises: $(STAMP)
	$(PY) -m pytest --nbval-lax --nbval-current-env solutions exercises

exercises: $(STAMP)
	$(PY) -m course_utils.notebook_tools.exercises

render: $(STAMP)
	$(PY) -m course_utils.notebook_tools.render

# Time every notebook (lessons, solutions, exercises) on the CPU; writes notebooks/TIMINGS.md. Run it on a quiet machine.
bench: $(STAMP)
	$(PY) -m course_utils.notebook_tools.render --bench notebooks/TIMINGS.md

# For instructors with a GPU: every notebook on CUDA, every cell run and every assert held. Stored outputs are CPU
# outputs, so outputs are not compared (nbval-lax), only errors fail.
test-gpu: $(STAMP)
	$(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'make test-gpu needs a CUDA GPU: torch.cuda.is_available() is False')"
	COURSE_DEVICE=cuda $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=1200 notebooks solutions exercises

# make grade SET=02_attention_basics SUBMISSIONS=path/to/folder [OUT=gradebook] (see README: grading)
SUBMISSIONS ?= submissions
OUT ?= gradebook
grade: $(STAMP)
	@test -n "$(SET)" || { echo "make grade needs SET=<exercise set>, e.g. SET=02_attention_basics"; exit 2; }
	$(PY) -m course_utils.grading.grader $(SUBMISSIONS) --set $(SET) --out $(OUT)

clean-venv:
	rm -rf $(VENV)

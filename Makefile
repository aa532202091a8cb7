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

.PHONY: lab test test-unit test-notebooks test-exercises exercises render grade clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --editable '.[test]'
	touch $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(LAB_ARGS) --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks/00_orientation.ipynb

test: test-unit test-notebooks test-exercises

test-unit: $(STAMP)
	$(PY) -m pytest tests

test-notebooks: $(STAMP)
	$(PY) -m pytest --nbval --nbval-current-env --nbval-sanitize-with $(NBVAL_SANITIZE) notebooks

test-exercises: $(STAMP)
	$(PY) -m pytest --nbval-lax --nbval-current-env solutions exercises

exercises: $(STAMP)
	$(PY) -m course_utils.notebook_tools.exercises

render: $(STAMP)
	$(PY) -m course_utils.notebook_tools.render

# make grade SUBMISSIONS=path/to/folder [OUT=gradebook]
SUBMISSIONS ?= submissions
OUT ?= gradebook
grade: $(STAMP)
	$(PY) -m course_utils.grading.grader $(SUBMISSIONS) --out $(OUT)

clean-venv:
	rm -rf $(VENV)

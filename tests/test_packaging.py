"""pyproject.toml and environment.yml list the same packages; the Makefile and CI do what README says."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch", "pytorch_geometric": "torch_geometric"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_names = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_names = {CONDA_TO_PIP.get(_name(d), _name(d)) for d in env["dependencies"] if isinstance(d, str)}
    pip_section = next((d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d), [])
    conda_names |= {_name(d) for d in pip_section if not d.startswith("-")}
    conda_names -= {"python", "pip"}
    assert conda_names == pip_names, (f"only in environment.yml: {sorted(conda_names - pip_names)}; "
                                      f"only in pyproject.toml: {sorted(pip_names - conda_names)}")


def test_torch_is_a_plain_range_and_ci_installs_the_cpu_build_first():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_req = next(r for r in project["dependencies"] if _name(r) == "torch")
    assert "==" not in torch_req and "+cpu" not in torch_req
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("torch==") < ci.index("make test")


def test_readme_gives_the_two_commands_and_the_makefile_has_them():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lab", "test"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.M)
    assert "notebooks/00_orientation.ipynb" in makefile


def test_lesson_exercise_and_solution_names_line_up():
    lessons = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    solutions = {p.name for p in (ROOT / "solutions").glob("*.ipynb")}
    assert solutions <= lessons and solutions == {p.name for p in (ROOT / "exercises").glob("*.ipynb")}
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", n) for n in lessons)


def test_readme_names_the_torch_version_ci_tests():
    """The README's 'Tested versions' table names the torch that CI installs, so the claim stays true."""
    pinned = re.search(r"torch==([0-9.]+)", (ROOT / ".ci" / "run").read_text()).group(1)
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"^\| torch \| {re.escape(pinned)} \|", readme, re.M), \
        f"README's tested-versions table should list torch {pinned}, the version .ci/run installs"


def test_makefile_has_the_instructor_targets():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("bench", "test-gpu", "grade", "exercises", "render"):
        assert re.search(rf"^{target}:", makefile, re.M), f"make {target} is documented but missing"
    assert "jupyter trust" in makefile, "make lab should trust the course's notebooks so stored widgets render"

"""The lessons' widgets work in a real JupyterLab, driven by a headless Chromium.

One JupyterLab server is started on the repository (free localhost port, random token, temporary
Jupyter config/data/runtime/settings/workspace folders, autosave off so no notebook is ever written).
For every lesson in notebooks/ that has an ipywidgets widget (found by scanning the stored notebooks,
never a hard-coded list), the test opens it, clears its outputs, runs it with Run > Run All Cells,
waits until every code cell has run (execution counts 1, 2, 3, ... top to bottom, kernel idle), checks
that every widget rendered as a live widget with controls (not the text fallback), then moves one
control of each kind each widget has (a slider with the arrow keys, a dropdown, toggle buttons, a
checkbox, a text box: a new value and Enter) and asserts that the widget's output changed. A text box is
also emptied, which must give a message, not a traceback. Any error shown in any cell fails the test.

Uses Playwright for Python with the system's Chromium (Debian package `chromium`); it never downloads
a browser. Without either, the tests are skipped and say why (with COURSE_REQUIRE_BROWSER=1, as CI sets it,
they fail instead). Screenshots of every widget are saved under $COURSE_BROWSER_ARTIFACTS (default: pytest's
temporary folder) for a failing run's post-mortem. Time limit for running one lesson: $COURSE_BROWSER_TIMEOUT
seconds (default 600, generous: a lesson runs in at most about 90 s on a quiet 2-core CPU).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
# Lessons that have a widget today; the scan must find at least these (it may find more).
KNOWN_WIDGET_LESSONS = {"00_orientation", "02_attention_basics", "03_attention_seq2seq", "05_self_attention"}
LESSON_TIMEOUT = float(os.environ.get("COURSE_BROWSER_TIMEOUT", "600"))
WIDGET_TIMEOUT = 60.0  # seconds for one widget update (a busy CPU can be slow)

# An ipywidgets model a learner can operate (progress bars, boxes, labels and outputs are not controls).
CONTROL_MODEL = re.compile(r"(Slider|Dropdown|Text|Textarea|ToggleButtons?|Checkbox|RadioButtons|Select|"
                           r"SelectMultiple|SelectionSlider|Button|Combobox|Play|ColorPicker|DatePicker)Model$")
WIDGET_SOURCE = re.compile(r"\binteract(?:ive|_manual)?\s*\(|\bwidgets\.[A-Z]\w*\s*\(")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
STATE_MIME = "application/vnd.jupyter.widget-state+json"


# --------------------------------------------------------------------------- finding the widget lessons

def _control_models(state: dict, model_id: str, seen: set | None = None) -> list[str]:
    """Names of the control models in the widget tree rooted at model_id, from a notebook's stored widget state."""
    seen = set() if seen is None else seen
    if model_id in seen or model_id not in state:
        return []
    seen.add(model_id)
    model = state[model_id]
    found = [model["model_name"]] if CONTROL_MODEL.search(model.get("model_name", "")) else []
    for child in model.get("state", {}).get("children", []):
        if isinstance(child, str) and child.startswith("IPY_MODEL_"):
            found += _control_models(state, child[len("IPY_MODEL_"):], seen)
    return found


def widget_cells(path: Path) -> list[int]:
    """Indices of the code cells that show a widget with a control: their source builds one (`interact(`,
    `widgets.Something(`), or their stored output is a widget whose stored state has a control."""
    nb = nbformat.read(path, as_version=4)
    state = nb.metadata.get("widgets", {}).get(STATE_MIME, {}).get("state", {})
    cells = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        stored = [o["data"][WIDGET_MIME]["model_id"] for o in cell.get("outputs", [])
                  if WIDGET_MIME in o.get("data", {})]
        if WIDGET_SOURCE.search(cell.source) or any(_control_models(state, m) for m in stored):
            cells.append(i)
    return cells


def widget_lessons() -> list[Path]:
    return [p for p in sorted(NOTEBOOKS.glob("*.ipynb")) if widget_cells(p)]


def test_the_scan_finds_the_widget_lessons():
    found = {p.stem for p in widget_lessons()}
    assert KNOWN_WIDGET_LESSONS <= found, f"scan of notebooks/ missed {sorted(KNOWN_WIDGET_LESSONS - found)}"


# --------------------------------------------------------------------------- JupyterLab and Chromium

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    """JupyterLab user settings for the test: never save (autosave off), render every cell (no windowing,
    so off-screen widgets are in the page), no news or update pop-ups."""
    settings = {
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for plugin, values in settings.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


class Lab:
    """A JupyterLab server on the repository, with its own temporary Jupyter folders."""

    def __init__(self, tmp: Path):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        dirs = {name: tmp / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython",
                                              "checkpoints")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        _write_settings(dirs["settings"])
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
                   JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
                   JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]), IPYTHONDIR=str(dirs["ipython"]),
                   JUPYTER_PLATFORM_DIRS="0")
        env.pop("JUPYTER_PATH", None)
        args = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.open_browser=False",
                "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={ROOT}",
                f"--LabApp.user_settings_dir={dirs['settings']}", f"--LabApp.workspaces_dir={dirs['workspaces']}",
                "--ServerApp.terminals_enabled=False",
                # Lab makes a checkpoint of each notebook it opens: keep them out of the repository.
                f"--FileCheckpoints.checkpoint_dir={dirs['checkpoints']}"]
        if os.geteuid() == 0:
            args.append("--allow-root")
        self.log_path = tmp / "jupyterlab.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.api("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"JupyterLab did not answer within 180 s:\n{self.log()}")
                time.sleep(0.5)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-4000:]

    def api(self, method: str, path: str):
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None

    def session(self, rel_path: str) -> dict | None:
        return next((s for s in self.api("GET", "/api/sessions") if s.get("path") == rel_path), None)

    def kernel_idle(self, rel_path: str) -> bool:
        s = self.session(rel_path)
        return bool(s) and s["kernel"].get("execution_state") == "idle"

    def shut_down(self, rel_path: str) -> None:
        s = self.session(rel_path)
        if s:
            self.api("DELETE", f"/api/sessions/{s['id']}")

    def url(self, rel_path: str, workspace: str) -> str:
        return f"{self.base}/lab/workspaces/{workspace}/tree/{rel_path}?reset&token={self.token}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _cannot_run(reason: str) -> None:
    """Skip, saying why; CI sets COURSE_REQUIRE_BROWSER=1 so that a missing browser fails instead."""
    if os.environ.get("COURSE_REQUIRE_BROWSER", "") not in ("", "0"):
        pytest.fail(f"COURSE_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        _cannot_run(f"the browser test needs Chromium at {CHROMIUM} (Debian: apt-get install chromium); "
                    "it never downloads a browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _cannot_run("the browser test needs Playwright for Python (pip install playwright, or "
                    "pip install -e '.[test]'); do not run `playwright install`: the system's Chromium is used")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def lab(browser, tmp_path_factory):
    server = Lab(tmp_path_factory.mktemp("jupyterlab"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    path = Path(os.environ.get("COURSE_BROWSER_ARTIFACTS") or tmp_path_factory.mktemp("browser-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- reading the page

NOTEBOOK = ".jp-NotebookPanel .jp-Notebook"
CONTROLS = {  # kind: (CSS selector of the widget, of the element to operate)
    "slider": (".widget-slider:not(.widget-readout)", ".noUi-handle"),
    "dropdown": (".widget-dropdown", "select"),
    "toggle": (".widget-toggle-buttons", "button"),
    "text": (".widget-text", "input"),
    "checkbox": (".widget-checkbox", "input[type=checkbox]"),
}
# Removed before comparing what a widget shows (a Label or HTML widget that shows a result is kept).
ALL_CONTROLS = ", ".join(["input", "select", "button", "textarea", ".widget-readout"]
                         + [sel for sel, _ in CONTROLS.values()])

CELLS_JS = """() => [...document.querySelectorAll('%s .jp-Cell')].map(c => ({
    code: c.classList.contains('jp-CodeCell'),
    prompt: (c.querySelector('.jp-InputArea-prompt') || {textContent: ''}).textContent.trim(),
    errors: [...c.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], '
                                   + '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]')]
            .map(e => e.textContent).filter(t => /Traceback|Error/.test(t)).map(t => t.slice(0, 3000)),
    text: (c.querySelector('.jp-Cell-outputArea') || {innerText: ''}).innerText.slice(0, 300),
  }))""" % NOTEBOOK

# What the cell's outputs show, every control removed: their text and their images (not the controls' own state,
# nor attributes that the page changes on every redraw).
SHOWN_JS = """(cell, controls) => {
  const out = cell.querySelector('.jp-Cell-outputArea');
  if (!out) return '';
  const copy = out.cloneNode(true);
  copy.querySelectorAll(controls).forEach(e => e.remove());
  const text = copy.textContent.replace(/\\s+/g, ' ').trim();
  const media = [...copy.querySelectorAll('img, svg')]
    .map(e => e.tagName === 'IMG' ? e.getAttribute('src') : e.outerHTML);
  return text || media.length ? JSON.stringify([text, media]) : '';
}"""


def _cells(page) -> list[dict]:
    return page.evaluate(CELLS_JS)


def _errors(cells: list[dict]) -> list[str]:
    return [f"cell {i}: {e}" for i, c in enumerate(cells) for e in c["errors"]]


def _count(prompt: str) -> int | None:
    m = re.fullmatch(r"\[(\d+)\]:", prompt)
    return int(m.group(1)) if m else None


def _menu(page, *path: str) -> None:
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{re.escape(path[0])}$")).click()
    for name in path[1:]:
        page.locator(".lm-Menu:not(.lm-mod-hidden) .lm-Menu-item",
                     has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(name)}$"))).click()


def _wait_idle(lab: Lab, rel: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while not lab.kernel_idle(rel):
        if time.time() > deadline:
            raise AssertionError(f"{rel}: kernel still busy after {timeout:.0f} s")
        time.sleep(0.3)


def _run_all(page, lab: Lab, rel: str, n_cells: int, shots: Path) -> list[dict]:
    """Run > Run All Cells on cleared outputs; return the cells once every code cell has run and the kernel is idle."""
    deadline = time.time() + LESSON_TIMEOUT
    page.wait_for_selector(f"{NOTEBOOK} .jp-Cell", timeout=LESSON_TIMEOUT * 1000)
    while len(cells := _cells(page)) < n_cells or lab.session(rel) is None:
        if time.time() > deadline:
            raise AssertionError(f"{rel}: {len(cells)} of {n_cells} cells shown, session "
                                 f"{lab.session(rel)} after {LESSON_TIMEOUT:.0f} s")
        time.sleep(0.5)
    _wait_idle(lab, rel, max(1.0, deadline - time.time()))  # the kernel has started
    _menu(page, "Edit", "Clear Outputs of All Cells")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{NOTEBOOK} .jp-CodeCell .jp-InputArea-prompt')]"
        ".every(p => !/\\[\\d+\\]/.test(p.textContent))", timeout=30_000)
    _menu(page, "Run", "Run All Cells")
    stalled_since = None
    while True:
        cells = _cells(page)
        if errors := _errors(cells):
            page.screenshot(path=shots / "error.png")
            raise AssertionError(f"{rel}: error shown while running:\n" + "\n".join(errors))
        counts = [_count(c["prompt"]) for c in cells if c["code"]]
        idle = lab.kernel_idle(rel)
        if idle and all(n is not None for n in counts):
            return cells
        # Idle with unrun cells for a while: Run All stopped (an error the page does not show as one?).
        stalled_since = (stalled_since or time.time()) if idle and not any(c["prompt"] == "[*]:" for c in cells) \
            else None
        if stalled_since and time.time() - stalled_since > 20:
            first = next(i for i, c in enumerate(cells) if c["code"] and _count(c["prompt"]) is None)
            page.screenshot(path=shots / "stalled.png")
            raise AssertionError(f"{rel}: Run All stopped before cell {first}; its output: {cells[first]['text']!r}")
        if time.time() > deadline:
            first = next((i for i, c in enumerate(cells) if c["code"] and _count(c["prompt"]) is None), None)
            page.screenshot(path=shots / "timeout.png")
            raise AssertionError(f"{rel}: not finished after {LESSON_TIMEOUT:.0f} s (first unrun code cell: {first}; "
                                 f"set COURSE_BROWSER_TIMEOUT for a slower machine)")
        time.sleep(1.0)


def _operate(page, control, kind: str, value: str | None = None) -> str:
    """Move one control the way a learner would; returns a description."""
    if kind == "slider":
        control.scroll_into_view_if_needed()
        now, top = control.get_attribute("aria-valuenow"), control.get_attribute("aria-valuemax")
        key = "ArrowLeft" if now is not None and top is not None and float(now) >= float(top) else "ArrowRight"
        control.focus()
        control.press(key)
        return f"slider {now} + {key}"
    if kind == "dropdown":
        options = control.evaluate("s => [...s.options].map(o => o.value)")
        current = control.input_value()
        other = next(o for o in options if o != current)
        control.select_option(other)
        return f"dropdown {current!r} -> {other!r}"
    if kind == "toggle":
        other = control.locator("xpath=..").locator("button:not(.mod-active)").first
        label = other.inner_text()
        other.click()
        return f"toggle -> {label!r}"
    if kind == "text":
        current = control.input_value()
        if value is None:  # a new, plausible value: a whole number plus one, else the first word repeated at the end
            words = current.split()
            value = (str(int(current) + 1) if re.fullmatch(r"\s*-?\d+\s*", current)
                     else f"{current} {words[0]}" if words else "1")
        control.fill(value)
        control.press("Enter")
        return f"text {current!r} -> {value!r}"
    if kind == "checkbox":
        before = control.is_checked()
        control.click()
        return f"checkbox {before} -> {not before}"
    raise ValueError(kind)


def _wait_for_change(page, lab: Lab, rel: str, cell, before: str) -> str:
    """The cell's shown output once it differs from `before` and has settled (kernel idle, images loaded, the
    same for a second); `before` itself if nothing changed within WIDGET_TIMEOUT."""
    deadline = time.time() + WIDGET_TIMEOUT
    while (after := cell.evaluate(SHOWN_JS, ALL_CONTROLS)) == before:
        if time.time() > deadline:
            return after
        time.sleep(0.2)
    deadline = time.time() + WIDGET_TIMEOUT
    while True:
        _wait_idle(lab, rel, WIDGET_TIMEOUT)
        cell.evaluate("c => Promise.all([...c.querySelectorAll('img')].map(i => i.decode().catch(() => null)))")
        time.sleep(1.0)
        now = cell.evaluate(SHOWN_JS, ALL_CONTROLS)
        if now == after and lab.kernel_idle(rel):
            return now
        if time.time() > deadline:
            raise AssertionError(f"{rel}: a widget's output kept changing for {WIDGET_TIMEOUT:.0f} s")
        after = now


# --------------------------------------------------------------------------- the test

@pytest.mark.parametrize("lesson", widget_lessons(), ids=lambda p: p.stem)
def test_lesson_widgets_work_in_jupyterlab(lesson: Path, lab: Lab, browser, artifacts: Path):
    rel = lesson.relative_to(ROOT).as_posix()
    expected = widget_cells(lesson)
    n_cells = len(nbformat.read(lesson, as_version=4).cells)
    shots = artifacts / lesson.stem
    shots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 1200})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(lab.url(rel, f"test-{lesson.stem}"))
        cells = _run_all(page, lab, rel, n_cells, shots)
        counts = [_count(c["prompt"]) for c in cells if c["code"]]
        assert counts == list(range(1, len(counts) + 1)), f"{rel}: cells did not run once each, top to bottom: {counts}"

        dom_cells = page.locator(f"{NOTEBOOK} .jp-Cell")
        assert dom_cells.count() == n_cells, f"{rel}: page shows {dom_cells.count()} cells, the file has {n_cells}"
        for index in expected:
            cell = dom_cells.nth(index)
            widget = cell.locator(".jp-OutputArea-output .jupyter-widgets").first
            assert widget.count(), (f"{rel} cell {index}: no live widget rendered (the text fallback?); "
                                    f"its output: {cells[index]['text']!r}")
            kinds = [k for k, (sel, _) in CONTROLS.items() if cell.locator(f".jp-OutputArea-output {sel}").count()]
            assert kinds, (f"{rel} cell {index}: its widget has no control this test can move "
                           f"({', '.join(CONTROLS)}): teach CONTROLS and _operate the new kind")
            outputs = cell.locator(".jp-Cell-outputArea")
            widget.scroll_into_view_if_needed()
            outputs.screenshot(path=shots / f"cell{index}-run.png")
            for kind in kinds:
                sel, target = CONTROLS[kind]
                control = cell.locator(f".jp-OutputArea-output {sel} {target}").first
                attempts = [None, ""] if kind == "text" else [None]  # a text box must also survive being emptied
                for value in attempts:
                    before = cell.evaluate(SHOWN_JS, ALL_CONTROLS)
                    what = _operate(page, control, kind, value)
                    after = _wait_for_change(page, lab, rel, cell, before)
                    name = f"cell{index}-{kind}{'-empty' if value == '' else ''}.png"
                    outputs.screenshot(path=shots / name)
                    if errors := _errors(_cells(page)):
                        raise AssertionError(f"{rel} cell {index}, after {what}: error shown "
                                             f"(screenshot {shots / name}):\n" + "\n".join(errors))
                    if value is None:
                        assert after != before, (f"{rel} cell {index}: {what} did not change the widget's output "
                                                 f"within {WIDGET_TIMEOUT:.0f} s (screenshot {shots / name})")
                    else:
                        assert after, f"{rel} cell {index}: {what} left the output empty, not even a message"
        if errors := _errors(_cells(page)):
            raise AssertionError(f"{rel}: error shown:\n" + "\n".join(errors))
        page.screenshot(path=shots / "done.png")
    finally:
        try:
            lab.shut_down(rel)
        finally:
            context.close()

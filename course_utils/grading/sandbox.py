"""The grader's sandbox: each submission runs under bubblewrap (``bwrap``), see ``command``.

Inside, the submission sees a read-only view of what Python needs (the system's libraries, the
Python installation and its packages, the course itself) and nothing else of the machine: not the
other submissions, not the grader's output folder, not the instructor's home folder. Its only
writable place is a private, size-capped tmpfs at /tmp, gone when it ends. It has no network (a
network namespace with no interfaces), no capabilities, its own process namespace (so every process
it starts, detached or not, ends when it ends) and dies with the grader. Memory, file-size and
output caps are set by the worker itself (``notebook_worker``), before any submitted code runs.

Where bwrap is missing or cannot create namespaces, ``problem()`` says why and the grader grades
without a sandbox, saying so loudly.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

SCRATCH = "/tmp"
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
# What a Python program and a Jupyter kernel read from /etc; the rest of /etc (shadow, ssh keys) stays out.
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf", "localtime", "hosts",
        "mime.types", "fonts", "alternatives", "ssl")


def _visible(course_root: Path) -> list[Path]:
    """Folders the submission may read: the Python installation, every import path, and the course."""
    paths = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, course_root)}
    paths |= {Path(p) for p in sys.path if p and Path(p).is_dir()}
    resolved = {Path(os.path.realpath(p)) for p in paths} | paths
    keep: list[Path] = []
    for p in sorted(resolved, key=lambda p: len(p.parts)):  # a folder inside one already kept adds nothing
        if p.exists() and not any(p.is_relative_to(k) for k in keep) and str(p) not in _SYSTEM:
            keep.append(p)
    return keep


def command(inner: list[str], course_root: Path, hidden: list[Path], scratch_bytes: int) -> list[str]:
    """The bwrap command line that runs ``inner`` in the sandbox, working in the scratch folder."""
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--proc", "/proc", "--dev", "/dev", "--size", str(scratch_bytes), "--tmpfs", SCRATCH]
    for top in _SYSTEM:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in _ETC:
        if os.path.lexists(f"/etc/{name}"):
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    if os.path.isdir("/sys/devices/system/cpu"):  # torch reads the CPU's topology here
        args += ["--ro-bind", "/sys/devices/system/cpu", "/sys/devices/system/cpu"]
    visible = _visible(course_root)
    for path in visible:
        if not any(path.is_relative_to(top) for top in _SYSTEM if os.path.isdir(top) and not os.path.islink(top)):
            args += ["--ro-bind", str(path), str(path)]
    shown = visible + [Path(t) for t in _SYSTEM]
    for path in hidden:  # e.g. submissions/ or the gradebook folder inside the course: an empty tmpfs over it
        path = Path(os.path.realpath(path))
        if path.is_dir() and any(path.is_relative_to(v) for v in shown):
            args += ["--size", "4096", "--tmpfs", str(path)]
    return args + ["--chdir", SCRATCH, "--"] + inner


@functools.lru_cache(maxsize=None)
def problem(course_root: Path) -> str:
    """'' when the sandbox works here; otherwise why not (bwrap missing, namespaces refused, ...)."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux; this is {sys.platform}"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    probe = command([sys.executable, "-c", "import nbclient"], course_root, [], 2**24)  # site-packages are visible
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bwrap could not start: {err}"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return f"bwrap failed (exit status {done.returncode}): {lines[-1] if lines else 'no message'}"
    return ""

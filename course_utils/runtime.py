"""Device choice, seeding, and configurations that grow on a GPU.

Every training cell in the course starts with the same three lines::

    device = get_device()
    seed_everything(0)
    cfg = pick_config(device, cpu=dict(hidden=64, steps=600), gpu=dict(hidden=256, steps=3000))

so one notebook runs in minutes on a laptop CPU and trains a bigger model on a GPU.
Set the environment variable ``COURSE_DEVICE`` (``cpu``, ``cuda`` or ``mps``) to override the
automatic choice; the renderer uses ``COURSE_DEVICE=cpu`` so stored outputs are CPU outputs.

Importing the package also chooses how many CPU threads torch uses (``choose_cpu_threads``), from
the cores that are idle at that moment. The course's models are small. On a quiet 2-core machine a
second thread makes a lesson 15-35% faster, but beside one other busy process two threads wait on
each other at every operation and a training step becomes several times slower, while one thread
runs at its quiet speed. So the course takes one thread per idle core (at most four, and at most
torch's own default), measured over 0.2 s: two on a quiet 2-core laptop, one beside a busy process.
The grader gives each notebook one thread. Your own choice wins: set ``COURSE_THREADS`` (or
``OMP_NUM_THREADS``) before starting Jupyter, or call ``torch.set_num_threads(n)`` after the import.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from types import SimpleNamespace

import numpy as np
import torch

_KNOWN_DEVICES = ("cpu", "cuda", "mps")
_THREAD_VARIABLES = ("COURSE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_TORCH_DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice (physical cores), before the course's
MAX_AUTO_THREADS = 4


def idle_cores(interval: float = 0.2) -> float | None:
    """How many CPU cores were idle over the next ``interval`` seconds, from Linux's /proc/stat;
    None where that cannot be read (macOS, Windows)."""

    def sample() -> tuple[int, int, int]:
        with open("/proc/stat", encoding="ascii") as fh:
            lines = fh.read().splitlines()
        values = [int(v) for v in lines[0].split()[1:9]]   # user nice system idle iowait irq softirq steal
        cores = sum(1 for line in lines[1:] if line.startswith("cpu"))
        return values[3] + values[4], sum(values), cores

    try:
        idle0, total0, cores = sample()
        time.sleep(interval)
        idle1, total1, _ = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0 or cores < 1:
        return None
    return (idle1 - idle0) / (total1 - total0) * cores


def automatic_threads(idle: float | None, default: int = _TORCH_DEFAULT_THREADS) -> int:
    """One thread per idle core (a core counts when it is at least 80% idle), at least one, at most
    ``MAX_AUTO_THREADS`` and torch's ``default``; one when the idle cores are unknown."""
    if idle is None:
        return 1
    return max(1, min(int(idle + 0.2), MAX_AUTO_THREADS, default))


def choose_cpu_threads(default: int | None = None) -> int:
    """Set torch's intra-op CPU thread count and return it.

    ``COURSE_THREADS``, then ``OMP_NUM_THREADS``, then ``MKL_NUM_THREADS`` win when set to a
    positive integer; otherwise ``default`` if given, else one thread per idle core
    (``automatic_threads(idle_cores())``, see the module's docstring). A variable set to something
    else raises a ``ValueError`` that names it.
    """
    for name in _THREAD_VARIABLES:
        raw = os.environ.get(name, "").strip()
        if raw:
            try:
                threads = int(raw)
            except ValueError:
                threads = 0
            if threads < 1:
                raise ValueError(f"{name} must be a positive integer (a number of CPU threads), got {raw!r}")
            break
    else:
        if default is None:
            default = automatic_threads(idle_cores())
        if not isinstance(default, int) or isinstance(default, bool) or default < 1:
            raise ValueError(f"default must be a positive int, got {default!r}")
        threads = default
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


@contextlib.contextmanager
def single_thread():
    """Run the block on one CPU thread, then restore the count: for timing cells, whose ratios a second
    thread beside a busy process would distort."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def get_device(prefer: str | None = None) -> torch.device:
    """Return the best available device: cuda, then mps, then cpu.

    ``prefer`` (or the ``COURSE_DEVICE`` environment variable) forces a device; asking for one
    that is not available raises a ``RuntimeError`` that says what is available.
    """
    choice = prefer if prefer is not None else os.environ.get("COURSE_DEVICE", "").strip().lower()
    if choice:
        if choice not in _KNOWN_DEVICES:
            raise ValueError(f"device must be one of {_KNOWN_DEVICES}, got {choice!r}")
        available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": _mps_available()}
        if not available[choice]:
            have = [name for name, ok in available.items() if ok]
            raise RuntimeError(f"device {choice!r} was requested but is not available; available: {have}")
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device | str | None = None) -> str:
    """A one-line description of the device, e.g. 'cuda: NVIDIA H100 (79.1 GiB)' or 'cpu: 2 threads'."""
    device = torch.device(device) if device is not None else get_device()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda: {props.name} ({props.total_memory / 2**30:.1f} GiB)"
    if device.type == "mps":
        return "mps: Apple GPU"
    return f"cpu: {torch.get_num_threads()} threads"


def seed_everything(seed: int) -> int:
    """Seed Python's, NumPy's and torch's generators (all devices) and return the seed."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every device, cuda included
    return seed


def pick_config(device: torch.device | str, *, cpu: dict, gpu: dict | None = None) -> SimpleNamespace:
    """Choose a configuration by device: ``cpu`` on a CPU, ``cpu`` updated with ``gpu`` on a GPU.

    The GPU dictionary only lists what changes (a bigger hidden size, more steps), so the two
    configurations cannot drift apart. The result is a namespace: ``cfg.hidden``, ``cfg.steps``.
    """
    if not isinstance(cpu, dict):
        raise TypeError(f"cpu must be a dict of settings, got {type(cpu).__name__}")
    gpu = gpu or {}
    unknown = set(gpu) - set(cpu)
    if unknown:
        raise KeyError(f"gpu settings {sorted(unknown)} have no CPU default; add them to cpu= too")
    device = torch.device(device)
    settings = dict(cpu)
    if device.type in ("cuda", "mps"):
        settings.update(gpu)
    settings["device"] = device
    return SimpleNamespace(**settings)

import numpy as np
import pytest
import torch

from course_utils import choose_cpu_threads, get_device, pick_config, seed_everything


def test_get_device_defaults_to_cpu_here_and_honours_override(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert get_device().type == expected
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device().type == "cpu"


def test_get_device_rejects_unknown_and_unavailable(monkeypatch):
    with pytest.raises(ValueError, match="one of"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="not available"):
            get_device("cuda")


def test_seed_everything_repeats_all_generators():
    seed_everything(7)
    a = (torch.rand(4), np.random.rand(4), __import__("random").random())
    seed_everything(7)
    b = (torch.rand(4), np.random.rand(4), __import__("random").random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    seed_everything(8)
    assert not torch.equal(torch.rand(4), a[0])


@pytest.mark.parametrize("bad", [1.5, "3", -1, 2**32, True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises((TypeError, ValueError)):
        seed_everything(bad)


def test_pick_config_by_device():
    cpu = pick_config("cpu", cpu=dict(hidden=64, steps=10), gpu=dict(hidden=256))
    gpu = pick_config("cuda", cpu=dict(hidden=64, steps=10), gpu=dict(hidden=256))
    assert (cpu.hidden, cpu.steps, cpu.device.type) == (64, 10, "cpu")
    assert (gpu.hidden, gpu.steps, gpu.device.type) == (256, 10, "cuda")


def test_pick_config_rejects_gpu_only_settings():
    with pytest.raises(KeyError, match="no CPU default"):
        pick_config("cpu", cpu=dict(hidden=64), gpu=dict(layers=4))


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_without_a_setting_the_course_takes_one_thread_per_idle_core(restore_threads, monkeypatch):
    from course_utils import runtime
    for name in ("COURSE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(runtime, "idle_cores", lambda interval=0.2: 0.95)   # one busy process on 2 cores
    assert choose_cpu_threads() == 1 and torch.get_num_threads() == 1
    monkeypatch.setattr(runtime, "idle_cores", lambda interval=0.2: 1.9)    # a quiet 2-core machine
    assert choose_cpu_threads() == min(2, runtime._TORCH_DEFAULT_THREADS) == torch.get_num_threads()


@pytest.mark.parametrize("idle, default, expected", [(None, 8, 1), (0.1, 8, 1), (0.95, 8, 1), (1.85, 8, 2),
                                                     (1.5, 8, 1), (15.9, 16, 4), (7.9, 2, 2), (3.0, 1, 1)])
def test_automatic_threads(idle, default, expected):
    from course_utils.runtime import automatic_threads
    assert automatic_threads(idle, default) == expected


def test_idle_cores_reads_a_plausible_number():
    from course_utils.runtime import idle_cores
    idle = idle_cores(0.05)
    if idle is None:
        pytest.skip("no /proc/stat on this system")
    assert 0.0 <= idle <= len(open("/proc/stat").read().split("\ncpu")) - 1 + 1e-9


@pytest.mark.parametrize("name", ["COURSE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_the_learners_thread_setting_wins(restore_threads, monkeypatch, name):
    for other in ("COURSE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(name, "3")
    assert choose_cpu_threads() == 3 and torch.get_num_threads() == 3


def test_course_threads_comes_before_omp(restore_threads, monkeypatch):
    monkeypatch.setenv("COURSE_THREADS", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert choose_cpu_threads() == 2


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5"])
def test_a_bad_thread_setting_says_what_was_expected(restore_threads, monkeypatch, raw):
    monkeypatch.setenv("COURSE_THREADS", raw)
    with pytest.raises(ValueError, match="COURSE_THREADS must be a positive integer"):
        choose_cpu_threads()

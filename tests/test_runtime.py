import numpy as np
import pytest
import torch

from course_utils import get_device, pick_config, seed_everything


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

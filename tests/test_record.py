"""The record format between a notebook and the grader: data only, read back exactly, hostile input refused."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
import torch

from course_utils.grading import core, record
from course_utils.grading.record import MalformedRecord, Opaque, round_trip


@pytest.mark.parametrize("value", [
    None, True, 3, -2.5, float("inf"), "naïve ☃",
    torch.arange(6, dtype=torch.float64).reshape(2, 3), torch.tensor([True, False]), torch.zeros(0, 4),
    torch.randn(3, 4, generator=torch.Generator().manual_seed(0)).T,  # not contiguous
    np.arange(6, dtype=np.int16).reshape(3, 2).T, np.float32(0.25), np.bool_(True), np.int64(7),
    [1, [2.0, "x"]], (1, (2,)), {"a": 1, 3: [4], np.int64(5): "five", (1, 2): None},
])
def test_data_round_trips_with_its_type(value):
    back = round_trip(value)
    assert type(back) is type(value)
    if isinstance(value, torch.Tensor):
        assert back.dtype == value.dtype and torch.equal(back, value)
    elif isinstance(value, (np.ndarray, np.generic)):
        assert back.dtype == value.dtype and np.shape(back) == np.shape(value) and np.array_equal(back, value)
    else:
        assert back == value


def test_a_tensor_comes_back_detached_on_the_cpu():
    x = torch.ones(3, requires_grad=True) * 2
    back = round_trip(x)
    assert not back.requires_grad and back.grad_fn is None and torch.equal(back, torch.full((3,), 2.0))
    assert round_trip(torch.nn.Parameter(torch.ones(2))).__class__ is torch.Tensor


@pytest.mark.parametrize("value, type_name", [(torch.nn.Linear(2, 2), "Linear"), ((i for i in range(3)), "generator"),
                                              ({1, 2}, "set"), (torch.empty(2, device="meta"), "Tensor"),
                                              (np.array(["a"], dtype=object), "ndarray")])
def test_anything_else_becomes_an_opaque_stand_in(value, type_name):
    back = round_trip(value)
    assert isinstance(back, Opaque) and back.type_name == type_name


def test_the_number_budget_stops_a_huge_answer():
    big = torch.zeros(record.MAX_NUMBERS + 1, dtype=torch.uint8)
    assert round_trip(big) == Opaque("Tensor", "too large to record")


def test_a_code_running_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    evil = b"cos\nsystem\n(S'" + f"touch {marker}".encode() + b"'\ntR."
    with pytest.raises(MalformedRecord, match="unreadable"):
        record.loads(evil)
    assert not marker.exists()
    pickle.loads(evil)  # the same bytes do run code when unpickled without weights_only: the test means something
    assert marker.exists()
    os.remove(marker)


@pytest.mark.parametrize("bad", [
    {"format": 2, "check_id": "00.normalise", "objects": [], "calls": []},
    {"format": 1, "check_id": 3, "objects": [], "calls": []},
    {"format": 1, "check_id": "00.normalise", "objects": {}, "calls": []},
    [1, 2, 3],
])
def test_a_record_without_its_fields_is_refused(bad):
    buffer = io.BytesIO()
    torch.save(bad, buffer)
    with pytest.raises(MalformedRecord):
        record.loads(buffer.getvalue())


@pytest.mark.parametrize("entry", [
    {"__course__": "ndarray", "bytes": torch.zeros(3, dtype=torch.uint8), "dtype": "<f8", "shape": [2]},
    {"__course__": "ndarray", "bytes": torch.zeros(8, dtype=torch.uint8), "dtype": "|O", "shape": [1]},
    {"__course__": "tensor", "value": 3},
    {"__course__": "unknown"},
    {"no": "tag"},
])
def test_malformed_entries_are_refused(entry):
    with pytest.raises(MalformedRecord):
        record.decode(entry)


def test_in_place_changes_are_replayed_on_the_graders_arguments():
    def scale_in_place(x, values, d):
        x.mul_(2)
        values.append(1)
        d["k"] = 1
        return x.sum()

    checker = core.Checker()
    x, values, d = torch.ones(3), [0], {}
    checker.call(scale_in_place, x, values, d)
    replayer = core.Checker(replay=core.load_record({"format": 1, "check_id": "x", "objects": [],
                                                     "calls": checker.calls})["calls"])
    x2, values2, d2 = torch.ones(3), [0], {}
    got = replayer.call(record.LearnerCode(0), x2, values2, d2)
    assert float(got) == 6.0 and torch.equal(x2, torch.full((3,), 2.0)) and values2 == [0, 1] and d2 == {"k": 1}


def test_a_replay_on_other_inputs_is_refused():
    checker = core.Checker()
    checker.call(lambda x: x + 1, torch.ones(2))
    replayer = core.Checker(replay=checker.calls)
    with pytest.raises(core._RecordMismatch, match="other inputs"):
        replayer.call(record.LearnerCode(0), torch.zeros(2))


def test_in_place_changes_inside_a_tuple_are_replayed():
    def zero_first(pair):
        pair[0].zero_()
        pair[1].append(9)

    checker = core.Checker()
    checker.call(zero_first, (torch.ones(2), [1]))
    replayer = core.Checker(replay=core.load_record({"format": 1, "check_id": "x", "objects": [],
                                                     "calls": checker.calls})["calls"])
    pair = (torch.ones(2), [1])
    replayer.call(record.LearnerCode(0), pair)
    assert torch.equal(pair[0], torch.zeros(2)) and pair[1] == [1, 9]

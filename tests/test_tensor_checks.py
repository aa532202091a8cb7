"""Unit tests for course_utils.grading.tensor_checks, the helpers every lesson's checks share."""

import math
import types

import numpy as np
import pytest
import torch

from course_utils.grading.tensor_checks import (all_finite, as_count, as_number, as_tensor, close, copies, describe,
                                                disabled, first_difference, is_tensor, rounded, unchanged,
                                                where_differs)

WANT = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.2447]])


@pytest.mark.parametrize("answer", [
    WANT.clone(), WANT.double(), WANT.half().float(), WANT.numpy(), WANT.double().numpy(), WANT.tolist(),
    tuple(tuple(row) for row in WANT.tolist())])
def test_as_tensor_reads_every_form_as_float64(answer):
    got = as_tensor(answer)
    assert got.dtype == torch.float64 and got.shape == (2, 3)
    assert torch.allclose(got, WANT.double(), atol=1e-3)


def test_as_tensor_numbers_ints_bools_and_what_it_refuses():
    assert as_tensor(np.float32(2.5)).item() == 2.5 and as_tensor(np.float32(2.5)).shape == ()
    assert as_tensor(torch.tensor([1, 2])).tolist() == [1.0, 2.0]
    assert as_tensor(torch.tensor([True, False])).tolist() == [1.0, 0.0]
    x = torch.ones(2, requires_grad=True)
    assert not as_tensor(x * 2).requires_grad
    for bad in (None, "0.5", {"a": 1}, [[1, 2], [3]], object()):
        assert as_tensor(bad) is None, bad


def test_as_number_and_as_count():
    assert as_number(np.float64(0.75)) == 0.75 and as_number(torch.tensor([[3.0]])) == 3.0 and as_number("2") == 2.0
    assert as_number(torch.ones(2)) is None and as_number(None) is None and as_number(True) is None
    assert as_count(174.0) == 174 and as_count(torch.tensor(12)) == 12 and as_count(np.int64(5)) == 5
    assert as_count(2.5) is None and as_count(np.bool_(True)) is None


def test_describe_and_is_tensor():
    assert describe(torch.zeros(3, 5, dtype=torch.int32)) == "Tensor of shape (3, 5), dtype torch.int32"
    assert describe(np.zeros((2,))) == "ndarray of shape (2,), dtype float64"
    assert describe(None) == "NoneType" and describe([1]) == "list"
    assert is_tensor(torch.zeros(2, 3), (2, 3)) and not is_tensor(torch.zeros(2, 3), (3, 2)) and not is_tensor([1.0])


def test_close_is_tolerant_of_forms_and_strict_about_values():
    assert close(WANT.double(), WANT) and close(WANT.numpy(), WANT) and close(WANT.tolist(), WANT.double())
    assert close(WANT + 5e-6, WANT) and not close(WANT + 1e-3, WANT)
    assert not close(WANT.T, WANT) and not close(None, WANT) and not close("x", WANT)
    with_nan = WANT.clone()
    with_nan[1, 2] = float("nan")
    assert not close(with_nan, WANT)
    assert not close(torch.full((2,), float("inf")), torch.full((2,), float("inf")))   # not finite
    assert all_finite(WANT) and not all_finite(with_nan) and not all_finite(None)


def test_where_differs_quotes_the_first_index_and_both_values():
    got = WANT.clone()
    got[1, 2] = float("nan")
    got[1, 1] = 0.5 + 1e-7                                     # within tolerance: not reported
    assert where_differs(got, WANT) == "at index (1, 2): expected 0.2447, got nan"
    assert first_difference(got, WANT) == (1, 2)
    assert where_differs([0.1, 0.7], [0.1, 0.2]) == "at index 1: expected 0.2, got 0.7"
    assert where_differs(np.array(3.0), torch.tensor(2.0)) == "expected 2, got 3"
    assert where_differs(WANT.double().numpy(), WANT) == "" and first_difference(WANT, WANT) is None
    assert where_differs(WANT.T, WANT) == "expected shape (2, 3), got shape (3, 2)"
    assert where_differs(None, WANT) == "expected numbers of shape (2, 3), got NoneType"
    assert first_difference(WANT.T, WANT) is None
    assert where_differs(WANT + 0.01, WANT, atol=0.1) == "" and where_differs(WANT + 0.01, WANT, atol=0.0, rtol=0.0)


def test_rounded_flattens():
    assert rounded(torch.tensor([[0.12345, 1.0], [2.0, 3.33333]]), 2) == [0.12, 1.0, 2.0, 3.33]
    assert rounded([0.5, 0.25]) == [0.5, 0.25]


def test_copies_and_unchanged_notice_in_place_changes():
    t, a, lst, n = torch.arange(6.0).view(2, 3), np.arange(4), [1, [2, 3]], 7
    originals = (t, a, lst, n)
    c = copies(*originals)
    assert c[0] is not t and c[1] is not a and c[2] is not lst and c[3] == 7
    assert unchanged(originals, c)
    c[0].mul_(2)
    assert not unchanged(originals, c) and torch.equal(t, torch.arange(6.0).view(2, 3))
    c = copies(*originals)
    c[1][0] = 9
    assert not unchanged(originals, c) and a[0] == 0
    c = copies(*originals)
    c[2][1].append(4)
    assert not unchanged(originals, c) and lst == [1, [2, 3]]
    nan = torch.tensor([float("nan"), 1.0])
    assert unchanged((nan,), copies(nan))                      # nan equals nan here
    c = copies(nan)
    c[0].masked_fill_(torch.tensor([True, False]), 0.0)
    assert not unchanged((nan,), c)
    mask = torch.tensor([True, False])
    c = copies(mask)
    c[0].logical_not_()
    assert not unchanged((mask,), c)


# --------------------------------------------------------------------------- disabled


def _plain(x, y=2):
    return x + y


class _Base:
    def inherited(self):
        return "base"

    @staticmethod
    def helper():
        return "static"


class _Child(_Base):
    def own(self):
        return "own"


def _learner_raises():
    raise ValueError("the learner's bug")


def test_disabled_swaps_a_function_so_aliases_are_off_and_restores_it_after_an_error():
    alias = _plain
    module = types.ModuleType("fake_module")
    module.plain = _plain
    with pytest.raises(ValueError, match="learner's bug"):
        with disabled(_plain, why="write it yourself"):
            for call in (lambda: alias(1), lambda: module.plain(1), lambda: _plain(1, y=3)):
                with pytest.raises(RuntimeError, match=r"_plain is switched off while this check runs: write it"):
                    call()
            _learner_raises()
    assert alias(1) == 3 and module.plain(1, y=5) == 6 and _plain.__defaults__ == (2,)


def test_disabled_replaces_module_functions_methods_and_inherited_methods_and_restores_them():
    module = types.ModuleType("fake_module")
    module.plain = _plain
    child = _Child()
    own_before = dict(vars(_Child))
    with pytest.raises(ValueError):
        with disabled((module, "plain"), (_Child, "own"), (_Child, "inherited"), (_Base, "helper"),
                      why="the finished version is hidden"):
            with pytest.raises(RuntimeError, match="fake_module.plain is switched off.*hidden"):
                module.plain(1)
            with pytest.raises(RuntimeError, match="_Child.own is switched off"):
                child.own()
            with pytest.raises(RuntimeError, match="_Child.inherited is switched off"):
                child.inherited()
            with pytest.raises(RuntimeError, match="switched off"):
                _Base.helper()
            assert _Base().inherited() == "base"                 # only the child's view of it is off
            _learner_raises()
    assert module.plain(1) == 3 and child.own() == "own" and child.inherited() == "base"
    assert _Base.helper() == "static" and isinstance(vars(_Base)["helper"], staticmethod)
    assert dict(vars(_Child)) == own_before and "inherited" not in vars(_Child)    # not left as an own attribute


def test_disabled_handles_instances_and_builtins():
    child = _Child()
    with disabled((child, "own"), (torch, "softmax"), (torch.Tensor, "softmax"), why="no"):
        with pytest.raises(RuntimeError, match="_Child.own"):
            child.own()
        assert _Child().own() == "own"
        with pytest.raises(RuntimeError):
            torch.softmax(torch.zeros(2), 0)
        with pytest.raises(RuntimeError):
            torch.zeros(2).softmax(0)
    assert "own" not in vars(child) and "softmax" not in vars(torch.Tensor)
    assert torch.allclose(torch.zeros(2).softmax(0), torch.tensor([0.5, 0.5]))
    assert math.isclose(float(torch.softmax(torch.zeros(4), 0)[0]), 0.25)


def test_disabled_refuses_a_closure_it_cannot_swap():
    def outer():
        z = 1

        def inner():
            return z
        return inner

    with pytest.raises(TypeError, match="owner, name"):
        with disabled(outer()):
            pass


def test_on_copies_gives_copies_notes_changes_inside_lists_and_keeps_a_crash_to_one_part():
    from course_utils.grading.core import Checker
    from course_utils.grading.tensor_checks import OnCopies

    def scale_first(xs, y):
        xs[0].mul_(2)
        return xs[0] + y

    t, changed = Checker(), []
    call = OnCopies(t, scale_first, "scale_first", ("xs", "y"), changed)
    xs, y = [torch.ones(2), torch.zeros(2)], torch.ones(2)
    got = call(xs, y)
    assert torch.equal(got, torch.full((2,), 3.0)) and torch.equal(xs[0], torch.ones(2))   # the original is intact
    assert changed == ["scale_first changed `xs`"]
    crash = OnCopies(t, lambda xs, y: xs[5], "pick", ("xs", "y"))
    assert crash.attempt(xs, y) == (None, "IndexError: list index out of range")


def test_why_wrong_names_the_case_and_the_first_difference():
    from course_utils.grading.tensor_checks import why_wrong

    want = torch.tensor([1.0, 2.0, 3.0])
    assert why_wrong(torch.tensor([1.0, 2.5, 3.0]), want, "", "n=3") == "n=3: at index 1: expected 2, got 2.5"
    assert "expected shape (3,), got (2,)" in why_wrong(torch.ones(2), want, "", "n=3")
    assert why_wrong(None, want, "ValueError: no", "n=3").endswith("(does it assume the example's sizes?)")

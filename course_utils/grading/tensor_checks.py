"""Small helpers that lesson checks share to inspect what learner code returned (tensors, arrays, lists,
numbers), quote it back in feedback, notice changed inputs, and switch finished implementations off."""

from __future__ import annotations

import contextlib
import copy as _copy_module
import types

import numpy as np
import torch


def is_tensor(x, shape=None) -> bool:
    """Whether ``x`` is a tensor (of exactly ``shape``, if given)."""
    return isinstance(x, torch.Tensor) and (shape is None or tuple(x.shape) == tuple(shape))


def as_tensor(x):
    """A learner's answer (tensor of any dtype, NumPy array or scalar, number, nested list/tuple) as a float64
    CPU tensor, or None when it cannot be read as numbers."""
    if x is None or isinstance(x, (str, bytes, dict)):
        return None
    try:
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().to(torch.float64)
        return torch.as_tensor(np.asarray(x, dtype=np.float64))
    except (TypeError, ValueError, RuntimeError):
        return None


def as_number(x):
    """A float from a number, a NumPy scalar or a one-element tensor/array; None otherwise (bools too)."""
    if isinstance(x, (bool, np.bool_)):
        return None
    if isinstance(x, (torch.Tensor, np.ndarray)):
        value = as_tensor(x)
        return float(value.reshape(-1)[0]) if value is not None and value.numel() == 1 else None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def as_count(x):
    """``as_number(x)`` as an int when it is a whole number (within 1e-6), else None."""
    value = as_number(x)
    return int(round(value)) if value is not None and abs(value - round(value)) < 1e-6 else None


def describe(x) -> str:
    """What was returned, for feedback: 'Tensor of shape (2, 3), dtype torch.float32', else the type's name."""
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return f"{type(x).__name__} of shape {tuple(x.shape)}, dtype {x.dtype}"
    return type(x).__name__


def all_finite(x) -> bool:
    """Whether ``x`` reads as numbers (see ``as_tensor``) with no nan or inf."""
    g = as_tensor(x)
    return g is not None and bool(torch.isfinite(g).all())


def _first_bad(g: torch.Tensor, w: torch.Tensor, atol: float, rtol: float):
    """The first index (a tuple) where float64 tensors g and w differ, or None."""
    bad = ~torch.isclose(g, w, atol=atol, rtol=rtol) | ~torch.isfinite(g)
    if not bool(bad.any()):
        return None
    return tuple(int(i) for i in bad.nonzero()[0])


def close(got, want, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """Whether ``got`` (any form ``as_tensor`` reads) has ``want``'s shape, is finite and is within tolerance."""
    g, w = as_tensor(got), as_tensor(want)
    return g is not None and w is not None and g.shape == w.shape and _first_bad(g, w, atol, rtol) is None


def first_difference(got, want, atol: float = 1e-5, rtol: float = 1e-4):
    """The first index (a tuple) where ``got`` differs from ``want`` (nan and inf always differ); None when
    they agree or cannot be compared (then see ``close``)."""
    g, w = as_tensor(got), as_tensor(want)
    return None if g is None or w is None or g.shape != w.shape else _first_bad(g, w, atol, rtol)


def where_differs(got, want, atol: float = 1e-5, rtol: float = 1e-4) -> str:
    """'at index (1, 2): expected 0.2447, got nan' for the first entry that differs (nan and inf always
    differ), a message naming the shapes when they differ, or '' when ``got`` is close to ``want``."""
    g, w = as_tensor(got), as_tensor(want)
    if g is None:
        return f"expected numbers of shape {tuple(w.shape)}, got {describe(got)}"
    if g.shape != w.shape:
        return f"expected shape {tuple(w.shape)}, got shape {tuple(g.shape)}"
    idx = _first_bad(g, w, atol, rtol)
    if idx is None:
        return ""
    where = f"at index {idx[0] if len(idx) == 1 else idx}: " if idx else ""
    return f"{where}expected {float(w[idx]):.6g}, got {float(g[idx]):.6g}"


def rounded(x, nd: int = 3) -> list[float]:
    """The values of ``x`` (tensor, array or sequence, flattened) rounded for quoting in feedback."""
    return [round(float(v), nd) for v in as_tensor(x).flatten()]


def _copy(x):
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, (list, tuple)):
        return type(x)(_copy(v) for v in x) if type(x) in (list, tuple) else _copy_module.deepcopy(x)
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    return x


def copies(*inputs) -> tuple:
    """Copies of the inputs to hand to learner code (tensors cloned, arrays copied, lists, tuples and dicts
    copied with what they hold)."""
    return tuple(_copy(x) for x in inputs)


def _same_value(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return (isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
                and (torch.equal(a, b) or (a.is_floating_point() and torch.equal(a.isnan(), b.isnan())
                                           and torch.equal(a.nan_to_num(), b.nan_to_num()))))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and bool(np.array_equal(a, b))
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    try:
        return bool(a == b) or (a != a and b != b)  # numbers and strings; nan equals nan
    except Exception:  # noqa: BLE001  (an object whose == is not a plain comparison)
        return True


def unchanged(originals, copies) -> bool:
    """Whether every copy still equals its original (tensors, arrays, and lists, tuples and dicts of them; nan
    equals nan): False means the learner's code modified an input in place."""
    return all(_same_value(o, c) for o, c in zip(originals, copies))


class OnCopies:
    """One learner function, called through ``t.call`` (or ``attempt``) on copies of its inputs while
    ``switched_off()`` is active (a context manager that switches the course's finished versions off); notes in
    ``changed`` each named input the learner's code changed in place, as "<fn_name> changed `<name>`"."""

    def __init__(self, t, fn, fn_name: str, names, changed: list | None = None, switched_off=None):
        self.t, self.fn, self.fn_name, self.names = t, fn, fn_name, tuple(names)
        self.changed = [] if changed is None else changed
        self.switched_off = switched_off or contextlib.nullcontext

    def __call__(self, *args, wrap=None, **kwargs):
        """The learner's answer; ``wrap`` turns the learner's function into one the check defines around it."""
        inputs = copies(*args)
        target = self.fn if wrap is None else wrap(self.fn)
        try:
            with self.switched_off():
                return self.t.call(target, *inputs, **kwargs)
        finally:
            for name, original, copy in zip(self.names, args, inputs):
                label = f"{self.fn_name} changed `{name}`"
                if not unchanged((original,), (copy,)) and label not in self.changed:
                    self.changed.append(label)

    def attempt(self, *args, unwritten_ok: bool = False, **kwargs):
        """(answer, '') or, when the learner's code raised, (None, the error): a crash on one input costs the part
        that input tests. With ``unwritten_ok``, a function still raising NotImplementedError counts the same way."""
        from .core import LearnerCodeFailed

        try:
            return self(*args, **kwargs), ""
        except LearnerCodeFailed as err:
            return None, err.message
        except NotImplementedError:
            if not unwritten_ok:
                raise
            return None, f"NotImplementedError: {self.fn_name} is not written yet"


UNCHANGED = "leaves its inputs unchanged"


def expect_unchanged(t, changed: list, example: str, advice: str = "compute new tensors instead") -> bool:
    """One point for leaving the inputs alone (``changed``: the labels ``OnCopies`` collected)."""
    return t.expect(not changed, 1, UNCHANGED,
                    f"{' and '.join(changed)} in place (e.g. {example}): the caller's tensors must stay as they were, "
                    f"so {advice}")


def why_wrong(got, want, crash: str, label: str, atol: float = 1e-5) -> str:
    """Why an answer on the case ``label`` is wrong: a crash, a shape, nan/inf, or the first differing entry."""
    if crash:
        guess = "" if crash.startswith("NotImplementedError") else " (does it assume the example's sizes?)"
        return f"{label}: your code raised {crash}{guess}"
    if got is None:
        return f"{label}: expected numbers of shape {tuple(want.shape)}, got {describe(got)}"
    if got.shape != want.shape:
        return (f"{label}: expected shape {tuple(want.shape)}, got {tuple(got.shape)} (does it assume the example's "
                f"sizes?)")
    return f"{label}: {where_differs(got, want, atol)}"


# ----------------------------------------------------------------------------- switching code off


def _refusal_template(*args, **kwargs):
    raise RuntimeError("\0")


def _refusal(message: str):
    def refuse(*args, **kwargs):
        raise RuntimeError(message)
    return refuse


def _label(owner, name: str) -> str:
    if isinstance(owner, types.ModuleType):
        return f"{owner.__name__}.{name}"
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}.{name}"
    return f"{type(owner).__name__}.{name}"


@contextlib.contextmanager
def disabled(*targets, why: str = "write it yourself"):
    """While active, each target raises RuntimeError('<name> is switched off while this check runs: <why>');
    everything is restored on exit, also when the body raises.

    A target is a Python function (its code is swapped, so every name bound to it is off, the learner's
    aliases included) or an ``(owner, name)`` pair: the attribute ``name`` of a module, class or instance
    is replaced, then put back, or deleted again where it was inherited rather than the owner's own (use
    pairs for builtins such as ``torch.softmax`` and for methods that use ``super()``).
    """
    swapped, replaced = [], []
    try:
        for target in targets:
            if isinstance(target, tuple):
                owner, name = target
                own = getattr(owner, "__dict__", {})
                replaced.append((owner, name, name in own, own.get(name)))
                setattr(owner, name, _refusal(f"{_label(owner, name)} is switched off while this check runs: {why}"))
            elif isinstance(target, types.FunctionType) and not target.__closure__:
                message = f"{target.__module__}.{target.__qualname__} is switched off while this check runs: {why}"
                code = _refusal_template.__code__
                swapped.append((target, target.__code__))
                target.__code__ = code.replace(co_consts=tuple(message if c == "\0" else c for c in code.co_consts))
            else:
                raise TypeError(f"cannot switch off {target!r}: pass (owner, name) instead")
        yield
    finally:
        for fn, code in reversed(swapped):
            fn.__code__ = code
        for owner, name, had_own, value in reversed(replaced):
            if had_own:
                setattr(owner, name, value)
            else:
                delattr(owner, name)

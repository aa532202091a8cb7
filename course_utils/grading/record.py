"""A check's record: what the learner's code returned, as data that cannot carry code.

When a check runs, every call it makes into learner code (``Checker.call`` / ``Checker.raises``) is
written down: a fingerprint of the arguments, the result converted to plain data (tensors, NumPy
arrays and scalars, numbers, strings, lists, tuples, dicts; anything else becomes ``Opaque``), and
which arguments the learner's code changed in place. The instructor's grader loads the record with
``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers, and runs
the same check again in its own process, where each call returns the recorded value instead of
running learner code. Points are therefore computed by the grader's copy of the check, on inputs
the grader builds, from values the learner's code returned.

The notebook sees the same round-tripped values (``decode(encode(x))``) as the grader, so the
feedback a learner reads is the verdict the grader computes.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import torch

FORMAT = 1
MAX_NUMBERS = 20_000_000  # numbers in one encoded value; more is recorded as Opaque
MAX_STRING = 20_000  # characters kept of a returned string
MAX_DEPTH = 32
MAX_RECORD_BYTES = 256 * 2**20  # a record larger than this is not loaded

_TAG = "__course__"


class Opaque:
    """Stands in for a returned value that is not data (a module, a generator, ...): only its type's name
    crosses from the learner's process to the grader's."""

    def __init__(self, type_name: str, why: str = "not data"):
        self.type_name, self.why = str(type_name)[:200], str(why)[:200]

    def __repr__(self) -> str:
        return f"<{self.type_name} ({self.why})>"

    def __eq__(self, other) -> bool:
        return isinstance(other, Opaque) and (other.type_name, other.why) == (self.type_name, self.why)

    __hash__ = None


class LearnerCode:
    """In the grader, stands for a function or class the learner passed to ``check``: it cannot be run there,
    only handed to ``Checker.call``, which returns what the learner's code returned in the notebook."""

    def __init__(self, index: int):
        self.index = index

    def __call__(self, *args, **kwargs):
        raise RuntimeError("a check called learner code directly instead of through Checker.call: a bug in the check")

    def __repr__(self) -> str:
        return f"<learner code #{self.index}>"


class MalformedRecord(ValueError):
    """The record is not one this module wrote (or was changed)."""


# --------------------------------------------------------------------------- encoding


def _raw(array: np.ndarray) -> dict:
    return {_TAG: "ndarray", "bytes": torch.frombuffer(bytearray(array.tobytes()), dtype=torch.uint8),
            "dtype": array.dtype.str, "shape": list(array.shape)}


class _Budget:
    def __init__(self):
        self.numbers = 0

    def take(self, n: int) -> bool:
        self.numbers += n
        return self.numbers <= MAX_NUMBERS


def encode(x, _budget: _Budget | None = None, _depth: int = 0):
    """``x`` as plain data that ``torch.load(weights_only=True)`` reads back (see ``decode``)."""
    budget = _budget or _Budget()
    if _depth > MAX_DEPTH:
        return {_TAG: "opaque", "type": type(x).__name__, "why": "nested too deeply"}
    if x is None or isinstance(x, (bool, int, float)) and type(x) in (bool, int, float):
        return x
    if isinstance(x, (bool, int, float)):  # subclasses (IntEnum, ...): their plain value
        return bool(x) if isinstance(x, bool) else int(x) if isinstance(x, int) else float(x)
    if isinstance(x, str):
        return str(x)[:MAX_STRING]
    if isinstance(x, torch.Tensor):
        if x.device.type == "meta" or x.is_quantized:
            return {_TAG: "opaque", "type": "Tensor", "why": f"a {x.device.type} tensor has no values"}
        t = x.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        if not budget.take(t.numel()):
            return {_TAG: "opaque", "type": "Tensor", "why": "too large to record"}
        return {_TAG: "tensor", "value": t.cpu().as_subclass(torch.Tensor).clone().contiguous()}
    if isinstance(x, (np.ndarray, np.generic)):
        array = np.asarray(x)
        if array.dtype.kind not in "biufc":
            return {_TAG: "opaque", "type": type(x).__name__, "why": f"an array of {array.dtype}"}
        if not budget.take(array.size):
            return {_TAG: "opaque", "type": type(x).__name__, "why": "too large to record"}
        data = _raw(array)  # tobytes() is C-ordered for any layout; ascontiguousarray would make a 0-d array 1-d
        data[_TAG] = "ndarray" if isinstance(x, np.ndarray) else "npscalar"
        return data
    if isinstance(x, (list, tuple)):
        if not budget.take(len(x)):
            return {_TAG: "opaque", "type": type(x).__name__, "why": "too large to record"}
        items = [encode(v, budget, _depth + 1) for v in x]
        return items if isinstance(x, list) else {_TAG: "tuple", "items": items}
    if isinstance(x, dict):
        if not budget.take(len(x)):
            return {_TAG: "opaque", "type": type(x).__name__, "why": "too large to record"}
        return {_TAG: "dict", "items": [[encode(k, budget, _depth + 1), encode(v, budget, _depth + 1)]
                                         for k, v in x.items()]}
    if isinstance(x, (torch.dtype, torch.device, torch.Size)):
        return str(x) if not isinstance(x, torch.Size) else {_TAG: "tuple", "items": list(x)}
    return {_TAG: "opaque", "type": type(x).__name__, "why": "not data"}


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise MalformedRecord(what)


def decode(y, _depth: int = 0):
    """The value ``encode`` recorded; raises MalformedRecord on anything ``encode`` does not write."""
    _expect(_depth <= MAX_DEPTH + 1, "nested too deeply")
    if y is None or type(y) in (bool, int, float, str):
        return y
    if type(y) is list:
        return [decode(v, _depth + 1) for v in y]
    _expect(type(y) is dict and isinstance(y.get(_TAG), str), f"unexpected {type(y).__name__} in a record")
    kind = y[_TAG]
    if kind == "tensor":
        _expect(isinstance(y.get("value"), torch.Tensor), "a tensor entry without a tensor")
        return y["value"]
    if kind in ("ndarray", "npscalar"):
        raw, shape = y.get("bytes"), y.get("shape")
        _expect(isinstance(raw, torch.Tensor) and raw.dtype == torch.uint8 and raw.dim() == 1, "bad array bytes")
        _expect(isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape), "bad array shape")
        try:
            dtype = np.dtype(y.get("dtype"))
        except TypeError as err:
            raise MalformedRecord(f"bad array dtype: {err}") from None
        _expect(dtype.kind in "biufc", "an array of a non-numeric dtype")
        _expect(raw.numel() == dtype.itemsize * int(np.prod(shape, dtype=np.int64)), "array bytes and shape disagree")
        array = np.frombuffer(raw.numpy().tobytes(), dtype=dtype).reshape(shape).copy()
        return array if kind == "ndarray" else array[()]
    if kind == "tuple":
        _expect(type(y.get("items")) is list, "a tuple without items")
        return tuple(decode(v, _depth + 1) for v in y["items"])
    if kind == "dict":
        items = y.get("items")
        _expect(type(items) is list and all(type(kv) is list and len(kv) == 2 for kv in items), "a dict without pairs")
        out = {}
        for k, v in items:
            key = decode(k, _depth + 1)
            try:
                out[key] = decode(v, _depth + 1)
            except TypeError:
                raise MalformedRecord("a dict key that cannot be a key") from None
        return out
    if kind == "opaque":
        return Opaque(y.get("type", "object"), y.get("why", "not data"))
    raise MalformedRecord(f"unknown entry {kind!r}")


def round_trip(x):
    """What the grader will see of ``x``."""
    return decode(encode(x))


# --------------------------------------------------------------------------- fingerprints


def _feed(h, x, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        h.update(b"<deep>")
        return
    if isinstance(x, torch.nn.Module):
        h.update(f"module:{type(x).__qualname__}:{x.training}".encode())
        for name, value in x.state_dict().items():
            h.update(name.encode())
            _feed(h, value, depth + 1)
    elif isinstance(x, torch.Tensor):
        if x.device.type == "meta":
            h.update(f"meta:{x.dtype}:{tuple(x.shape)}".encode())
            return
        t = x.detach().cpu().contiguous()
        h.update(f"tensor:{t.dtype}:{tuple(t.shape)}:{t.requires_grad}:".encode())
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        h.update(t.numpy().tobytes() if t.numel() else b"")
    elif isinstance(x, (np.ndarray, np.generic)):
        a = np.ascontiguousarray(np.asarray(x))
        h.update(f"ndarray:{a.dtype.str}:{a.shape}:".encode())
        h.update(a.tobytes() if a.dtype.kind in "biufc" else repr(a.tolist()).encode())
    elif isinstance(x, (list, tuple)):
        h.update(f"{type(x).__name__}[{len(x)}]".encode())
        for v in x:
            _feed(h, v, depth + 1)
    elif isinstance(x, dict):
        h.update(f"dict[{len(x)}]".encode())
        for k, v in x.items():
            _feed(h, k, depth + 1)
            _feed(h, v, depth + 1)
    elif x is None or isinstance(x, (bool, int, float, str, bytes, torch.dtype, torch.device)):
        h.update(f"{type(x).__name__}:{x!r}".encode())
    elif callable(x):  # a check's closure, a course function, or the learner's code
        h.update(b"callable")
    else:
        h.update(f"object:{type(x).__name__}".encode())


def fingerprint(*values) -> str:
    """A digest of the arguments a check hands to learner code: the grader compares its own inputs with the
    notebook's, so a record made on other inputs is refused."""
    h = hashlib.sha256()
    for v in values:
        _feed(h, v)
    return h.hexdigest()[:32]


# --------------------------------------------------------------------------- in-place changes


def _mutable(x) -> bool:
    """Whether learner code could change ``x`` in place (a tuple counts when something inside it could)."""
    if isinstance(x, tuple):
        return any(_mutable(v) for v in x)
    return isinstance(x, (torch.Tensor, np.ndarray, list, dict, torch.nn.Module))


def _named(args: tuple, kwargs: dict) -> dict:
    return {**{str(i): v for i, v in enumerate(args)}, **{f"kw:{k}": v for k, v in kwargs.items()}}


def snapshot(args: tuple, kwargs: dict) -> dict:
    """Fingerprints of the arguments that learner code could change in place, by position or name."""
    return {k: fingerprint(v) for k, v in _named(args, kwargs).items() if _mutable(v)}


def _state(x):
    """What is recorded of a changed argument: its value (a module's state_dict, inside tuples too)."""
    if isinstance(x, torch.nn.Module):
        return dict(x.state_dict())
    if isinstance(x, tuple):
        return tuple(_state(v) for v in x)
    return x


def changes(args: tuple, kwargs: dict, before: dict) -> dict:
    """The arguments whose fingerprint changed during the call, encoded (modules as their state_dict)."""
    named = _named(args, kwargs)
    return {key: encode(_state(named[key])) for key, fp in before.items() if fingerprint(named[key]) != fp}


def _restore(target, value) -> None:
    """Make ``target`` (the grader's argument) equal ``value`` (what the learner's code left it as), in place."""
    if isinstance(target, torch.Tensor):
        _expect(isinstance(value, torch.Tensor), "a tensor argument changed into something else")
        if value.shape == target.shape and value.dtype == target.dtype:
            target.copy_(value)
        else:
            target.set_(value.clone())
    elif isinstance(target, np.ndarray):
        _expect(isinstance(value, np.ndarray) and value.shape == target.shape, "an array changed its shape")
        target[...] = value
    elif isinstance(target, list):
        _expect(isinstance(value, list), "a list argument changed into something else")
        target[:] = value
    elif isinstance(target, dict):
        _expect(isinstance(value, dict), "a dict argument changed into something else")
        target.clear()
        target.update(value)
    elif isinstance(target, tuple):
        _expect(isinstance(value, tuple) and len(value) == len(target), "a tuple argument changed its length")
        for inner, inner_value in zip(target, value):
            if _mutable(inner):
                _restore(inner, inner_value)
    elif isinstance(target, torch.nn.Module):
        _expect(isinstance(value, dict), "a module's state changed into something else")
        try:
            target.load_state_dict(value, strict=False)
        except RuntimeError as err:
            raise MalformedRecord(f"a module's recorded state does not fit: {err}") from None


def apply_changes(args: tuple, kwargs: dict, changed: dict) -> None:
    """In the grader: make the arguments what the learner's code left them as in the notebook."""
    named = _named(args, kwargs)
    for key, encoded in changed.items():
        _expect(key in named, f"a change to an argument {key!r} the call did not have")
        with torch.no_grad():
            _restore(named[key], decode(encoded))


# --------------------------------------------------------------------------- files


def dumps(record: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(record, buffer)
    return buffer.getvalue()


def loads(data: bytes) -> dict:
    """A record from bytes written by anybody: weights_only loading (tensors and plain containers only),
    then checked for the fields a record has."""
    if len(data) > MAX_RECORD_BYTES:
        raise MalformedRecord(f"the record is {len(data) / 2**20:.0f} MiB, more than {MAX_RECORD_BYTES // 2**20} MiB")
    try:
        record = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001  (any unreadable or hostile file)
        raise MalformedRecord(f"unreadable ({type(err).__name__})") from None
    _expect(type(record) is dict and record.get("format") == FORMAT, "not a check record")
    _expect(isinstance(record.get("check_id"), str), "a record without a check id")
    _expect(type(record.get("objects")) is list and type(record.get("calls")) is list, "a record without calls")
    return record

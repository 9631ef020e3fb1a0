"""Request validation as AWS does it on the server, against botocore's service models.

botocore checks required members, unknown members, types, unions and ``min`` on the
client; the server also checks ``max``, ``pattern`` and ``enum`` (aws-notes §1).
:func:`validate_request` checks all of them, so the campaign reader rejects a bad spec
before anything is sent, and the emulator answers a bad request as AWS would:

- ``pattern`` is a full match (AWS matches the whole value), with Java's ASCII-only
  ``\\d``, ``\\w`` and ``\\s`` and the ``regex`` module for ``\\p{L}``-style classes;
- :data:`EXTRA_CONSTRAINTS` adds the few limits AWS documents but the models omit;
- an ``integer`` member holds a signed 32-bit value and a ``long`` one 64 bits, on any
  side the model gives no ``min``/``max`` (AWS could not read more, nor the journal store it);
- every :class:`Issue` names the exact member: ``tags[1].key``, or a map entry as
  ``batchInferenceJobConfig.itemExplorationConfig.<key>``.

Each (service, operation) is compiled once into nested check closures, and each string
member remembers its recent valid values (campaigns repeat ARNs, model ids and paths), so
a create request validates in about 30 us, or 10 us when its values repeat. Nothing here
does I/O beyond loading the botocore model, once per service.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import botocore.session
import regex

#: Limits that AWS documents (or that follow from what the member means) but that the
#: botocore models leave out, by (service, operation), then member path (dots between
#: members, ``[]`` for list items, ``.*`` for map values and ``.<key>`` for map keys).
#: Values are model-style traits.
#:
#: - Personalize ``numResults`` is a plain integer in the model (aws-notes §3). It is the
#:   number of recommendations (or users, for segments) per input line; the console
#:   default is 25, and zero or a negative count is meaningless, so it must be >= 1.
#:   No maximum is added: neither the model, aws-notes nor the API reference gives one for
#:   batch jobs. (The 500 limit is GetRecommendations' real-time ``numResults``; the
#:   5 million users per segment is an output quota, not a request check.)
EXTRA_CONSTRAINTS: Mapping[tuple[str, str], Mapping[str, Mapping[str, int]]] = {
    ("personalize", "CreateBatchInferenceJob"): {"numResults": {"min": 1}},
    ("personalize", "CreateBatchSegmentJob"): {"numResults": {"min": 1}},
}

#: Model patterns that backtrack catastrophically on a non-matching value (this one
#: takes seconds for ``"a" + "-" * 25 + "!"``), with a linear equivalent. The
#: equivalent accepts the same values within the member's length bounds (proved by
#: exhaustive comparison on short strings); messages still quote the model's pattern.
_LINEAR_EQUIVALENTS: Mapping[str, str] = {
    r"[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}": r"[a-zA-Z0-9][a-zA-Z0-9+\-.]*",
}

#: Java's predefined classes are ASCII-only; Python's are Unicode.
_JAVA_CLASSES = {"d": "0-9", "w": "a-zA-Z0-9_", "s": r" \t\n\x0B\f\r"}

#: How many recent valid values each string member remembers, to skip their checks.
_PASSED_MAX = 256

Check = Callable[[Any, str, list["Issue"]], None]


@dataclass(frozen=True, slots=True)
class Issue:
    """One violated constraint of one member of a request."""

    path: str
    message: str
    value: object
    #: ``required``, ``unknown``, ``type``, ``min``, ``max``, ``pattern``, ``enum`` or ``union``.
    constraint: str
    #: The constraint in AWS's words (``Member must ...``); derived from ``message`` if empty.
    aws_detail: str = field(default="", compare=False, repr=False)

    def aws_message(self) -> str:
        """AWS wire style: ``Value 'x' at 'jobName' failed to satisfy constraint: Member must ...``."""
        detail = self.aws_detail or f"Member {self.message}"
        return f"Value {_aws_value(self.value)} at '{self.path}' failed to satisfy constraint: {detail}"


def validate_request(service: str, operation: str, params: Mapping[str, Any]) -> list[Issue]:
    """Every constraint of ``operation``'s input that ``params`` violates, in request order.

    ``service`` and ``operation`` are botocore names (``bedrock``,
    ``CreateModelInvocationJob``). Raises :class:`ValueError` for an unknown one.
    """
    issues: list[Issue] = []
    _validator(service, operation)(params, "", issues)
    return issues


def format_issues(issues: Sequence[Issue]) -> str:
    """AWS style: ``2 validation errors detected: <aws_message>; <aws_message>`` ("" if none)."""
    if not issues:
        return ""
    noun = "error" if len(issues) == 1 else "errors"
    return f"{len(issues)} validation {noun} detected: " + "; ".join(i.aws_message() for i in issues)


# -- compiling a model into checks -------------------------------------------------------------


@functools.cache
def _service_model(service: str) -> Any:
    try:
        return botocore.session.get_session().get_service_model(service)
    except Exception as exc:  # botocore's UnknownServiceError and friends
        raise ValueError(f"unknown service {service!r}") from exc


@functools.cache
def _validator(service: str, operation: str) -> Check:
    model = _service_model(service)
    if operation not in model.operation_names:
        raise ValueError(f"unknown operation {operation!r} of {service}")
    shape = model.operation_model(operation).input_shape
    if shape is None:
        return _no_members(operation)
    return _Compiler(EXTRA_CONSTRAINTS.get((service, operation), {})).compile(shape, "", operation)


class _Compiler:
    def __init__(self, extras: Mapping[str, Mapping[str, int]]) -> None:
        self._extras = extras
        self._stack: set[str] = set()

    def compile(self, shape: Any, key: str, label: str | None = None) -> Check:
        if shape.name in self._stack:  # a recursive shape: compile the next level on first use
            return self._lazy(shape, key)
        self._stack.add(shape.name)
        try:
            traits = {**shape.metadata, **self._extras.get(key, {})}
            kind = shape.type_name
            if kind == "structure":
                members = {n: self.compile(s, f"{key}.{n}" if key else n) for n, s in shape.members.items()}
                return _structure(
                    members, shape.required_members, bool(traits.get("union")), label or shape.name
                )
            if kind == "list":
                return _list(self.compile(shape.member, f"{key}[]"), traits)
            if kind == "map":
                return _map(
                    self.compile(shape.key, f"{key}.<key>"), self.compile(shape.value, f"{key}.*"), traits
                )
            if kind == "string":
                return _string(traits, shape.enum)
            if kind in _SCALARS:
                return _SCALARS[kind](traits)
            return _anything
        finally:
            self._stack.discard(shape.name)

    def _lazy(self, shape: Any, key: str) -> Check:
        compiled: list[Check] = []

        def check(value: Any, path: str, out: list[Issue]) -> None:
            if not compiled:
                compiled.append(self.compile(shape, key))
            compiled[0](value, path, out)

        return check


def _anything(value: Any, path: str, out: list[Issue]) -> None:
    """Shapes with no checks of their own (document types)."""


def _no_members(label: str) -> Check:
    return _structure({}, [], False, label)


def _structure(members: Mapping[str, Check], required: Sequence[str], union: bool, label: str) -> Check:
    names = list(members)
    required = tuple(required)
    union_msg = f"must set exactly one member ({', '.join(names)})"

    def check(value: Any, path: str, out: list[Issue]) -> None:
        if type(value) is not dict and not isinstance(value, Mapping):
            out.append(_type_issue(path, value, "an object"))
            return
        prefix = f"{path}." if path else ""
        for name, item in value.items():
            member = members.get(name)
            if member is None:
                out.append(_unknown(prefix, name, item, label, names))
            else:
                member(item, prefix + name, out)
        for name in required:
            if name not in value:
                out.append(Issue(prefix + name, "is required", None, "required", "Member must not be null"))
        if union:
            chosen = [name for name in value if name in members]
            if len(chosen) != 1:
                got = ", ".join(chosen) if chosen else "none"
                out.append(Issue(path, f"{union_msg}, got {got}", dict(value), "union"))

    return check


def _unknown(prefix: str, name: object, value: Any, label: str, names: list[str]) -> Issue:
    message = f"is not a member of {label}"
    close = difflib.get_close_matches(str(name), names, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return Issue(f"{prefix}{name}", message, value, "unknown")


def _list(item: Check, traits: Mapping[str, Any]) -> Check:
    size = _Range(traits, "must have", "item", "Member must have length")

    def check(value: Any, path: str, out: list[Issue]) -> None:
        if type(value) is not list and not isinstance(value, list | tuple):
            out.append(_type_issue(path, value, "a list"))
            return
        if not size.low <= len(value) <= size.high:
            out.append(size.issue(len(value), value, path))
        for index, element in enumerate(value):
            item(element, f"{path}[{index}]", out)

    return check


def _map(key: Check, item: Check, traits: Mapping[str, Any]) -> Check:
    size = _Range(traits, "must have", "entry", "Member must have length")

    def check(value: Any, path: str, out: list[Issue]) -> None:
        if type(value) is not dict and not isinstance(value, Mapping):
            out.append(_type_issue(path, value, "an object"))
            return
        if not size.low <= len(value) <= size.high:
            out.append(size.issue(len(value), value, path))
        for name, element in value.items():
            entry = f"{path}.{name}"
            key_issues: list[Issue] = []
            key(name, entry, key_issues)
            out.extend(
                Issue(i.path, f"key {i.message}", i.value, i.constraint, i.aws_detail) for i in key_issues
            )
            item(element, entry, out)

    return check


def _string(traits: Mapping[str, Any], enum: Sequence[str]) -> Check:
    length = _Range(traits, "must be", "character", "Member must have length")
    low, high = length.low, length.high
    pattern: str | None = traits.get("pattern")
    matches = _pattern(pattern).fullmatch if pattern is not None else None
    pattern_msg = f"must match the pattern {pattern}"
    pattern_aws = f"Member must satisfy regular expression pattern: {pattern}"
    allowed = frozenset(enum)
    enum_msg = f"must be one of: {', '.join(enum)}"
    enum_aws = f"Member must satisfy enum value set: [{', '.join(enum)}]"

    passed: dict[str, None] = {}  # recent valid values: campaigns repeat ARNs, models, paths

    def check(value: Any, path: str, out: list[Issue]) -> None:
        if not isinstance(value, str):
            out.append(_type_issue(path, value, "a string"))
            return
        if value in passed:
            return
        found = len(out)
        if not low <= len(value) <= high:
            out.append(length.issue(len(value), value, path))
        if matches is not None and matches(value) is None:
            out.append(Issue(path, pattern_msg, value, "pattern", pattern_aws))
        if allowed and value not in allowed:
            out.append(Issue(path, enum_msg, value, "enum", enum_aws))
        if len(out) == found:
            if len(passed) >= _PASSED_MAX:
                passed.clear()
            passed[value] = None

    return check


def _number(
    expected: str, accepts: Callable[[Any], bool], bits: int | None = None
) -> Callable[[Mapping[str, Any]], Check]:
    """A check of a number member; ``bits`` bounds an integer type where the model does not."""

    def build(traits: Mapping[str, Any]) -> Check:
        bounds = _Range(traits, "must be", None, "Member must have value")
        if bits is not None:
            bounds.fit(bits)

        def check(value: Any, path: str, out: list[Issue]) -> None:
            if not accepts(value):
                out.append(_type_issue(path, value, expected))
            elif not bounds.low <= value <= bounds.high:
                out.append(bounds.issue(value, value, path))

        return check

    return build


def _simple(expected: str, accepts: Callable[[Any], bool]) -> Callable[[Mapping[str, Any]], Check]:
    def build(traits: Mapping[str, Any]) -> Check:
        def check(value: Any, path: str, out: list[Issue]) -> None:
            if not accepts(value):
                out.append(_type_issue(path, value, expected))

        return check

    return build


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _is_timestamp(value: Any) -> bool:
    if isinstance(value, dt.datetime) or _is_number(value):
        return True
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    return False


#: Smithy's (and so botocore's) ``integer`` is a signed 32-bit value and ``long`` a signed
#: 64-bit one: AWS cannot read a larger number into the member, and the journal stores
#: requests with orjson, which refuses integers beyond 64 bits. Neither is a model trait.
_INTEGER_BITS: Mapping[str, int] = {"integer": 32, "long": 64}

_SCALARS: Mapping[str, Callable[[Mapping[str, Any]], Check]] = {
    "integer": _number("an integer", _is_int, _INTEGER_BITS["integer"]),
    "long": _number("an integer", _is_int, _INTEGER_BITS["long"]),
    "float": _number("a number", _is_number),
    "double": _number("a number", _is_number),
    "boolean": _simple("a boolean", lambda v: isinstance(v, bool)),
    "timestamp": _simple("a timestamp (datetime, epoch seconds or ISO 8601 string)", _is_timestamp),
    "blob": _simple("binary data (bytes or a string)", lambda v: isinstance(v, bytes | bytearray | str)),
}


class _Range:
    """The ``min``/``max`` traits of a shape, applied to a measure: a length, a count or the value.

    Lengths say ``must be at most 63 characters``; values with both bounds say
    ``must be between 24 and 168``. Checks test ``low <= measure <= high`` inline.
    """

    __slots__ = ("high", "high_aws", "high_msg", "low", "low_aws", "low_msg")

    def __init__(self, traits: Mapping[str, Any], verb: str, unit: str | None, aws: str) -> None:
        low, high = traits.get("min"), traits.get("max")
        self.low: float = -math.inf if low is None else low
        self.high: float = math.inf if high is None else high
        if unit is None and low is not None and high is not None:
            self.low_msg = self.high_msg = f"{verb} between {_num(low)} and {_num(high)}"
        else:
            self.low_msg = f"{verb} at least {_amount(low, unit)}"
            self.high_msg = f"{verb} at most {_amount(high, unit)}"
        self.low_aws = f"{aws} greater than or equal to {_num(low)}"
        self.high_aws = f"{aws} less than or equal to {_num(high)}"

    def fit(self, bits: int) -> None:
        """Bound the values to a signed ``bits``-bit integer on any side the model leaves open."""
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if self.low < low:
            self.low = low
            self.low_msg = f"must be at least {low} (a {bits}-bit integer)"
            self.low_aws = f"Member must have value greater than or equal to {low}"
        if self.high > high:
            self.high = high
            self.high_msg = f"must be at most {high} (a {bits}-bit integer)"
            self.high_aws = f"Member must have value less than or equal to {high}"

    def issue(self, measure: Any, value: Any, path: str) -> Issue:
        if measure < self.low:
            return Issue(path, self.low_msg, value, "min", self.low_aws)
        return Issue(path, self.high_msg, value, "max", self.high_aws)


@functools.cache
def _pattern(pattern: str) -> Any:
    """The compiled form of a model (Java) pattern; callers use ``fullmatch``."""
    return regex.compile(_LINEAR_EQUIVALENTS.get(pattern) or _java_to_python(pattern))


def _java_to_python(pattern: str) -> str:
    r"""Rewrite Java's ASCII-only ``\d \w \s`` (and ``\D \W \S`` outside classes) for ``regex``."""
    out: list[str] = []
    in_class = False
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            ascii_class = _JAVA_CLASSES.get(escaped.lower())
            if ascii_class is None or (in_class and escaped.isupper()):
                out.append(char + escaped)
            elif in_class:
                out.append(ascii_class)
            else:
                out.append(f"[{'^' if escaped.isupper() else ''}{ascii_class}]")
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
    return "".join(out)


# -- messages --------------------------------------------------------------------------------------


def _type_issue(path: str, value: Any, expected: str) -> Issue:
    return Issue(path, f"must be {expected}, not {json_type(value)}", value, "type")


def json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for messages (``null``, ``array``...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _num(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _amount(count: Any, unit: str | None) -> str:
    if unit is None:
        return _num(count)
    if count == 1:
        return f"1 {unit}"
    return f"{_num(count)} {unit[:-1] + 'ies' if unit.endswith('y') else unit + 's'}"


def _aws_value(value: object, limit: int = 200) -> str:
    """A value as AWS quotes it: ``'text'``, ``24``, ``null``; long values are cut short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value) if isinstance(value, int | float | Decimal) else f"'{value}'"
    return text if len(text) <= limit else text[: limit - 4] + "...'"

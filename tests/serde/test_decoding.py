"""durably.serde.decoding: reading never imports or runs what a payload names, and corrupt
payloads raise SerializationError."""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest

from durably import serde
from durably.errors import SerializationError
from tests.serde.values import Point

VALUES = Point.__module__  # the module the test classes live in


# --------------------------------------------------------------------------- no code from payloads


def _tagged(kind: str, ref: str, v: Any) -> bytes:
    return json.dumps({serde.TAG: kind, "c": ref, "v": v}).encode()


def test_decoding_never_imports_a_module(capsys: pytest.CaptureFixture[str]) -> None:
    if "this" in sys.modules:
        pytest.skip("the 'this' module was already imported by something else")
    # Importing "this" prints the Zen of Python: a visible side effect if it were run.
    for kind in ("dataclass", "pydantic"):
        assert serde.decode(_tagged(kind, "this:Anything", {"a": 1})) == {"a": 1}
    assert serde.decode(_tagged("enum", "this:Anything", 3)) == 3
    assert "this" not in sys.modules
    assert capsys.readouterr().out == ""

    fake = "durably_no_such_module_for_tests"
    assert serde.decode(_tagged("dataclass", f"{fake}:X", {"b": [1]})) == {"b": [1]}
    assert fake not in sys.modules


def test_decoding_never_triggers_module_getattr(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    mod = types.ModuleType("durably_lazy_module_for_tests")

    def module_getattr(name: str) -> Any:
        calls.append(name)
        raise AttributeError(name)

    mod.__getattr__ = module_getattr  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    assert getattr(mod, "probe", None) is None and calls == ["probe"]  # the hook is live
    calls.clear()
    assert serde.decode(_tagged("dataclass", f"{mod.__name__}:Lazy", {"a": 1})) == {"a": 1}
    assert calls == []


@pytest.mark.parametrize(
    ("kind", "ref", "value"),
    [
        ("dataclass", "os:system", {"command": "echo hacked"}),
        ("pydantic", "builtins:dict", {"a": 1}),
        ("enum", "builtins:int", "12"),
        ("dataclass", f"{VALUES}:Color", {"a": 1}),  # an enum is not a dataclass
        ("pydantic", f"{VALUES}:Point", {"x": 1, "y": 2}),  # a dataclass is not a model
        ("enum", f"{VALUES}:User", 1),
        ("dataclass", "not-a-ref", {"a": 1}),
        ("dataclass", 12, {"a": 1}),
    ],
)
def test_names_that_do_not_resolve_to_the_tagged_kind_stay_plain_data(
    kind: str, ref: Any, value: Any
) -> None:
    assert serde.decode(_tagged(kind, ref, value)) == value


def test_class_changed_since_stored_raises() -> None:
    data = _tagged("dataclass", f"{VALUES}:Point", {"x": 1})  # y is required now
    with pytest.raises(SerializationError) as info:
        serde.decode(data, where="the result of step 's'")
    msg = str(info.value)
    assert "the result of step 's'" in msg
    assert f"{VALUES}:Point" in msg
    data = _tagged("enum", f"{VALUES}:Color", "green")
    with pytest.raises(SerializationError, match="Color"):
        serde.decode(data)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe\x00",
        b'{"a": 1',
        b'"unterminated',
        b"[1, 2] trailing",
        b"not json",
        b"NaN-ish",
        b'{"$t": "bytes", "v": "@@@not base64"}',
        b'{"$t": "datetime", "v": "yesterday"}',
        b'{"$t": "timedelta", "v": 5}',
        b'{"$t": "decimal", "v": "one"}',
        b'{"$t": "uuid", "v": "xyz"}',
        b'{"$t": "dict", "v": [[[1], 2]]}',
        b'{"$t": "float", "v": "huge"}',
        b'{"$t": "dataclass", "c": "x:Y", "v": [1]}',
        b'{"$t": "set"}',
        b'{"$t": null}',
    ],
)
def test_corrupt_payloads_raise_serialization_error(data: bytes) -> None:
    with pytest.raises(SerializationError) as info:
        serde.decode(data, where="the result of step 'z'")
    assert "the result of step 'z'" in str(info.value)


def test_unknown_tag_says_so() -> None:
    with pytest.raises(SerializationError, match="unknown tag 'hologram'"):
        serde.decode(b'{"$t":"hologram","v":1}')

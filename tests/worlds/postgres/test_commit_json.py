"""The JSON text a Postgres commit sends: orjson's, read back as the standard library
reads it, with the standard library's for what orjson refuses."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from durably.worlds.postgres.store import _dumps

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)  # -0.0 stays -0.0
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(_values)
@example({"now": 1796325603.0778816, "e": [["run_1", 42, "step_completed", 19, None]]})
@example([2**64, -(2**63) - 1, "\x00\u2028é💥"])
def test_a_commit_document_reads_back_as_written(value: Any) -> None:
    text = _dumps(value)
    assert isinstance(text, str)
    assert _same(json.loads(text), value)


def test_the_text_is_the_standard_librarys_for_a_step_commit() -> None:
    doc = {
        "now": 1796325603.0778816,
        "u": [["run_01", 88327, "running", 1796325603.0132542, None, 43, None, False, {}]],
        "e": [["run_01", 42, "step_completed", 19, '{"attempt":1}', 1796325603.0778134]],
    }
    assert _dumps(doc) == json.dumps(doc, separators=(",", ":"), ensure_ascii=False)

"""The chat reader's reconciliation of a retried step's chunks (durably.ai.chat._Reconcile),
on hand-made chunk sequences: (call, attempt, chunk) as the stream stores them."""

from __future__ import annotations

from typing import Any

from durably.ai.chat import _Reconcile

from .chat_support import texts

Chunk = tuple[int | None, int, dict[str, Any]]


def text(call: int, attempt: int, tid: str, *words: str, end: bool = True) -> list[Chunk]:
    out: list[Chunk] = [(call, attempt, {"type": "start-step"})]
    out.append((call, attempt, {"type": "text-start", "id": tid}))
    out += [(call, attempt, {"type": "text-delta", "id": tid, "delta": w}) for w in words]
    if end:
        out.append((call, attempt, {"type": "text-end", "id": tid}))
        out.append((call, attempt, {"type": "finish-step"}))
    return out


def run(chunks: list[Chunk]) -> list[dict[str, Any]]:
    r = _Reconcile()
    return [e for call, attempt, c in chunks for e in r.feed(call, attempt, c)]


def test_chunks_of_one_attempt_pass_unchanged() -> None:
    chunks = [(None, 0, {"type": "start"}), *text(1, 1, "s:0", "a ", "b")]
    assert run(chunks) == [c for _, _, c in chunks]


def test_a_retry_repeating_the_text_sends_only_what_follows() -> None:
    events = run([*text(1, 1, "s:0", "a ", "b ", end=False), *text(1, 2, "s:0", "a ", "b ", "c")])
    assert texts(events) == ["a b c"]
    assert [e["type"] for e in events].count("start-step") == 1
    assert [e["type"] for e in events].count("text-start") == 1


def test_a_retry_that_says_less_discards_the_longer_part() -> None:
    events = run([*text(1, 1, "s:0", "a ", "b ", end=False), *text(1, 2, "s:0", "a")])
    assert texts(events) == ["a"]


def test_a_third_attempt_reconciles_with_what_the_second_streamed() -> None:
    events = run(
        [
            *text(1, 1, "s:0", "x ", end=False),
            *text(1, 2, "s:0", "y ", "z ", end=False),
            *text(1, 3, "s:0", "y ", "z ", "w"),
        ]
    )
    assert texts(events) == ["y z w"]


def test_a_lost_attempts_late_chunks_are_dropped() -> None:
    events = run(
        [
            *text(1, 1, "s:0", "a ", end=False),
            *text(1, 2, "s:0", "a ", "b"),
            (1, 1, {"type": "text-delta", "id": "s:0", "delta": "late"}),
        ]
    )
    assert texts(events) == ["a b"]


def test_other_steps_and_body_chunks_are_untouched_by_a_retry() -> None:
    events = run(
        [
            *text(1, 1, "s1:0", "a ", end=False),
            *text(1, 2, "s1:0", "a ", "b"),
            (None, 0, {"type": "tool-output-available", "toolCallId": "t", "output": 1}),
            *text(3, 1, "s3:0", "c"),
            (None, 0, {"type": "finish"}),
        ]
    )
    assert texts(events) == ["a b", "c"]
    assert [e["type"] for e in events].count("start-step") == 2
    assert events[-1] == {"type": "finish"}


def test_the_same_chunks_always_give_the_same_events() -> None:
    chunks = [*text(1, 1, "s:0", "x ", end=False), *text(1, 2, "s:0", "y")]
    assert run(chunks) == run(chunks)
    # ...and any prefix gives a prefix (what makes resuming by index exact).
    full = run(chunks)
    for n in range(len(chunks)):
        part = run(chunks[:n])
        assert full[: len(part)] == part

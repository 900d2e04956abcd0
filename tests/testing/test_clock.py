"""durably.clock: the wall clock never skips; a virtual clock only moves forward."""

from __future__ import annotations

import time

import pytest

from durably.clock import VirtualClock, WallClock
from durably.errors import ConfigurationError


def test_the_wall_clock_is_the_real_time_and_never_skips() -> None:
    clock = WallClock()
    assert abs(clock.now() - time.time()) < 5
    assert clock.due_by() is None and not clock.skipping
    assert clock.skip_to(time.time() + 3600) is False


def test_a_virtual_clock_skips_forward_only_when_not_paused() -> None:
    clock = VirtualClock()
    moves: list[float] = []
    clock.on_change(lambda: moves.append(clock.offset))
    assert clock.skipping
    assert clock.skip_to(time.time() - 10) is False  # the past: no move
    assert clock.skip_to(clock.now() + 3600) is True
    assert 3590 < clock.offset <= 3600 and len(moves) == 1
    with clock.paused():
        with clock.paused():
            assert not clock.skipping
        assert not clock.skipping
        assert clock.skip_to(clock.now() + 60) is False
        clock.advance("1d")  # by hand, paused or not
    assert clock.skipping
    assert clock.offset >= 86_400 + 3590
    assert (clock.due_by() or 0) >= time.time() + 86_400


def test_a_virtual_clock_does_not_go_back() -> None:
    with pytest.raises(ConfigurationError):
        VirtualClock().advance(-5)

"""Tools for testing workflows and worlds.

* :func:`time_skipping`: durable timers of a registry fire as soon as it is idle, and
  bodies read the virtual time: a 30-day workflow finishes in milliseconds.
* :func:`replay`: replay an exported history (``durably inspect events RUN --export
  FILE``) against the current code, without running any step: is a deploy compatible with
  the runs in flight?
* :func:`resume_when_waiting` and :func:`read_stream`: the outside world's part in a test.
* ``durably.testing.pytest_plugin`` (loaded by pytest when durably is installed): fixtures
  for all of these, and ``--world URL`` for the world conformance suite,
  ``pytest --pyargs durably.testing.conformance --world URL``.

See docs/testing.md.
"""

from __future__ import annotations

from ..clock import VirtualClock
from .helpers import read_stream, resume_when_waiting
from .history import History, load_history
from .replay import Divergence, ReplayReport, check_history, replay
from .timeskip import time_skipping

__all__ = [
    "Divergence",
    "History",
    "ReplayReport",
    "VirtualClock",
    "check_history",
    "load_history",
    "read_stream",
    "replay",
    "resume_when_waiting",
    "time_skipping",
]

"""The world conformance suite that durably ships (durably.testing.conformance), over the
project's own worlds: memory, SQLite and PostgreSQL (the ``world`` fixture of
tests/worlds/conftest.py). A third-party world runs the very same tests with
``pytest --pyargs durably.testing.conformance --world URL``
(tests/testing/test_conformance_command.py checks that command).

The suite's helpers (``ev``, ``claim``, ``write``, ``run_with_calls``, ``NS``, ``A``, ...) come
along with the star imports, so the project's other conformance modules here may keep
importing them from ``tests.worlds.test_conformance``."""

from durably.testing.conformance.test_conformance import *  # noqa: F403
from durably.testing.conformance.test_due_by_conformance import *  # noqa: F403
from durably.testing.conformance.test_flow_conformance import *  # noqa: F403
from durably.testing.conformance.test_leases_conformance import *  # noqa: F403
from durably.testing.conformance.test_locks_conformance import *  # noqa: F403
from durably.testing.conformance.test_prune_conformance import *  # noqa: F403
from durably.testing.conformance.test_queue_conformance import *  # noqa: F403
from durably.testing.conformance.test_stream_attempts_conformance import *  # noqa: F403
from durably.testing.conformance.test_stream_closer_conformance import *  # noqa: F403
from durably.testing.conformance.test_waiting_conformance import *  # noqa: F403

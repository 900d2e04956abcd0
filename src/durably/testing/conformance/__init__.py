"""The world conformance suite: what every world must do. A world passes it or it is not
a world.

Run it against a world of your own (installed, registered under the entry point group
``durably.worlds`` with its URL scheme)::

    pip install durably pytest pytest-asyncio
    pytest --pyargs durably.testing.conformance --world "myworld://host/db?ns={unique}"

Each test needs an empty world: in the URL, ``{tmp}`` becomes a fresh temporary folder
and ``{unique}`` a fresh name (a schema, a database, a key prefix) for every test. The
suite drives only the public ``World`` protocol (:mod:`durably.worlds.base`) and the event
vocabulary (:mod:`durably.events`). Lease expiry is tested with real time and short
leases. durably's own worlds run the same tests (``tests/worlds/test_conformance.py``
in its repository), over ``memory://``, SQLite and PostgreSQL.

The modules:

* ``test_conformance``: creating runs, the log, conditional commands, ends, listing;
* ``test_queue_conformance``: steps, timers, the task queue, leases and claims;
* ``test_waiting_conformance``: waiting for a run, its end and for work;
* ``test_due_by_conformance``: ``claim(due_by=T)`` (time skipping);
* ``test_stream_attempts_conformance``, ``test_stream_closer_conformance``: streams
  (which step attempt wrote or closed a chunk, reopening by a retry, committed readers);
* ``test_leases_conformance``: ``list_leases`` and ``count_runs``;
* ``test_prune_conformance``: ``prune_runs`` and ``RunWrite.turn``;
* ``test_locks_conformance``: locks and concurrency limits, two world objects racing;
* ``test_flow_conformance``: rate limits and schedules;
* ``fixtures``: the ``world`` fixture (the world opened for a test and closed after it),
  on the ``world_url`` fixture that ``--world`` gives (``conftest.py``), and
  ``two_worlds`` (two world objects on one store: opening a URL twice must reach the
  same store; a bare ``memory://`` gets a name).
"""

"""The suite's fixtures when it runs as ``pytest --pyargs durably.testing.conformance
--world URL`` (the ``--world`` option itself comes from durably's pytest plugin)."""

from .fixtures import two_worlds, world, world_url

__all__ = ["two_worlds", "world", "world_url"]

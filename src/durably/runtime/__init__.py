"""The replay runtime: the workflow loop, run instances, call shapes, failures."""

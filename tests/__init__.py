"""The test suite (a package, so that tests/http does not shadow the standard library's http)."""

"""Deliberately broken engines: each carries one bug that exactly one conformance property
must catch (tests/integration/test_suite_catches_bugs.py). A property that cannot catch its own bug
does not count."""

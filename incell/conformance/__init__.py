"""The conformance suites' production code: comparisons with named sides and stated tolerances,
the references, the shared inputs and the property plumbing. The suites themselves
(tests/conformance/test_*.py and their conftest) import it; it never imports them."""

"""The reports: one module per page (compatibility, conformance, engines, serving, quantization,
throughput, each with its sections and plots), the records a run leaves taken into
reports/records/ (records.py), the pages rendered from those records alone (render.py, publish.py:
a page is a pure function of its records), the figures quoted in README.md and docs/ (includes.py),
the history, the release watch, the audit that holds every figure to its inputs (audit.py) and
the static site (site*.py)."""

"""What runs inside a cell's venv, under the cell's own interpreter and packages: the worker
that climbs import, load, conformance and api in one process (worker.py), the import and load
probes (probe.py). It hands back only core.results' typed records (write_rung), and imports
only core, fixtures, engines and bench, never the driver (compat/) or the reports."""

"""What runs inside a cell's venv, under the cell's own interpreter and packages: the worker
that climbs import, load, conformance and api in one process (worker.py), the import and load
probes (probe.py), the conformance suites (conformance/), the bench rung's throughput suite and
its record (throughput/: run.py), a server's load sweep (serve_bench.py), llama.cpp's own tools
beside our figures (referee.py), the prompts every timed call sends fresh (prompts.py), and a
server someone else runs, checked where it stands (endpoint.py, endpoint_preflight.py, scrub.py).
It hands back only core.results' typed records (write_rung), and imports only core, fixtures,
engines and bench, never the driver (compat/) or the reports."""

import os as _os
import sys as _sys

HARNESS_ENV = "INFERMATRIX_HARNESS"
"""A folder of the harness's own packages (compat/harness.py), appended to sys.path here, after
the environment's site-packages, so that nothing of ours shadows what the environment has."""

if _os.environ.get(HARNESS_ENV) and _os.environ[HARNESS_ENV] not in _sys.path:
    _sys.path.append(_os.environ[HARNESS_ENV])

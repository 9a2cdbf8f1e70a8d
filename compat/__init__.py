"""The compatibility ladder: the matrix (matrix.py, matrix.toml, specs.py), one module per rung
(rungs/), the driver that climbs one cell (ladder.py) and many (drive.py: the default run and
its timeline, resolve-only, the servers' load sweeps, the real-shape runs), what a session
measures (plan.py), when an earlier result stands in (reuse.py), the verdict pages while a run
goes (live.py), bisection (bisect.py), published releases (index.py), the CI job matrix (ci.py),
llama.cpp's own tools built once (llama_tools.py), a cell's options and environment (cell.py),
an existing environment as a cell (here.py, gpucheck.py) and the sessions' options (cli.py)."""

"""The compatibility ladder: the matrix, one module per rung (rungs/), the driver that climbs one
cell (ladder.py), the runs of many cells (drive.py), bisection and the sessions' options."""

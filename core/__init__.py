"""The kernel: errors, result records and their typed rung details, signatures, subprocess tools.

Stdlib only, and it imports nothing else of the project: every other package stands on it,
and it runs in every interpreter (the driver's, each cell's, the fixture builder's).
"""

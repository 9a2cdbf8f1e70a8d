"""A server cell's own adapter pointed at a server already running (tests/unit/test_endpoint.py):
the cell's requests (its fields beyond OpenAI's), capabilities and declared deviations, with
nothing started; the endpoint comes from the environment, as engines/endpoint.py reads it."""

from engines.endpoint import _AtEndpoint
from engines.transformers_server import TransformersServerGenerator


class TransformersServerAtEndpoint(_AtEndpoint, TransformersServerGenerator):
    """`transformers serve`'s cell adapter, at INFERMATRIX_ENDPOINT_URL."""

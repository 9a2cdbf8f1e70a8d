"""The conformance suites, run inside every cell by its worker (incell/worker.py): one suite per
kind (test_generation.py, test_embedding.py) and the HTTP API surface (test_api.py), with their
pytest hooks (conftest.py, pytest.ini), and what they are made of: comparisons with named sides
and stated tolerances (compare.py), the references (reference.py, parity.py), the shared inputs
(inputs.py), the LoRA check (lora.py) and the property plumbing (plumbing.py). The helpers never
import the suites."""

"""infinity-emb's server (`infinity_emb v2`), embeddings over HTTP.

Its routes have no /v1 prefix unless started with one (`--url-prefix`); it is run as users get
it, so the adapter talks to /embeddings and the API-surface suite reports the missing /v1.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import ClassVar

import infinity_emb.infinity_server  # noqa: F401  (the import rung imports the server)

from engines.base import Capabilities, Deviation
from engines.http.client import ServerEmbedder


class InfinityServerEmbedder(ServerEmbedder):
    """`infinity_emb v2 --model-id <MiniLM> --engine torch --device cpu`."""

    server_name = "infinity_emb v2"
    in_process = "infinity_emb"
    api_prefix = ""
    capabilities = Capabilities(batching=True)
    parity_tolerance = 1e-4  # as the in-process adapter: BetterTransformer's fused kernels
    deviations: ClassVar[dict[str, Deviation]] = {
        "models_endpoint": Deviation("its routes live under --url-prefix, empty by default: "
                                     "/models, /embeddings (no /v1); run as installed",
                                     "https://github.com/michaelfeil/infinity"),
    }

    def _command(self, model_dir: Path, port: int, device: str, dtype: str) -> list[str]:
        cli = shutil.which("infinity_emb", path=str(Path(sys.executable).parent)) or "infinity_emb"
        return [cli, "v2", "--model-id", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
                "--engine", "torch", "--device", device, "--dtype", dtype, "--no-model-warmup"]

    def _server_env(self) -> dict[str, str]:
        return {**os.environ, "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"}

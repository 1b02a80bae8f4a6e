"""`ocpplab.asgi:app`, for uvicorn worker processes: settings come from the environment."""

from __future__ import annotations

import logging
import os

from ocpplab.app import create_app
from ocpplab.cli import RefusedHandshakeNoise, collect_garbage_rarely
from ocpplab.config import Settings

# Each worker process gets what `ocpplab` gives its one process (see cli.serve).
collect_garbage_rarely()
logging.getLogger("uvicorn.error").addFilter(RefusedHandshakeNoise())
app = create_app(Settings.from_env(os.environ))

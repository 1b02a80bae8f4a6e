"""`ocpplab.asgi:app`, for uvicorn worker processes: settings come from the environment."""

from __future__ import annotations

import os

from ocpplab.app import create_app
from ocpplab.config import Settings
from ocpplab.tools.cli import prepare_server_process

prepare_server_process()
app = create_app(Settings.from_env(os.environ))

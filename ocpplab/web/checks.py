"""Guided charger checks: the API and the page's Checks panel (being built)."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []

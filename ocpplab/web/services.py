"""What the app's views share: built once by `create_app`, reached via `app.state.services`."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from typing import Any

from starlette.requests import HTTPConnection
from starlette.templating import Jinja2Templates

from ocpplab.broker.base import Broker
from ocpplab.config import Settings
from ocpplab.core.clock import Clock
from ocpplab.core.dialect import Dialect
from ocpplab.core.messages import Event
from ocpplab.server.central import CentralSystem
from ocpplab.server.gateway import Gateway

# kind of event -> function(page_socket, event) -> HTML fragments for a panel of the page
ExtraRenderer = Callable[[Any, Event], str]


@dataclasses.dataclass
class Services:
    settings: Settings
    broker: Broker
    clock: Clock
    gateway: Gateway
    central: CentralSystem
    templates: Jinja2Templates
    dialect: Dialect  # the OCPP version the dashboard's forms and the API speak
    extra_renderers: dict[str, ExtraRenderer] = dataclasses.field(default_factory=dict)
    # Open page live sockets by client address (`OCPPLAB_MAX_PAGES`).
    open_pages: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    uploads: int = 0  # uploaded recordings being read (web/recordings.py, MAX_UPLOADS)

    def state_template(self, dialect_name: str | None) -> str:
        """The state panel's template for a charger speaking the dialect of that name."""
        for dialect in self.gateway.dialects:
            if dialect.name == dialect_name:
                return dialect.state_template
        return self.dialect.state_template


def services_of(connection: HTTPConnection) -> Services:
    """The app's `Services`, from any request or websocket it serves."""
    services: Services = connection.app.state.services
    return services

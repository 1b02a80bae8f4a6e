"""ocpplab: a self-hostable OCPP-J 1.6 central system for experimenting with real chargers."""

from __future__ import annotations

__version__ = "0.1.0"

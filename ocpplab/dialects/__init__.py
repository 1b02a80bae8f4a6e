"""The OCPP versions ocpplab speaks, each a `core.dialect.Dialect`: OCPP 1.6 now.

`DIALECTS` is what `create_app` speaks unless told otherwise, in order of preference (a
charger that offers none of their subprotocols is spoken to in the first). Adding OCPP
2.0.1 is a `dialects/ocpp201/` package and an entry here.
"""

from __future__ import annotations

from ocpplab.core.dialect import Dialect
from ocpplab.dialects.ocpp16 import OCPP16

DIALECTS: tuple[Dialect, ...] = (OCPP16,)

__all__ = ["DIALECTS", "OCPP16"]

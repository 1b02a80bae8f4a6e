"""What ocpplab's server processes log: nothing about chargers at the default level.

On a lab open to strangers a charger's identity is the only key to its page, and the logs
of a hosted lab are read by more people than its owner. uvicorn logs every websocket
handshake with its path (`'127.0.0.1:5311 - "WebSocket /ocpp/CP-1" [accepted]'`, or
`... 403` on a refusal) at `info`; its access log (off in ocpplab, but on for anyone who
runs `uvicorn ocpplab.asgi:app` by hand) logs every URL. `RedactedPaths` keeps those lines
and replaces the path by the shape of its route, so that they still tell what happened.
"""

from __future__ import annotations

import logging
import sys

WEBSOCKET_LINE = '%s - "WebSocket %s"'
ACCESS_LINE = '%s - "%s %s HTTP/%s" %d'
# Paths that carry no identity, shown as they are.
PLAIN_PATHS = frozenset({"/", "/ocpp", "/healthz", "/start", "/simulate", "/favicon.ico"})


def redacted_path(path: str) -> str:
    """`path` (and its query) as the shape of its route, without the identity in it.

    An unknown path may be a charger's URL typed wrong (`/ocp/CP-1`), so it is not shown.
    """
    path = path.partition("?")[0]
    if path in PLAIN_PATHS or path.startswith("/static/"):
        return path
    if path.startswith("/ocpp/"):
        return "/ocpp/{identity}"
    if path.startswith("/chargers/"):
        return "/chargers/{identity}" + ("/live" if path.endswith("/live") else "/…")
    if path.startswith("/api/chargers/"):
        return "/api/chargers/{identity}/…"
    return "/…"


class RedactedPaths(logging.Filter):
    """Replace the path in uvicorn's websocket and access lines by `redacted_path`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or not isinstance(record.msg, str):
            return True
        if record.msg.startswith(WEBSOCKET_LINE) and len(args) >= 2:
            record.args = (args[0], redacted_path(str(args[1])), *args[2:])
        elif record.msg == ACCESS_LINE and len(args) == 5:
            record.args = (*args[:2], redacted_path(str(args[2])), *args[3:])
        return True


class RefusedHandshakeNoise(logging.Filter):
    """Drop uvicorn's false alarm after a websocket is refused with an HTTP error.

    websockets-sansio logs "ASGI callable returned without completing handshake." even when
    the app sent a denial response (uvicorn issue, fix pending upstream). ocpplab refuses
    bad identities and missing auth that way on purpose, and the charger gets the 400/401.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


def install_filters() -> None:
    """Add the filters to uvicorn's loggers, once per process however often it is called."""
    for name, filters in (
        ("uvicorn.error", (RedactedPaths, RefusedHandshakeNoise)),
        ("uvicorn.access", (RedactedPaths,)),
    ):
        logger = logging.getLogger(name)
        for kind in filters:
            if not any(isinstance(existing, kind) for existing in logger.filters):
                logger.addFilter(kind())


def log_failure(logger: logging.Logger, what: str) -> None:
    """Log the exception being handled without its message (which may quote a frame).

    At the default level the line says what failed and the exception's type; the full
    traceback, message included, is logged at `debug` only.
    """
    kind = type(sys.exc_info()[1]).__name__
    logger.error("%s (%s; the traceback is logged at debug level)", what, kind)
    logger.debug("%s", what, exc_info=True)

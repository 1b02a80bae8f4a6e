"""`ocpplab` — run the central system (and, as subcommands, the tools around it)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from ocpplab.config import SETTINGS, Settings
from ocpplab.core.errors import BrokerError, ConfigError

# The tools, each a module with `add_arguments(parser)` and `run(args) -> exit status`;
# imported only when asked for, so that `ocpplab` alone starts without loading them.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("ocpplab.tools.fleet", "run simulated chargers against a central system"),
    "bench": ("ocpplab.tools.bench", "measure the server's speed and memory"),
    "certs": ("ocpplab.tools.certs", "make TLS certificates for profiles 2 and 3"),
    "diff": ("ocpplab.tools.diff", "compare two recordings of a charger"),
    "check": ("ocpplab.tools.check", "run guided OCPP 1.6 checks on a connected charger"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocpplab",
        description="A self-hostable OCPP-J 1.6 central system for experimenting with chargers.",
        epilog="Every flag can also be set as an environment variable OCPPLAB_<NAME>.",
        # A subcommand's own flags (`certs --charger`) may begin like a setting's flag
        # (`--charger-password`); abbreviations would make them ambiguous.
        allow_abbrev=False,
    )
    for setting in SETTINGS:
        parser.add_argument(
            setting.flag,
            dest=setting.name,
            metavar=setting.name.upper(),
            default=None,
            help=f"{setting.help} [env {setting.env}, default {setting.default or 'empty'}]",
        )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, summary) in SUBCOMMANDS.items():
        subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def _tool(name: str) -> Any:
    return importlib.import_module(SUBCOMMANDS[name][0])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command:
        # The tool's own parser reads everything after the subcommand's name.
        tool = _tool(args.command)
        sub = argparse.ArgumentParser(prog=f"ocpplab {args.command}", allow_abbrev=False)
        tool.add_arguments(sub)
        return int(tool.run(sub.parse_args(argv[argv.index(args.command) + 1 :])))
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    overrides = {setting.name: getattr(args, setting.name) for setting in SETTINGS}
    try:
        settings = Settings.from_env(os.environ, overrides)
        check_credentials(settings)
        check_broker(settings)
    except (ConfigError, BrokerError) as exc:
        print(f"ocpplab: {exc}", file=sys.stderr)
        return 2
    serve(settings)
    return 0


def check_broker(settings: Settings) -> None:
    """Fail fast, before binding, when the configured Redis does not answer."""
    if not settings.redis_url:
        return
    from ocpplab.broker import broker_from_url

    async def probe() -> None:
        broker = broker_from_url(settings.redis_url)
        await broker.start()
        await broker.stop()

    asyncio.run(probe())


def check_credentials(settings: Settings) -> None:
    """Read the per-charger passwords file now, so that a bad one stops start-up cleanly."""
    from ocpplab.server.credentials import ChargerCredentials

    ChargerCredentials.from_settings(settings)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How ocpplab runs under uvicorn; shared by the CLI and the tests' real servers.

    With a certificate, TLS is uvicorn's context hardened by `ocpplab.server.tls` (TLS 1.2+, the
    OCPP 1.6 security whitepaper's suites). With a CA as well (profile 3), a client
    certificate is asked for and, when sent, must be signed by that CA, or the handshake
    fails; it is optional for TLS so that a browser without one still opens the dashboard
    on the same port, and the gateway refuses every charger whose certificate is missing or
    whose CN is not its identity.
    """
    import ssl

    from ocpplab.server import tls
    from ocpplab.server.handshake import TolerantWebSocketProtocol

    ping = settings.ping_interval or None
    return {
        "host": settings.host,
        "port": settings.port,
        "ws": TolerantWebSocketProtocol,
        "ws_max_size": settings.max_frame_size,
        "ws_ping_interval": ping,
        "ws_ping_timeout": settings.ping_timeout if ping else None,
        "log_level": settings.log_level,
        "access_log": False,  # URLs carry charger identities; frames are never logged
        "proxy_headers": True,
        "server_header": False,
        "ssl_certfile": settings.ssl_certfile,
        "ssl_keyfile": settings.ssl_keyfile,
        "ssl_ca_certs": settings.ssl_ca_certs,
        "ssl_cert_reqs": ssl.CERT_OPTIONAL if settings.ssl_ca_certs else ssl.CERT_NONE,
        "ssl_ciphers": tls.CIPHERS,
        "ssl_context_factory": tls.context_factory if settings.ssl_certfile else None,
    }


# Python's default is a full collection every 10 collections of the middle generation.
FULL_COLLECTION_EVERY = 1000


def collect_garbage_rarely() -> None:
    """Make the garbage collector's full collections rare, as a server of many sockets needs.

    A full collection walks every object of the process and stops the event loop meanwhile:
    with a thousand busy chargers (and Redis) it ran every few seconds and held all answers
    up for 100 ms or more. Nearly all garbage here goes by reference counting; the young
    generations are still collected as often, and only cycles that outlive them wait longer.
    """
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def prepare_server_process() -> None:
    """What every process that serves ocpplab sets up: `ocpplab` itself, and each worker
    process of `--workers` > 1 (in `ocpplab.asgi`)."""
    from ocpplab import logs

    collect_garbage_rarely()
    return_big_blocks_to_the_system()
    logs.install_filters()


# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
BIG_BLOCK = 256 * 1024


def return_big_blocks_to_the_system() -> None:
    """Have glibc map every block of 256 KiB or more on its own, and give it back when freed.

    Frames of up to a megabyte pass through buffers of that size. By default glibc raises
    its mmap threshold after the first such block is freed, after which big blocks come from
    the heap, fragment it and are never returned: a thousand chargers sending big frames
    once left the process at 1.7 GB for good. Elsewhere than glibc this does nothing.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        return
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, BIG_BLOCK)
        mallopt(M_TRIM_THRESHOLD, BIG_BLOCK)


def serve(settings: Settings) -> None:
    import uvicorn

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    prepare_server_process()
    options = uvicorn_options(settings)
    scheme = "https" if settings.ssl_certfile else "http"
    print(
        f"ocpplab: dashboard {scheme}://{settings.host}:{settings.port}/ · chargers connect to "
        f"{'wss' if settings.ssl_certfile else 'ws'}://{settings.host}:{settings.port}/ocpp/"
        "{identity} · broker "
        f"{'Redis' if settings.redis_url else 'in-memory'}",
        file=sys.stderr,
    )
    if settings.workers > 1:
        # Worker processes build their own app from the environment.
        os.environ.update(
            {setting.env: _as_text(getattr(settings, setting.name)) for setting in SETTINGS}
        )
        uvicorn.run("ocpplab.asgi:app", workers=settings.workers, **options)
    else:
        from ocpplab.app import create_app

        uvicorn.run(create_app(settings), **options)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

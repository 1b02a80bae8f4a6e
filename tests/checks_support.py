"""Running guided checks against a simulated charger over real sockets, for the tests."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterable
from typing import Any

from ocpplab.tools.check_runs import CheckRuns
from ocpplab.tools.fleet import SimulatedCharger, Stats
from tests.support import RunningServer


@contextlib.asynccontextmanager
async def guided_charger(
    server: RunningServer,
    *,
    faults: Iterable[str] = (),
    connectors: int = 1,
    identity: str | None = None,
) -> AsyncIterator[SimulatedCharger]:
    """A simulated charger (scenario "guided") connected to `server` and booted."""
    identity = identity or f"chk-{secrets.token_hex(3)}"
    charger = SimulatedCharger(
        f"{server.ws}/ocpp/",
        identity,
        Stats(chargers=1),
        scenario="guided",
        call_timeout=10,
        faults=frozenset(faults),
        connectors=connectors,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(charger.run(stop))
    try:
        async with asyncio.timeout(15):
            await charger.ready.wait()
        yield charger
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(5):
                await task
        task.cancel()


def runs_of(server: RunningServer) -> CheckRuns:
    runs: CheckRuns = server.app.state.check_runs
    return runs


async def run_simulated(
    server: RunningServer,
    only: list[str] | None,
    *,
    faults: Iterable[str] = (),
    connectors: int = 1,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Run checks (`only` ids, or all) against a fresh guided simulated charger, the charger
    doing the person's acts; the finished report."""
    async with guided_charger(server, faults=faults, connectors=connectors) as charger:
        runs = runs_of(server)

        async def act(name: str, detail: dict[str, Any]) -> bool:
            done: bool = await charger.act(name, detail)
            return done

        await runs.start(charger.identity, only, actor=act)
        async with asyncio.timeout(timeout):
            report = await runs.wait(charger.identity)
    assert report is not None
    return report


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {check["id"]: check["verdict"] for check in report["checks"]}


def reasons(report: dict[str, Any]) -> dict[str, str | None]:
    return {check["id"]: check["reason"] for check in report["checks"]}

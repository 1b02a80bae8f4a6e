"""Nothing about chargers for strangers: not in the logs, not on the landing page.

On a lab open to strangers a charger's identity is the only key to its page. The logs are
checked as a person runs ocpplab (`python -m ocpplab` in a subprocess, default log level)
while chargers, refused chargers and pages come and go.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from ocpplab.config import Settings
from ocpplab.logs import redacted_path
from tests.support import REDIS_URL, exchange, serve
from tests.test_config import ROOT, free_port
from tests.test_redis_processes import require_redis

# Logs


@contextlib.contextmanager
def ocpplab_process(port: int, **env: str) -> Iterator[list[str]]:
    """`python -m ocpplab` at the default log level; yields a list that holds its output
    (stdout and stderr) once it has stopped."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("OCPPLAB_")}
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "ocpplab", "--port", str(port)],
            env={**environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                assert process.poll() is None, "ocpplab exited"
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                        break
                assert time.monotonic() < deadline, "ocpplab did not start"
                time.sleep(0.05)
            log: list[str] = []
            yield log
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        output.seek(0)
        log.append(output.read().decode(errors="replace"))


async def refused_with(url: str, **kwargs: object) -> int:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(url, **kwargs)  # type: ignore[arg-type]
    status: int = refused.value.response.status_code
    return status


@pytest.mark.parametrize(
    "workers",
    [
        pytest.param({}, id="one process"),
        pytest.param({"OCPPLAB_WORKERS": "2"}, id="workers", marks=pytest.mark.redis),
    ],
)
async def test_no_identity_or_frame_reaches_the_log_at_the_default_level(
    workers: dict[str, str],
) -> None:
    if workers:
        require_redis()
        workers = {**workers, "OCPPLAB_REDIS_URL": REDIS_URL}
    token = uuid.uuid4().hex[:12]
    identity, refused_identity = f"LOGCHK-{token}", f"NOPE-{token}"
    port = free_port()
    http, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    password = base64.b64encode(f"{identity}:pw".encode()).decode()
    with ocpplab_process(port, OCPPLAB_CHARGER_PASSWORD="pw", **workers) as output:
        async with websockets.connect(
            f"{ws}/ocpp/{identity}?serial={token}",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers={"Authorization": f"Basic {password}"},
        ) as charger:
            boot = {"chargePointVendor": f"V-{token}", "chargePointModel": f"M-{token}"}
            assert (await exchange(charger, [2, f"u-{token}", "BootNotification", boot]))[0] == 3
            async with websockets.connect(f"{ws}/chargers/{identity}/live") as page:
                await page.recv()
                async with httpx.AsyncClient(base_url=http, timeout=10) as client:
                    assert (await client.get(f"/chargers/{identity}")).status_code == 200
                    assert (await client.get(f"/api/chargers/{identity}")).status_code == 200
                    started = await client.post("/start", data={"identity": identity})
                    assert started.status_code == 303
        assert await refused_with(f"{ws}/ocpp/{refused_identity}") == 401
        assert await refused_with(f"{ws}/ocpp/{'X' * 60}{token}") == 400
        assert await refused_with(f"{ws}/ocp/{refused_identity}") == 403
        assert (
            await refused_with(f"{ws}/chargers/{identity}/live", origin="http://e.example") == 403
        )
    log = "".join(output)

    assert token not in log, log
    # The lines are still there, with the route's shape for the path.
    assert '"WebSocket /ocpp/{identity}" [accepted]' in log, log
    assert '"WebSocket /chargers/{identity}/live" [accepted]' in log, log
    assert '"WebSocket /ocpp/{identity}" 401' in log, log
    assert '"WebSocket /…" 403' in log, log
    assert "without completing handshake" not in log, log  # refusals are on purpose


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/ocpp/CP-1", "/ocpp/{identity}"),
        ("/ocpp/site/CP-1?x=1", "/ocpp/{identity}"),
        ("/ocpp", "/ocpp"),
        ("/", "/"),
        ("/?CP-1", "/"),
        ("/chargers/CP-1/live", "/chargers/{identity}/live"),
        ("/chargers/CP-1/rules/Heartbeat", "/chargers/{identity}/…"),
        ("/api/chargers/CP-1/calls/Reset", "/api/chargers/{identity}/…"),
        ("/static/app.js", "/static/app.js"),
        ("/CP-1", "/…"),
        ("/ocp/CP-1", "/…"),
    ],
)
def test_paths_are_logged_as_the_shape_of_their_route(path: str, shown: str) -> None:
    assert redacted_path(path) == shown


# The landing page


async def landing_once(http: httpx.AsyncClient, url: str, needle: str) -> str:
    """The landing page once it shows `needle`: a charger is listed just after its handshake."""
    async with asyncio.timeout(10):
        while True:
            text = (await http.get(url)).text
            if needle in text:
                return text
            await asyncio.sleep(0.05)


async def test_an_open_lab_counts_its_chargers_but_does_not_list_them() -> None:
    token = uuid.uuid4().hex[:8]
    async with serve(Settings()) as server, httpx.AsyncClient(timeout=10) as http:
        empty = (await http.get(server.http + "/")).text
        async with (
            websockets.connect(server.charger_url(f"A-{token}")),
            websockets.connect(server.charger_url(f"B-{token}")),
        ):
            landing = await landing_once(http, server.http + "/", "2 chargers connected")
    assert "connected to this server now" not in empty
    assert "2 chargers connected to this server now" in landing
    assert "Their identities are not listed" in landing
    assert token not in landing
    assert "Connected to this server now" not in landing


@pytest.mark.parametrize(
    ("settings", "headers"),
    [
        (Settings(list_chargers=True), {}),
        (
            Settings(dashboard_password="pw"),
            {"Authorization": "Basic " + base64.b64encode(b"me:pw").decode()},
        ),
    ],
)
async def test_a_private_dashboard_or_the_setting_lists_them(
    settings: Settings, headers: dict[str, str]
) -> None:
    identity = f"CP-{uuid.uuid4().hex[:8]}"
    async with (
        serve(settings) as server,
        websockets.connect(server.charger_url(identity)),
        httpx.AsyncClient(headers=headers, timeout=10) as http,
    ):
        landing = await landing_once(http, server.http + "/", identity)
    assert "Connected to this server now" in landing
    assert f">{identity}</a>" in landing
    assert "not listed" not in landing

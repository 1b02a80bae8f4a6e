"""The request guard: no page of another site, and no DNS name nobody allowed, changes anything.

The attacks run against a real server, with a real charger connected where one could be
commanded, as a hostile page would run them from the user's browser: a "simple" cross-site
request (`text/plain` or a form, no preflight), a page socket opened from another site, a
rebinding Host name. tests/test_browser_guard.py runs them from a real Chromium.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import websockets
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from websockets.exceptions import InvalidStatus

from ocpplab.config import Settings
from tests.support import RunningServer, exchange, page_socket, raw_charger, serve

EVIL = "http://evil.example"
JSON = {"Content-Type": "application/json"}
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# What a hostile page would post: a JSON text (as text/plain) and an HTML form.
CROSS_SITE_BODIES: list[tuple[str, str]] = [
    (
        "text/plain",
        '{"type": "Hard", "payload": {"currentTime": "2030-01-01T00:00:00Z"}, "mode": "ignore"}',
    ),
    (
        "application/x-www-form-urlencoded",
        "source=form&f.type=Hard&text=%5B2%2C%22evil%22%2C%22Reset%22%2C%7B%7D%5D"
        "&key=K&value=1&unique_id=x&reply=error&error_code=NotSupported"
        "&preset=ignore&validation=strict&identity=X",
    ),
]


def new_identity() -> str:
    return f"CP-guard-{uuid.uuid4().hex[:8]}"


def unsafe_endpoints(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path format) for every route and method that may change something.

    A Mount whose app lists no routes (static files) gets every unsafe method: nothing
    says which it takes.
    """
    for route in routes:
        if isinstance(route, Mount):
            if route.routes:
                yield from unsafe_endpoints(list(route.routes), prefix + route.path)
            else:
                for method in UNSAFE_METHODS:
                    yield method, f"{prefix}{route.path}/anything"
        elif isinstance(route, Route):
            methods = route.methods if route.methods is not None else set(UNSAFE_METHODS)
            for method in sorted(set(methods) - {"GET", "HEAD"}):
                yield method, prefix + route.path_format
        elif isinstance(route, WebSocketRoute):
            yield "WEBSOCKET", prefix + route.path_format


def fill(path_format: str, **values: str) -> str:
    class Anything(dict[str, str]):
        def __missing__(self, key: str) -> str:
            return "x"

    return path_format.format_map(Anything(values))


async def nothing_arrives(connection: Any, seconds: float = 1.0) -> None:
    try:
        async with asyncio.timeout(seconds):
            frame = await connection.recv()
    except TimeoutError:
        return
    raise AssertionError(f"the charger received {frame!r}")


@pytest.fixture
async def lab() -> AsyncIterator[RunningServer]:
    """A server whose held calls wait long enough to be attacked."""
    async with serve(Settings(call_timeout=2.0, manual_timeout=60.0)) as running:
        yield running


async def held_call(server: RunningServer, identity: str, http: httpx.AsyncClient) -> Any:
    """A raw charger of `identity` whose Heartbeat "held-1" waits for a person's answer."""
    rule = await http.put(
        f"{server.http}/api/chargers/{identity}/responses/Heartbeat",
        json={"mode": "manual"},
    )
    assert rule.status_code == 200
    charger = await raw_charger(server, identity)
    async with page_socket(server, identity) as page:
        await charger.send(json.dumps([2, "held-1", "Heartbeat", {}]))
        await page.wait_for("Heartbeat waits for your answer")
    return charger


# Cross-site requests


async def test_every_unsafe_route_refuses_a_cross_site_request(lab: RunningServer) -> None:
    identity = new_identity()
    endpoints = sorted(set(unsafe_endpoints(lab.app.routes)))
    formats = {path for _, path in endpoints}
    assert {
        "/api/chargers/{identity}/calls/{action}",
        "/api/chargers/{identity}/frames",
        "/api/chargers/{identity}/held/{unique_id}",
        "/chargers/{identity}/held/{unique_id}",
        "/chargers/{identity}/live",
        "/simulate",
    } <= formats, formats
    async with httpx.AsyncClient(timeout=10) as http:
        charger = await held_call(lab, identity, http)
        try:
            for method, path_format in endpoints:
                path = fill(path_format, identity=identity, action="Reset", unique_id="held-1")
                if method == "WEBSOCKET":
                    with pytest.raises(InvalidStatus) as refused:
                        await websockets.connect(f"{lab.ws}{path}", origin=EVIL)  # type: ignore[arg-type]
                    assert refused.value.response.status_code == 403, path
                    continue
                for content_type, body in CROSS_SITE_BODIES:
                    response = await http.request(
                        method,
                        f"{lab.http}{path}?validate=false",
                        content=body,
                        headers={"Origin": EVIL, "Content-Type": content_type},
                    )
                    assert response.status_code == 403, (method, path, response.text)
                    assert f"Origin {EVIL} does not match {lab.http}" in response.text
            await nothing_arrives(charger)
            rule = await http.get(f"{lab.http}/api/chargers/{identity}/responses/Heartbeat")
            assert rule.json()["mode"] == "manual"
            assert not lab.app.state.simulations.running
        finally:
            await charger.close()


async def test_the_dashboard_password_does_not_let_another_site_in() -> None:
    # The browser resends cached Basic credentials with a cross-site request.
    settings = Settings(dashboard_password="s3cret", manual_timeout=60.0)
    credentials = base64.b64encode(b"me:s3cret").decode()
    identity = new_identity()
    async with (
        serve(settings) as server,
        httpx.AsyncClient(timeout=10, headers={"Authorization": f"Basic {credentials}"}) as http,
    ):
        charger = await raw_charger(server, identity)
        try:
            for path, body in [
                (f"/api/chargers/{identity}/calls/Reset?validate=false", '{"type": "Hard"}'),
                (f"/api/chargers/{identity}/frames", '[2,"evil","Reset",{"type":"Hard"}]'),
            ]:
                response = await http.post(
                    server.http + path,
                    content=body,
                    headers={"Origin": EVIL, "Content-Type": "text/plain"},
                )
                assert response.status_code == 403, path
            await nothing_arrives(charger)
            ours = await http.post(
                f"{server.http}/api/chargers/{identity}/frames",
                content="[]",
                headers={"Origin": server.http, **JSON},
            )
            assert ours.status_code == 202
            assert await charger.recv() == "[]"
        finally:
            await charger.close()


async def form_post(server: RunningServer, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(f"{server.http}/start", data={"identity": "CP-1"}, headers=headers)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Origin": "http://127.0.0.1:{other_port}"}, "does not match http://127.0.0.1:{port}"),
        ({"Origin": "https://127.0.0.1:{port}"}, "does not match http://127.0.0.1:{port}"),
        ({"Origin": "http://localhost:{port}"}, "does not match http://127.0.0.1:{port}"),
        ({"Origin": "null"}, "Origin null does not match"),
        ({"Origin": "http://127.0.0.1:{port}.evil.example"}, "does not match"),
        ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
        ({"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site: same-site"),
        (
            {"Sec-Fetch-Site": "cross-site", "Origin": "http://127.0.0.1:{port}"},
            "Sec-Fetch-Site: cross-site",
        ),
    ],
)
async def test_another_origin_is_refused(
    server: RunningServer, headers: dict[str, str], reason: str
) -> None:
    ports = {"port": str(server.port), "other_port": str(server.port + 1)}
    sent = {name: value.format(**ports) for name, value in headers.items()}
    response = await form_post(server, sent)
    assert response.status_code == 403
    assert response.text.startswith("cross-site request refused: ")
    assert reason.format(**ports) in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://127.0.0.1:{port}"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://127.0.0.1:{port}"},
        {},  # curl and scripts
    ],
)
async def test_this_site_and_scripts_may_post(
    server: RunningServer, headers: dict[str, str]
) -> None:
    sent = {name: value.format(port=server.port) for name, value in headers.items()}
    response = await form_post(server, sent)
    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith("/chargers/CP-1")


async def test_the_page_socket_takes_this_site_only(server: RunningServer) -> None:
    url = f"{server.ws}/chargers/CP-1/live"
    for origin in [EVIL, f"http://127.0.0.1:{server.port + 1}", "null"]:
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(url, origin=origin)  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        assert b"cross-site request refused" in refused.value.response.body
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(url, additional_headers={"Sec-Fetch-Site": "cross-site"})
    assert refused.value.response.status_code == 403
    async with websockets.connect(url, origin=server.http):  # type: ignore[arg-type]
        pass


async def test_the_public_url_is_this_site_too() -> None:
    settings = Settings(public_url="https://lab.example")
    async with serve(settings) as server:
        behind_proxy = await form_post(server, {"Origin": "https://lab.example"})
        assert behind_proxy.status_code == 303
        wrong_scheme = await form_post(server, {"Origin": "http://lab.example"})
        assert wrong_scheme.status_code == 403
        assert f"does not match {server.http} or https://lab.example" in wrong_scheme.text


# The JSON API takes JSON only


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
)
async def test_the_api_refuses_bodies_a_page_could_send(
    lab: RunningServer, content_type: str | None
) -> None:
    identity = new_identity()
    headers = {"Content-Type": content_type} if content_type else {}
    charger = await raw_charger(lab, identity)
    try:
        async with httpx.AsyncClient(base_url=lab.http, timeout=10) as http:
            for path in ["/calls/Reset?validate=false", "/frames"]:
                response = await http.post(
                    f"/api/chargers/{identity}{path}",
                    content='[2,"x","Reset",{"type":"Hard"}]',
                    headers=headers,
                )
                assert response.status_code == 415, path
                assert "the API takes application/json" in response.text
                assert f"got {content_type or 'no Content-Type'}" in response.text
        await nothing_arrives(charger, 0.5)
    finally:
        await charger.close()


async def test_the_api_takes_json_with_or_without_charset(lab: RunningServer) -> None:
    identity = new_identity()
    charger = await raw_charger(lab, identity)
    try:
        async with httpx.AsyncClient(base_url=lab.http, timeout=10) as http:
            for content_type in ["application/json", "Application/JSON; charset=utf-8"]:
                response = await http.post(
                    f"/api/chargers/{identity}/frames",
                    content="[]",
                    headers={"Content-Type": content_type},
                )
                assert response.status_code == 202, content_type
                assert await charger.recv() == "[]"
            # Without a body there is nothing to type.
            deleted = await http.delete(f"/api/chargers/{identity}/responses/Heartbeat")
            assert deleted.status_code == 200
            empty = await http.post(f"/api/chargers/{identity}/held/nothing-held")
            assert empty.status_code == 422  # the view's own answer to an empty reply
    finally:
        await charger.close()


# Host names: DNS rebinding


async def test_a_rebinding_host_is_refused(server: RunningServer) -> None:
    rebound = f"rebind.example:{server.port}"
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        for path in ["/", "/api/chargers/CP-1", "/chargers/CP-1", "/static/app.js"]:
            response = await http.get(path, headers={"Host": rebound})
            assert response.status_code == 400, path
            assert response.text == (
                "Host 'rebind.example' is not allowed; add it to OCPPLAB_ALLOWED_HOSTS\n"
            )
        posted = await http.post(
            "/start",
            data={"identity": "CP-1"},
            headers={"Host": rebound, "Origin": f"http://{rebound}"},
        )
        assert posted.status_code == 400
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            f"ws://{rebound}/chargers/CP-1/live",
            origin=f"http://{rebound}",  # type: ignore[arg-type]
            host="127.0.0.1",
            port=server.port,
        )
    assert refused.value.response.status_code == 400
    assert b"OCPPLAB_ALLOWED_HOSTS" in refused.value.response.body


async def test_chargers_and_the_health_check_take_any_host(server: RunningServer) -> None:
    rebound = f"charger.example:{server.port}"
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        health = await http.get("/healthz", headers={"Host": rebound})
        assert health.status_code == 200
        not_upgraded = await http.get("/ocpp/CP-1", headers={"Host": rebound})
        assert not_upgraded.status_code == 426
    async with websockets.connect(
        f"ws://{rebound}/ocpp/CP-1",
        subprotocols=["ocpp1.6"],
        host="127.0.0.1",
        port=server.port,  # type: ignore[list-item]
    ) as charger:
        answer = await exchange(charger, [2, "h", "Heartbeat", {}])
        assert answer[0] == 3


async def test_allowed_hosts_are_answered() -> None:
    settings = Settings(allowed_hosts=("rebind.example",), public_url="https://lab.example")
    async with (
        serve(settings) as server,
        httpx.AsyncClient(base_url=server.http, timeout=10) as http,
    ):
        for host in [
            f"rebind.example:{server.port}",
            "REBIND.example.",
            "lab.example",
            f"localhost:{server.port}",
            "ocpplab.localhost",
            f"[::1]:{server.port}",
            "10.1.2.3:8000",
        ]:
            response = await http.get("/api/chargers/CP-1", headers={"Host": host})
            assert response.status_code == 200, host
        other = await http.get("/", headers={"Host": "other.example"})
        assert other.status_code == 400
        rebound = f"rebind.example:{server.port}"
        async with websockets.connect(
            f"ws://{rebound}/chargers/CP-1/live",
            origin=f"http://{rebound}",  # type: ignore[arg-type]
            host="127.0.0.1",
            port=server.port,
        ) as page:
            assert "Live updates" in str(await page.recv())


async def test_a_request_without_host_is_refused(server: RunningServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(b"the request has no Host header\n")


# The dashboard password


def basic(password: str, user: str = "me") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def source() -> dict[str, str]:
    """A client address of its own (uvicorn trusts X-Forwarded-For from 127.0.0.1)."""
    octets = uuid.uuid4().bytes[:3]
    return {"X-Forwarded-For": "10." + ".".join(str(octet) for octet in octets)}


@pytest.fixture
async def private() -> AsyncIterator[RunningServer]:
    async with serve(Settings(dashboard_password="s3cret")) as running:
        yield running


async def test_the_dashboard_password_guards_pages_api_and_page_socket(
    private: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=private.http, timeout=10) as http:
        for path in ["/", "/chargers/CP-1", "/api/chargers/CP-1", "/static/app.js"]:
            refused = await http.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == 'Basic realm="ocpplab dashboard"'
            assert (await http.get(path, headers=basic("s3cret", "anyone"))).status_code == 200
            wrong = await http.get(path, headers={**source(), **basic("S3cret")})
            assert wrong.status_code == 401, path
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/ocpp/CP-1")).status_code == 426
    live = f"{private.ws}/chargers/CP-1/live"
    with pytest.raises(InvalidStatus) as refused_socket:
        await websockets.connect(live)
    assert refused_socket.value.response.status_code == 401
    async with websockets.connect(live, additional_headers=basic("s3cret")) as page:
        assert "Live updates" in str(await page.recv())
    async with websockets.connect(private.charger_url("CP-1"), subprotocols=["ocpp1.6"]) as charger:  # type: ignore[list-item]
        assert (await exchange(charger, [2, "h", "Heartbeat", {}]))[0] == 3


async def timed(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> tuple[int, float]:
    started = asyncio.get_running_loop().time()
    response = await http.get(path, headers=headers)
    return response.status_code, asyncio.get_running_loop().time() - started


async def test_wrong_passwords_wait_longer_each_time_and_a_right_one_resets(
    private: RunningServer,
) -> None:
    guesser, other = source(), source()
    wrong, right = {**guesser, **basic("guess")}, {**guesser, **basic("s3cret")}
    async with httpx.AsyncClient(base_url=private.http, timeout=30) as http:
        first = await timed(http, "/", wrong)
        second = await timed(http, "/", wrong)
        assert (first[0], second[0]) == (401, 401)
        assert first[1] >= 0.25
        assert second[1] >= 0.5

        # While the guesser waits, everyone else is served.
        finished: list[str] = []

        async def request(name: str, path: str, headers: dict[str, str]) -> int:
            response = await http.get(path, headers=headers)
            finished.append(name)
            return response.status_code

        third = asyncio.create_task(timed(http, "/", wrong))
        await asyncio.sleep(0.1)
        assert await request("other", "/", {**other, **basic("s3cret")}) == 200
        assert await request("health", "/healthz", guesser) == 200
        assert not third.done()
        status, waited = await third
        assert (status, finished) == (401, ["other", "health"])
        assert waited >= 1.0

        assert (await timed(http, "/", right))[0] == 200
        after_reset = await timed(http, "/", wrong)
        assert after_reset[0] == 401
        assert 0.25 <= after_reset[1] < 1.5  # not the 2 s a fourth failure in a row waits


async def test_guesses_sent_at_once_from_one_source_wait_their_turn(
    private: RunningServer,
) -> None:
    wrong = {**source(), **basic("guess")}
    async with httpx.AsyncClient(base_url=private.http, timeout=30) as http:
        answers = await asyncio.gather(*(timed(http, "/", wrong) for _ in range(5)))
    refused_at_once = [waited for status, waited in answers if status == 429]
    checked = sorted(waited for status, waited in answers if status == 401)
    assert len(refused_at_once) == 1
    assert len(checked) == 4
    assert refused_at_once[0] < checked[0]
    # One at a time: 0.25 + 0.5 + 1 + 2 seconds, not the longest of them.
    assert checked[-1] >= 3.7


@pytest.mark.parametrize(
    ("pasted", "expected"),
    [
        ("ws://127.0.0.1:8000/ocpp/CP-7", "/chargers/CP-7"),
        ("wss://lab.example/prefix/ocpp/CP%208/", "/chargers/CP%208"),
    ],
)
async def test_a_pasted_charger_url_opens_that_charger(pasted: str, expected: str) -> None:
    async with serve() as server, httpx.AsyncClient(base_url=server.http) as client:
        response = await client.post("/start", data={"identity": pasted})

    assert response.status_code == 303
    assert response.headers["location"].endswith(expected)


@pytest.mark.parametrize(
    ("pasted", "said"),
    [
        ("ws://127.0.0.1:8000/ocpp/", "without a charger identity"),
        ("ws://127.0.0.1:8000/ocpp/CP-1/extra", "cannot contain"),
    ],
)
async def test_a_pasted_url_without_one_identity_is_refused_saying_why(
    pasted: str, said: str
) -> None:
    async with serve() as server, httpx.AsyncClient(base_url=server.http) as client:
        response = await client.post("/start", data={"identity": pasted})
        # Back to the landing page (303, so that a reload does not post again), which says why.
        assert response.status_code == 303
        location = httpx.URL(response.headers["location"])
        landing = await client.get(location)

    assert location.path == "/"
    assert "/chargers/" not in str(location)
    assert landing.status_code == 200
    assert 'role="alert"' in landing.text
    assert said in landing.text


async def test_static_files_are_compressed_and_cached() -> None:
    async with serve() as server, httpx.AsyncClient(base_url=server.http) as client:
        vendored = await client.get(
            "/static/vendor/htmx-2.0.11/htmx.min.js", headers={"Accept-Encoding": "gzip"}
        )
        ours = await client.get("/static/app.css", headers={"Accept-Encoding": "gzip"})
        plain = await client.get("/static/app.css", headers={"Accept-Encoding": "identity"})

    assert vendored.headers["content-encoding"] == "gzip"
    assert "immutable" in vendored.headers["cache-control"]
    assert ours.headers["cache-control"] == "public, max-age=300"
    assert ours.headers["content-encoding"] == "gzip"
    assert int(vendored.headers["content-length"]) < len(vendored.content)
    assert "content-encoding" not in plain.headers
    assert plain.text == ours.text

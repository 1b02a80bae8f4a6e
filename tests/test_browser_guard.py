"""The guard against a real Chromium: a hostile page, a rebinding name, a private dashboard.

Chromium resolves `evil.example` and `rebind.example` to 127.0.0.1 here, as DNS would for an
attacker's names. The hostile page is served by a server of its own, on another origin.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from ocpp.v16 import call

from ocpplab.config import Settings
from tests.support import CHROMIUM_ARGS, chromium_path, ocpp_charger, raw_charger, serve
from tests.test_guard import nothing_arrives

pytestmark = pytest.mark.browser

RESOLVE = "--host-resolver-rules=MAP evil.example 127.0.0.1, MAP rebind.example 127.0.0.1"


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    executable = chromium_path()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=[*CHROMIUM_ARGS, RESOLVE]
        )
        try:
            yield launched
        finally:
            await launched.close()


@contextlib.contextmanager
def hostile_site(html: str) -> Iterator[int]:
    """Serve `html` at `/` of its own server; yields its port."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


ATTACK = """<!doctype html>
<iframe name="sink"></iframe>
<form id="form" method="post" target="sink" action="{base}/chargers/{identity}/raw">
  <input name="text" value='[2,"by-form","Reset",{{"type":"Hard"}}]'>
</form>
<script>
const base = "{base}";
const sent = [
  fetch(base + "/api/chargers/{identity}/calls/Reset?validate=false",
        {{method: "POST", mode: "no-cors", body: '{{"type": "Hard"}}'}}),
  fetch(base + "/api/chargers/{identity}/frames",
        {{method: "POST", mode: "no-cors", credentials: "include",
          body: '[2,"by-fetch","Reset",{{"type":"Hard"}}]'}}),
  new Promise(done => {{
    const socket = new WebSocket("{ws}/chargers/{identity}/live");
    socket.onopen = () => done("socket open");
    socket.onclose = () => done("socket refused");
  }}),
  new Promise(done => {{
    document.querySelector("iframe").onload = () => done("form sent");
    document.getElementById("form").submit();
  }}),
];
Promise.allSettled(sent).then(results => {{
  document.title = "done: " + results.map(r => r.value === undefined ? r.status : r.value);
}});
</script>
"""


async def test_a_page_of_another_site_cannot_command_the_charger(browser: Any) -> None:
    identity = f"CP-{uuid.uuid4().hex[:8]}"
    async with serve(Settings()) as server:
        charger = await raw_charger(server, identity)
        try:
            html = ATTACK.format(base=server.http, ws=server.ws, identity=identity)
            with hostile_site(html) as port:
                page = await browser.new_page()
                await page.goto(f"http://evil.example:{port}/")
                await page.wait_for_function("document.title.startsWith('done')", timeout=15_000)
                title = await page.title()
            assert "socket refused" in title, title
            assert "form sent" in title, title
            await nothing_arrives(charger)
        finally:
            await charger.close()


async def test_a_rebinding_name_gets_no_dashboard(browser: Any) -> None:
    async with serve(Settings()) as server:
        page = await browser.new_page()
        response = await page.goto(f"http://rebind.example:{server.port}/")
        assert response is not None
        assert response.status == 400
        assert "add it to OCPPLAB_ALLOWED_HOSTS" in await page.content()


async def test_a_private_dashboard_works_in_the_browser(browser: Any) -> None:
    async with serve(Settings(dashboard_password="s3cret")) as server:
        context = await browser.new_context(
            http_credentials={"username": "me", "password": "s3cret"}
        )
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(server.http + "/")
        await page.get_by_label("Charger identity").fill("CP-1")
        await page.get_by_role("button", name="Start").click()
        await page.wait_for_url(f"{server.http}/chargers/CP-1")
        await page.get_by_text("Live updates: on").wait_for()
        await page.get_by_role("tab", name="State").click()
        async with ocpp_charger(server.charger_url("CP-1"), "CP-1") as charger:
            await charger.call(
                call.BootNotification(charge_point_model="Behind", charge_point_vendor="Login")
            )
            await page.locator("#state", has_text="Behind").wait_for()
        assert errors == [], errors
        await context.close()

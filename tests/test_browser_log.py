"""The charger page's log in a real browser: Debian's Chromium driven by Playwright.

The server runs in its own thread (`serve_in_thread`); the charger is a bare websockets
client speaking OCPP-J by hand on its own event loop in another thread (so that it can send
what a test needs, fast), answering every CALL of the central system with Accepted.
Every test also checks that the page logged no console error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shlex
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from ocpplab.config import Settings
from tests.support import CHROMIUM_ARGS, RunningServer, chromium_path, serve_in_thread

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}


class RawCharger:
    """A websockets client on its own thread and loop: sends frames, answers CALLs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.connection: Any = None
        self.answers: dict[str, asyncio.Future[Any]] = {}
        self.calls: list[Any] = []  # the central system's CALLs, as received
        self.reader: Any = None

    def __enter__(self) -> RawCharger:
        self.thread.start()
        self.run(self._connect())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def run(self, coroutine: Any, timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _connect(self) -> None:
        self.connection = await websockets.connect(self.url, subprotocols=["ocpp1.6"])  # type: ignore[list-item]
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for text in self.connection:
            frame = json.loads(text)
            if frame[0] == 2:
                self.calls.append(frame)
                await self.connection.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
            elif frame[1] in self.answers:
                self.answers.pop(frame[1]).set_result(frame)

    async def _call(self, unique_id: str, action: str, payload: Any) -> Any:
        answer = self.loop.create_future()
        self.answers[unique_id] = answer
        await self.connection.send(json.dumps([2, unique_id, action, payload]))
        return await asyncio.wait_for(answer, 10)

    def call(self, unique_id: str, action: str, payload: Any) -> Any:
        return self.run(self._call(unique_id, action, payload))

    async def _many(self, count: int, prefix: str) -> None:
        # Sent as fast as answered, in order: a flood of `count` exchanges.
        for number in range(count):
            await self._call(f"{prefix}{number}", "Heartbeat", {})

    def heartbeats(self, count: int, prefix: str) -> None:
        self.run(self._many(count, prefix), timeout=60)

    def send_text(self, text: str) -> None:
        self.run(self.connection.send(text))

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.connection is not None:
            self.run(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        await self.connection.close(code, reason)
        self.connection = None
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader


@pytest.fixture
def browser() -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def server() -> Iterator[RunningServer]:
    # The floods of these tests are faster than a charger may send (OCPPLAB_RATE_LIMIT).
    with serve_in_thread(Settings(call_timeout=5, rate_limit=10_000)) as running:
        yield running


class Page:
    """A charger page in Chromium that remembers every console error and page error."""

    def __init__(self, browser: Any, url: str, **context: Any) -> None:
        from playwright.sync_api import expect

        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on(
            "console", lambda message: message.type == "error" and self.errors.append(message.text)
        )
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(url)
        expect(self.page.locator("#live-status")).to_have_text("Live updates: on")

    def line(self, unique_id: str) -> Any:
        return self.page.locator(f'#log > li[data-unique-id="{unique_id}"]')

    def shot(self, name: str) -> None:
        SHOTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))

    def in_view(self, unique_id: str) -> bool:
        """Whether the line is within the log's own scrolled view (the log scrolls by itself)."""
        seen: bool = self.line(unique_id).evaluate(
            "line => { const box = line.getBoundingClientRect(),"
            " view = document.getElementById('log').getBoundingClientRect();"
            " return box.height > 0 && box.top >= view.top - 1 && box.bottom <= view.bottom + 1 }"
        )
        return seen

    def visible_ids(self) -> list[str]:
        ids: list[str] = self.page.eval_on_selector_all(
            "#log > li.x",
            "lines => lines.filter(l => l.offsetParent !== null)"
            ".map(l => l.getAttribute('data-unique-id'))",
        )
        return ids


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    pages: list[Page] = []

    def opener(url: str, viewport: dict[str, int] = DESKTOP, **context: Any) -> Page:
        page = Page(browser, url, viewport=viewport, **context)
        pages.append(page)
        return page

    yield opener
    for page in pages:
        assert page.errors == [], f"console errors: {page.errors}"
        page.context.close()


def boot(charger: RawCharger) -> None:
    charger.call("boot-1", "BootNotification", BOOT)


def test_a_paired_exchange_is_one_line_with_its_round_trip_and_expands(
    server: RunningServer, open_page: Any
) -> None:
    from playwright.sync_api import expect

    with RawCharger(server.charger_url("CP-1")) as charger:
        page = open_page(f"{server.http}/chargers/CP-1")
        boot(charger)
        charger.call("hb-1", "Heartbeat", {})
        # A central-system call, answered by the charger: one line too.
        answer = httpx.post(
            f"{server.http}/api/chargers/CP-1/calls/Reset",
            json={"type": "Soft"},
            headers={"Origin": server.http},
        )
        assert answer.status_code == 200
        reset_id = answer.headers["X-Unique-Id"]

        heartbeat = page.line("hb-1")
        expect(heartbeat).to_have_count(1)
        expect(heartbeat).to_contain_text("in")
        expect(heartbeat).to_contain_text("Heartbeat")
        expect(heartbeat.locator(".o")).to_have_text(re.compile(r"answered in [\d.]+ ms"))
        reset = page.line(reset_id)
        expect(reset).to_have_count(1)
        expect(reset).to_have_class(re.compile(r"\bout\b"))
        expect(reset.locator(".o")).to_have_text(re.compile(r"answered in [\d.]+ ms"))

        page.line("boot-1").locator("summary").click()  # both payloads, exact frames
        body = page.line("boot-1").locator(".b")
        expect(body).to_contain_text('"chargePointVendor": "Vendor"')
        expect(body).to_contain_text('"status": "Accepted"')
        expect(body.locator("pre.raw").first).to_have_text(
            json.dumps([2, "boot-1", "BootNotification", BOOT])
        )
        page.shot("log-expanded-1280x800")


def test_filters_and_search_narrow_the_log_and_never_drop_lines(
    server: RunningServer, open_page: Any
) -> None:
    from playwright.sync_api import expect

    with RawCharger(server.charger_url("CP-F")) as charger:
        page = open_page(f"{server.http}/chargers/CP-F")
        boot(charger)
        charger.call("hb-1", "Heartbeat", {})
        fault = {"connectorId": 1, "errorCode": "GroundFailure", "status": "Faulted"}
        charger.call("st-1", "StatusNotification", fault)
        charger.call("bad-1", "StatusNotification", {"connectorId": "one"})  # violations
        httpx.post(
            f"{server.http}/api/chargers/CP-F/calls/Reset",
            json={"type": "Hard"},
            headers={"Origin": server.http},
        )
        everything = ["boot-1", "hb-1", "st-1", "bad-1"]
        expect(page.page.locator("#log > li.x.out")).to_have_count(1)
        reset_id = page.page.locator("#log > li.x.out").get_attribute("data-unique-id")
        assert page.visible_ids() == [*everything, reset_id]
        p = page.page

        p.locator("#log-action").fill("status")
        expect(p.locator("#log-shown")).to_contain_text("2 of")
        assert page.visible_ids() == ["st-1", "bad-1"]
        p.locator("#log-action").fill("")

        p.locator("#log-dir").select_option("out")
        expect(p.locator("#log-shown")).to_contain_text("1 of")
        assert page.visible_ids() == [reset_id]
        p.locator("#log-dir").select_option("")

        p.locator("#log-problems").check()
        expect(p.locator("#log-shown")).to_contain_text("1 of")
        assert page.visible_ids() == ["bad-1"]
        expect(page.line("bad-1").locator(".v")).to_have_text(re.compile(r"^⚠ \d+$"))
        p.locator("#log-problems").uncheck()

        p.locator("#log-type").select_option("event")
        expect(p.locator("#log > li.ev-connected")).to_be_visible()
        assert page.visible_ids() == []
        p.locator("#log-type").select_option("")

        # Payloads are searched by the server, which holds them: not on the page.
        p.locator("#log-search").fill("groundfailure")
        expect(page.line("boot-1")).to_be_hidden()
        assert page.visible_ids() == ["st-1"]
        p.locator("#log-search").fill("hb-1")  # unique ids too
        expect(page.line("st-1")).to_be_hidden()
        assert page.visible_ids() == ["hb-1"]
        # A line arriving while searching is marked by the server as it comes.
        charger.call("st-2", "StatusNotification", {**fault, "connectorId": 2, "info": "hb-1"})
        expect(page.line("st-2")).to_be_visible()
        assert page.visible_ids() == ["hb-1", "st-2"]
        page.shot("log-search-1280x800")
        p.locator("#log-search").fill("")
        expect(p.locator("#log-shown")).to_have_text("")
        assert page.visible_ids() == [*everything, reset_id, "st-2"]


def test_the_line_you_read_stays_put_through_a_flood_and_n_new_brings_you_back(
    server: RunningServer, open_page: Any
) -> None:
    from playwright.sync_api import expect

    with RawCharger(server.charger_url("CP-L")) as charger:
        page = open_page(f"{server.http}/chargers/CP-L")
        p = page.page
        boot(charger)
        charger.heartbeats(100, "a-")
        expect(page.line("a-99")).to_have_count(1)
        log = p.locator("#log")
        # Following: the newest line is in view.
        assert page.in_view("a-99")

        # The person scrolls up to read a-40; the page keeps only 100 lines from now on.
        p.evaluate("document.getElementById('log-pane').setAttribute('data-window', '100')")
        read = page.line("a-40")
        read.scroll_into_view_if_needed()
        log.evaluate(
            "(log, line) => { log.scrollTop = line.offsetTop - 120 }", read.element_handle()
        )
        assert not page.in_view("a-99")
        before = read.bounding_box()
        charger.heartbeats(150, "b-")  # 300 frames from the charger
        expect(page.line("b-149")).to_have_count(1)
        p.wait_for_timeout(300)
        after = read.bounding_box()
        assert before is not None
        assert after is not None
        assert abs(after["y"] - before["y"]) < 1, (before, after)
        # Old lines above it were trimmed (the window is 100 lines), none in view: of the
        # 252 lines (connected, boot, 250 heartbeats), a few above a-40 stay.
        count = p.locator("#log > li").count()
        assert 150 < count < 252, count
        expect(page.line("a-0")).to_have_count(0)
        expect(page.line("a-38")).to_have_count(1)
        new = p.locator("#log-new")
        expect(new).to_be_visible()
        expect(new).to_have_text(re.compile(r"^1[0-9]{2} new ↓$"))
        page.shot("log-reading-during-flood-1280x800")

        new.click()
        expect(new).to_be_hidden()
        assert page.in_view("b-149")
        charger.call("c-1", "Heartbeat", {})
        expect(page.line("c-1")).to_have_count(1)
        p.wait_for_timeout(100)
        assert page.in_view("c-1")  # following again


def test_pause_counts_what_waits_and_clear_can_be_undone(
    server: RunningServer, open_page: Any
) -> None:
    from playwright.sync_api import expect

    with RawCharger(server.charger_url("CP-P")) as charger:
        page = open_page(f"{server.http}/chargers/CP-P")
        p = page.page
        boot(charger)
        expect(page.line("boot-1")).to_be_visible()
        p.get_by_role("button", name="Pause").click()
        charger.heartbeats(3, "p-")
        expect(p.locator("#log-waiting")).to_have_text("6 frames wait")
        expect(page.line("p-2")).to_be_hidden()
        p.get_by_role("button", name="Resume").click()
        expect(page.line("p-2")).to_be_visible()
        expect(p.locator("#log-waiting")).to_be_hidden()

        p.get_by_role("button", name="Clear", exact=True).click()
        expect(p.locator("#log-undo")).to_contain_text("Cleared 5 lines.")
        expect(page.line("p-2")).to_be_hidden()
        p.get_by_role("button", name="Undo").click()
        expect(page.line("p-2")).to_be_visible()
        expect(p.locator("#log-undo")).to_be_hidden()


def test_the_log_survives_a_disconnect_and_a_reload(server: RunningServer, open_page: Any) -> None:
    from playwright.sync_api import expect

    url = f"{server.http}/chargers/CP-R"
    charger = RawCharger(server.charger_url("CP-R")).__enter__()
    try:
        page = open_page(url)
        boot(charger)
        charger.call("hb-1", "Heartbeat", {})
        expect(page.line("hb-1").locator(".o")).to_contain_text("answered in")
        lines = page.page.locator("#log > li.x summary").all_inner_texts()

        reloaded = open_page(url)  # a reload: the replay renders the same lines
        expect(reloaded.line("hb-1")).to_have_count(1)
        assert reloaded.page.locator("#log > li.x summary").all_inner_texts() == lines

        charger.close(4000, "going for maintenance")
        gone = page.page.locator("#log > li.ev-disconnected")
        expect(gone).to_have_text(re.compile("close code 4000, “going for maintenance”"))
        expect(page.line("hb-1")).to_be_visible()  # its lines stay
        assert page.page.locator("#log > li.x summary").all_inner_texts() == lines

        later = open_page(url)  # a reload after the charger left: its last connection
        expect(later.line("hb-1")).to_have_count(1)
        assert later.page.locator("#log > li.x summary").all_inner_texts() == lines
        expect(later.page.locator("#log > li.ev-disconnected")).to_have_text(
            re.compile("close code 4000, “going for maintenance”")
        )
        expect(later.page.locator("#status")).to_contain_text("Offline since")
    finally:
        charger.__exit__()


def test_the_log_is_one_tab_stop_with_arrow_keys_enter_and_escape(
    server: RunningServer, open_page: Any
) -> None:
    from playwright.sync_api import expect

    with RawCharger(server.charger_url("CP-K")) as charger:
        page = open_page(f"{server.http}/chargers/CP-K")
        p = page.page
        boot(charger)
        charger.heartbeats(20, "k-")
        expect(page.line("k-19")).to_have_count(1)
        keyboard = p.keyboard

        p.locator("#log-problems").focus()
        keyboard.press("Tab")  # into the log: its one stop, the newest line
        newest = page.line("k-19").locator("summary")
        expect(newest).to_be_focused()
        keyboard.press("Tab")  # and out again at once: no stop per line
        assert p.evaluate("document.activeElement.closest('#log') === null")
        keyboard.press("Shift+Tab")
        expect(newest).to_be_focused()

        keyboard.press("ArrowUp")
        keyboard.press("ArrowUp")
        line = page.line("k-17")
        expect(line.locator("summary")).to_be_focused()
        keyboard.press("Enter")
        expect(line.locator(".b")).to_contain_text("Exact frame")
        expect(line.locator("details")).to_have_attribute("open", "")
        keyboard.press("Escape")
        expect(line.locator("details")).not_to_have_attribute("open", "")
        expect(line.locator("summary")).to_be_focused()
        keyboard.press("Home")
        expect(p.locator("#log > li").first).to_be_focused()
        keyboard.press("End")
        expect(newest).to_be_focused()
        keyboard.press(" ")
        expect(page.line("k-19").locator(".b")).to_contain_text("Exact frame")
        page.shot("log-keyboard-1280x800")


def test_copy_as_curl_send_again_and_edit_and_send(server: RunningServer, open_page: Any) -> None:
    from playwright.sync_api import expect

    with RawCharger(server.charger_url("CP-C")) as charger:
        page = open_page(
            f"{server.http}/chargers/CP-C", permissions=["clipboard-read", "clipboard-write"]
        )
        p = page.page
        boot(charger)
        answer = httpx.post(
            f"{server.http}/api/chargers/CP-C/calls/Reset",
            json={"type": "Soft"},
            headers={"Origin": server.http},
        )
        line = page.line(answer.headers["X-Unique-Id"])
        expect(line.locator(".o")).to_contain_text("answered in")
        line.locator("summary").click()
        call = line.locator(".fr-out")
        call.get_by_role("button", name="Copy JSON").click()
        expect(call).to_contain_text("Copied")
        copied = json.loads(p.evaluate("navigator.clipboard.readText()"))
        assert copied[0] == 2
        assert copied[2:] == ["Reset", {"type": "Soft"}]

        call.get_by_role("button", name="Copy as curl").click()
        command = p.evaluate("navigator.clipboard.readText()")
        assert command.startswith(f"curl -X POST '{server.http}/api/chargers/CP-C/calls/Reset'")
        # The command does what the line did: the charger gets a Reset again.
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=20)
        assert json.loads(done.stdout) == {"status": "Accepted"}, done
        assert [frame[2:] for frame in charger.calls] == [["Reset", {"type": "Soft"}]] * 2

        line.get_by_role("button", name="Send again").click()
        expect(line.locator(".b")).to_contain_text("Answered: see the new line")
        assert len(charger.calls) == 3
        expect(p.locator("#log > li.x.out")).to_have_count(3)

        p.evaluate(
            "document.addEventListener('ocpplab:edit-call', e => { window.edited = e.detail })"
        )
        line.get_by_role("button", name="Edit and send").click()
        assert p.evaluate("window.edited") == {"action": "Reset", "payload": {"type": "Soft"}}


def test_the_log_on_a_phone(server: RunningServer, open_page: Any) -> None:
    from playwright.sync_api import expect

    with RawCharger(server.charger_url("CP-M")) as charger:
        page = open_page(f"{server.http}/chargers/CP-M", viewport=PHONE)
        boot(charger)
        charger.heartbeats(30, "m-")
        charger.call("bad-1", "StatusNotification", {"connectorId": "one"})
        charger.send_text("not json")
        p = page.page
        expect(p.locator("#log > li.invalid")).to_contain_text("invalid frame")
        tab = p.locator("#tab-log")  # the page's Log tab, on a phone
        if tab.count() and tab.is_visible():
            tab.click()
        p.locator("#log-pane").scroll_into_view_if_needed()
        page.line("bad-1").locator("summary").click()
        expect(page.line("bad-1").locator(".violations").first).to_be_visible()
        page.shot("log-phone-390x844")
        overflow = p.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, "the page scrolls sideways on a phone"

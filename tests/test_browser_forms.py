"""Forms in a real browser: every problem at once, focus on the summary, fix and send.

Debian's Chromium driven by Playwright; the server runs in its own thread
(`serve_in_thread`), the charger (the `ocpp` package's ChargePoint) on its own event loop in
another thread, so Playwright's sync API stays free.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import call_result

from ocpplab.config import Settings
from tests.support import CHROMIUM_ARGS, Charger, chromium_path, ocpp_charger, serve_in_thread

pytestmark = pytest.mark.browser

SHOTS = "/tmp/shots"


class AvailabilityCharger(Charger):
    """Answers ChangeAvailability with Accepted and remembers what it was asked."""

    asked: list[dict[str, Any]]

    @on("ChangeAvailability")
    def on_change_availability(self, **payload: Any) -> call_result.ChangeAvailability:
        self.asked.append(payload)
        return call_result.ChangeAvailability(status="Accepted")


class ChargerThread:
    """A charger connected from its own thread and event loop, for as long as the block."""

    def __init__(self, url: str, identity: str) -> None:
        self.url, self.identity = url, identity
        self.asked: list[dict[str, Any]] = []
        self.connected = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by __exit__, not lost in the thread
            self.error = exc
            self.connected.set()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with ocpp_charger(
            self.url, self.identity, charger_class=AvailabilityCharger
        ) as charger:
            charger.asked = self.asked
            self.connected.set()
            await self._stop.wait()

    def __enter__(self) -> ChargerThread:
        self._thread.start()
        assert self.connected.wait(10), "the charger did not connect"
        if self.error:
            raise self.error
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        if self.error and kind is None:
            raise self.error


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


def open_operations(browser: Any, url: str, **context: Any) -> Any:
    """The charger page, with the Operations panel in view (a tab, where there are tabs)."""
    from playwright.sync_api import expect

    page = browser.new_context(**context).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    page.goto(url)
    expect(page.locator("#live-status")).to_have_text("Live updates: on")
    tab = page.locator("#tab-operations")
    if tab.count() and tab.is_visible():
        tab.click()
    return page


@pytest.mark.parametrize(
    "viewport", [{"width": 1280, "height": 800}, {"width": 390, "height": 844}], ids=str
)
def test_a_bad_operation_form_shows_every_problem_at_once_then_sends(
    browser: Any, viewport: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    os.makedirs(SHOTS, exist_ok=True)
    size = f"{viewport['width']}x{viewport['height']}"
    with (
        serve_in_thread(Settings(call_timeout=5)) as server,
        ChargerThread(server.charger_url("CP-F"), "CP-F") as charger,
    ):
        page = open_operations(browser, f"{server.http}/chargers/CP-F", viewport=viewport)
        page.get_by_role("button", name="ChangeAvailability", exact=True).click()
        connector = page.locator("#op-field-connectorId")
        kind = page.locator("#op-field-type")
        expect(connector).to_have_value("0")
        # Help from the specification's meaning, tied to the field.
        expect(page.locator("#op-field-connectorId-help")).to_contain_text("whole charger")
        expect(connector).to_have_attribute("aria-describedby", "op-field-connectorId-help")

        connector.fill("abc")  # cannot be read as a number
        kind.select_option("")  # a required value left out: a schema violation
        page.get_by_role("button", name="Send ChangeAvailability").click()

        summary = page.locator("#op-error-summary")
        expect(summary).to_contain_text("2 problems to fix")
        expect(summary).to_be_focused()  # the keyboard and screen reader land on it
        expect(page.locator("#op-field-connectorId-error")).to_have_text("must be a whole number")
        expect(page.locator("#op-field-type-error")).to_contain_text("required")
        expect(connector).to_have_attribute("aria-invalid", "true")
        expect(kind).to_have_attribute("aria-invalid", "true")
        expect(connector).to_have_value("abc")  # nothing typed is lost
        expect(page.locator("#op-feedback")).to_contain_text("Not sent.")
        page.screenshot(path=f"{SHOTS}/forms-errors-{size}.png")

        # A link of the summary takes the person to the field.
        summary.get_by_role("link", name="type").click()
        expect(kind).to_be_focused()
        kind.select_option("Operative")
        connector.fill("1")
        page.get_by_role("button", name="Send ChangeAvailability").click()
        expect(page.locator("#op-feedback")).to_contain_text("ChangeAvailability sent as")
        expect(summary).to_have_count(0)
        expect(page.locator("#calls .call-status").first).to_have_text("Accepted")
        assert page.errors == []
    assert charger.asked == [{"connector_id": 1, "type": "Operative"}]


def test_optional_groups_open_on_demand_and_look_right(browser: Any) -> None:
    from playwright.sync_api import expect

    os.makedirs(SHOTS, exist_ok=True)
    with (
        serve_in_thread(Settings(call_timeout=5)) as server,
        ChargerThread(server.charger_url("CP-G"), "CP-G"),
    ):
        page = open_operations(
            browser, f"{server.http}/chargers/CP-G", viewport={"width": 1280, "height": 800}
        )
        page.get_by_role("button", name="RemoteStartTransaction", exact=True).click()
        group = page.locator("#op-field-chargingProfile")
        expect(group.locator("summary")).to_have_text("chargingProfile (optional)")
        stack = page.locator("#op-field-chargingProfile-stackLevel")
        expect(stack).to_be_hidden()  # folded
        page.screenshot(path=f"{SHOTS}/forms-optional-folded.png")
        group.locator("summary").click()
        expect(stack).to_be_visible()
        stack.fill("high")
        page.get_by_role("button", name="Send RemoteStartTransaction").click()
        expect(page.locator("#op-error-summary")).to_be_focused()
        expect(stack).to_be_visible()  # the group stays open: it holds a problem
        expect(page.locator("#op-field-chargingProfile-stackLevel-error")).to_have_text(
            "must be a whole number"
        )
        page.locator("#op-form").screenshot(path=f"{SHOTS}/forms-optional-errors.png")
        assert page.errors == []


def test_a_bad_answer_form_shows_every_problem_at_once_then_saves(browser: Any) -> None:
    from playwright.sync_api import expect

    os.makedirs(SHOTS, exist_ok=True)
    with serve_in_thread(Settings(call_timeout=5)) as server:
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.http}/chargers/CP-H")
        expect(page.locator("#live-status")).to_have_text("Live updates: on")
        page.get_by_role("button", name="Configure BootNotification").click()
        editor = page.locator("#rule-editor-BootNotification")
        editor.get_by_label("custom").check()
        editor.locator("summary", has_text="Payload").click()
        status = page.locator("#rf-BootNotification-field-status")
        interval = page.locator("#rf-BootNotification-field-interval")
        expect(page.locator("#rf-BootNotification-field-status-help")).to_contain_text("Pending")
        status.select_option("")
        interval.fill("soon")
        editor.get_by_role("button", name="Save", exact=True).first.click()

        summary = page.locator("#rf-BootNotification-error-summary")
        expect(summary).to_contain_text("2 problems to fix")
        expect(summary).to_be_focused()
        expect(page.locator("#rf-BootNotification-field-status-error")).to_contain_text("required")
        expect(page.locator("#rf-BootNotification-field-interval-error")).to_have_text(
            "must be a whole number"
        )
        expect(interval).to_have_value("soon")
        page.screenshot(path=f"{SHOTS}/forms-configure-errors.png")

        status.select_option("Pending")
        interval.fill("15")
        editor.get_by_role("button", name="Save", exact=True).first.click()
        expect(editor).to_contain_text("Saved: BootNotification is now answered with custom")
        expect(summary).to_have_count(0)
        assert errors == []

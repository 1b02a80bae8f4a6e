"""Operations in a real browser: Debian's Chromium driven by Playwright, a real charger.

The server runs in its own thread (`serve_in_thread`); the charger is the `ocpp` package's
ChargePoint on its own event loop in another thread, so Playwright's sync API stays free.
"""

from __future__ import annotations

import asyncio
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


class ResetCharger(Charger):
    """Answers Reset with Accepted and remembers which type it was asked for."""

    resets: list[str]

    @on("Reset")
    def on_reset(self, type: str) -> call_result.Reset:
        self.resets.append(type)
        return call_result.Reset(status="Accepted")


class ChargerThread:
    """A charger connected from its own thread and event loop, for as long as the block."""

    def __init__(self, url: str, identity: str) -> None:
        self.url, self.identity = url, identity
        self.resets: list[str] = []
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
        async with ocpp_charger(self.url, self.identity, charger_class=ResetCharger) as charger:
            charger.resets = self.resets
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


def open_charger_page(browser: Any, url: str, **context: Any) -> Any:
    from playwright.sync_api import expect

    page = browser.new_context(**context).new_page()
    page.goto(url)
    expect(page.locator("#live-status")).to_have_text("Live updates: on")
    expect(page.locator("#status")).to_contain_text("Connected")
    page.get_by_role("tab", name="Operations").click()
    return page


def test_send_reset_soft_from_the_page_and_see_the_answer(browser: Any) -> None:
    from playwright.sync_api import expect

    with (
        serve_in_thread(Settings(call_timeout=5)) as server,
        ChargerThread(server.charger_url("CP-B"), "CP-B") as charger,
    ):
        page = open_charger_page(browser, f"{server.http}/chargers/CP-B")
        page.get_by_role("button", name="Reset", exact=True).click()
        expect(page.locator("#op-field-type")).to_have_value("Soft")
        page.get_by_role("button", name="Send Reset").click()

        feedback = page.locator("#op-feedback")
        expect(feedback).to_contain_text("Reset sent as")
        unique_id = feedback.locator("code").inner_text()
        row = page.locator(f'#calls li[data-unique-id="{unique_id}"]')
        expect(row).to_contain_text("Answered in")
        expect(row.locator(".call-status")).to_have_text("Accepted")
        # the outcome shows right under the Send button, in view
        outcome = page.locator("#op-feedback .op-outcome")
        expect(outcome).to_contain_text("Answered in")
        expect(outcome).to_contain_text("Accepted")
        expect(outcome).to_be_in_viewport()
        line = page.locator(f'#log li[data-unique-id="{unique_id}"]')
        expect(line).to_contain_text("Reset")
    assert charger.resets == ["Soft"]


def test_keyboard_only_on_a_phone_fix_a_missing_value_and_send(browser: Any) -> None:
    from playwright.sync_api import expect

    with (
        serve_in_thread(Settings(call_timeout=5)) as server,
        ChargerThread(server.charger_url("CP-K"), "CP-K") as charger,
    ):
        page = open_charger_page(
            browser, f"{server.http}/chargers/CP-K", viewport={"width": 390, "height": 844}
        )
        keyboard = page.keyboard
        page.get_by_role("button", name="Reset", exact=True).focus()
        keyboard.press("Enter")
        expect(page.locator("#op-form-title")).to_be_focused()  # the form takes the focus

        keyboard.press("Tab")
        type_field = page.locator("#op-field-type")
        expect(type_field).to_be_focused()
        keyboard.press("ArrowUp")
        keyboard.press("ArrowUp")
        expect(type_field).to_have_value("")  # "— choose —": a required value left out
        for _ in range(4):  # past "Send anyway", "Expert" and "Edit as JSON"
            keyboard.press("Tab")
        expect(page.locator("#op-send")).to_be_focused()
        keyboard.press("Enter")

        expect(page.locator("#op-field-type-error")).to_contain_text("required")
        expect(page.locator("#op-feedback")).to_contain_text("Not sent.")
        # the focus goes to the list of the form's problems (templates/_fields.html), never <body>
        expect(page.locator("#op-error-summary")).to_be_focused()

        type_field.focus()
        keyboard.press("ArrowDown")
        keyboard.press("ArrowDown")
        expect(type_field).to_have_value("Soft")
        page.locator("#op-send").focus()
        keyboard.press("Enter")
        expect(page.locator("#op-feedback")).to_contain_text("Reset sent as")
        expect(page.locator("#calls .call-status")).to_have_text("Accepted")

        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, "the page scrolls sideways on a phone"
    assert charger.resets == ["Soft"]

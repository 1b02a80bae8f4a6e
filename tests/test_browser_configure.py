"""A person configures answers in a real Chromium; a real charger receives them."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from typing import Any

import pytest
from ocpp.v16 import call

from ocpplab.config import Settings
from tests.support import CHROMIUM_ARGS, RunningServer, chromium_path, ocpp_charger, serve_in_thread

pytestmark = pytest.mark.browser


@pytest.fixture
def page() -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with serve_in_thread(Settings()) as running:
        yield running


def boot(server: RunningServer, identity: str) -> Any:
    async def run() -> Any:
        async with ocpp_charger(server.charger_url(identity), identity) as charger:
            return await charger.call(
                call.BootNotification(charge_point_model="M", charge_point_vendor="V")
            )

    # Playwright's sync API owns this thread's event loop; the charger gets its own thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result(timeout=20)


def test_configure_boot_pending_with_interval_15(page: Any, server: RunningServer) -> None:
    page.goto(f"{server.http}/chargers/CP-9")
    page.get_by_role("button", name="Configure BootNotification").click()
    editor = page.locator("#rule-editor-BootNotification")
    editor.get_by_label("custom").check()
    editor.locator("summary", has_text="Payload").click()
    editor.get_by_label("status").select_option("Pending")
    editor.get_by_label("interval").fill("15")
    editor.get_by_role("button", name="Save", exact=True).first.click()
    page.get_by_text("Saved: BootNotification is now answered with custom").wait_for()
    # the rule list, updated live, says the same
    page.locator("#rule-summary-BootNotification", has_text="Pending").wait_for()

    result = boot(server, "CP-9")
    assert (result.status, result.interval) == ("Pending", 15)


def test_a_schema_error_is_shown_next_to_the_field(page: Any, server: RunningServer) -> None:
    page.goto(f"{server.http}/chargers/CP-9")
    page.get_by_role("button", name="Configure BootNotification").click()
    editor = page.locator("#rule-editor-BootNotification")
    editor.get_by_label("custom").check()
    editor.locator("summary", has_text="Payload").click()
    editor.get_by_label("interval").fill("fifteen")
    editor.get_by_role("button", name="Save", exact=True).first.click()
    error = page.locator("#rf-BootNotification-field-interval-error")
    error.wait_for()
    assert error.inner_text() == "must be a whole number"
    assert editor.get_by_label("interval").input_value() == "fifteen"
    assert boot(server, "CP-9").status == "Accepted"  # nothing was saved

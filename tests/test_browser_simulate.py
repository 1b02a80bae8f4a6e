"""A person without a charger presses "Simulate a charger" and watches a real session."""

from __future__ import annotations

import re

import pytest

from ocpplab.config import Settings
from tests.support import CHROMIUM_ARGS, chromium_path, serve_in_thread


@pytest.mark.browser
def test_simulate_a_charger_from_the_landing_page() -> None:
    executable = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    with serve_in_thread(Settings(call_timeout=2.0)) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(server.http + "/")
            page.get_by_role("button", name="Simulate a charger").click()
            page.wait_for_url(re.compile(r"/chargers/sim-[0-9a-f]{6}$"))
            log = page.locator("#log")
            expect(log).to_contain_text("BootNotification", timeout=5000)
            expect(log).to_contain_text("StatusNotification", timeout=5000)
            expect(page.locator(".simulated .pill")).to_have_text("simulated")

            page.get_by_role("button", name="Stop simulated charger").click()
            expect(page.get_by_role("button", name="Stop simulated charger")).to_have_count(0)
            assert server.app.state.simulations.running == {}
        finally:
            browser.close()

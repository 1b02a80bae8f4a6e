"""The Checks tab in a real Chromium: pick checks, run them on a simulated charger from the
dashboard, answer a person's question, read the verdicts and open the report."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from ocpplab.config import Settings
from tests.support import CHROMIUM_ARGS, RunningServer, chromium_path, serve_in_thread

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with serve_in_thread(Settings(call_timeout=10)) as running:
        yield running


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


def simulated_page(browser: Any, server: RunningServer, viewport: dict[str, int]) -> Any:
    page = browser.new_page(viewport=viewport)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.http + "/")
    page.get_by_role("button", name="Simulate a charger").click()
    page.wait_for_url(re.compile(r"/chargers/sim-[0-9a-f]{6}$"))
    page.errors = errors
    return page


def test_checks_run_on_a_simulated_charger_from_its_page(
    browser: Any, server: RunningServer, tmp_path: Any
) -> None:
    from playwright.sync_api import expect

    page = simulated_page(browser, server, DESKTOP)
    expect(page.locator("#log")).to_contain_text("BootNotification", timeout=10_000)
    page.get_by_role("tab", name="Checks").click()
    panel = page.locator("#checks-panel")
    expect(panel.get_by_role("heading", name=re.compile("Checks"))).to_be_visible()
    # Grouped by profile, each check with its purpose; person checks are marked.
    expect(panel.locator("fieldset legend").first).to_contain_text("Core")
    assert panel.locator("input[name=check]").count() >= 30
    expect(panel.locator("li", has_text="TC_003_CS").locator(".pill")).to_have_text("person")
    for box in panel.locator("input[name=check]").all():
        box.set_checked(False)
    panel.get_by_label(re.compile("TC_061_CS")).check()
    panel.get_by_label(re.compile("TC_003_CS")).check()  # the simulated charger acts itself
    panel.get_by_role("button", name="Run checks").click()
    expect(panel.locator(".check-summary")).to_contain_text("Finished", timeout=120_000)
    expect(panel.locator(".check-summary")).to_contain_text("2 passed · 0 failed")
    result = panel.locator(".check-result", has_text="TC_003_CS")
    expect(result.locator(".verdict")).to_have_text("passed")
    result.locator("summary").click()
    expect(result.locator(".check-steps")).to_contain_text("Plug the cable into connector 1")
    evidence = result.locator(".check-steps a.evidence").first  # the frames, by unique id
    uid = evidence.get_attribute("data-unique-id")
    evidence.click()  # shows that frame's line in the log, opened
    line = page.locator(f'#log > li[data-unique-id="{uid}"]')
    expect(line.locator("details")).to_have_attribute("open", "")
    expect(line).to_be_in_viewport()
    page.screenshot(path="/tmp/shots/checks-desktop.png")
    with page.context.expect_page() as opened:
        panel.get_by_role("link", name="Printable report").click()
    report = opened.value
    report.wait_for_load_state()
    expect(report.locator("h1")).to_contain_text("OCPP 1.6 checks of sim-")
    expect(report.locator("table.facts")).to_contain_text("2 passed")
    assert page.errors == []


def test_a_persons_question_is_answered_on_the_page(browser: Any, server: RunningServer) -> None:
    from playwright.sync_api import expect

    page = simulated_page(browser, server, PHONE)
    identity = page.url.rsplit("/", 1)[1]
    expect(page.locator("#live-status")).to_have_text("Live updates: on", timeout=10_000)
    runs = server.app.state.check_runs
    runs.actors = lambda identity: None  # nobody acts for the charger: the person must
    page.get_by_role("tab", name="Checks").click()
    panel = page.locator("#checks-panel")
    expect(panel.locator("fieldset legend").first).to_contain_text("Core")  # fetched
    for box in panel.locator("input[name=check]").all():
        box.set_checked(False)
    panel.get_by_label(re.compile("TC_004_2_CS")).check()
    panel.get_by_role("button", name="Run checks").click()
    prompt = panel.locator(".check-prompt")
    expect(prompt).to_contain_text("Your turn", timeout=30_000)
    expect(prompt).to_contain_text("card")
    assert panel.locator(".check-prompt").bounding_box()["width"] <= PHONE["width"]
    prompt.get_by_role("button", name="Can't do this").click()
    expect(panel.locator(".check-summary")).to_contain_text("Finished", timeout=60_000)
    result = panel.locator(".check-result", has_text="TC_004_2_CS")
    expect(result.locator(".verdict")).to_have_text("not applicable")
    expect(result.locator(".check-reason")).to_contain_text("they could not")
    assert identity.startswith("sim-")
    assert page.errors == []

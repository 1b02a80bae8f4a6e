"""The charger page's layout in a real Chromium: panes that hold still, tabs, state at a
glance, held-call alerts and keyboard-only use, with real chargers over real sockets."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from ocpplab.config import Settings
from tests.support import CHROMIUM_ARGS, RunningServer, chromium_path, serve_in_thread

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with serve_in_thread(Settings(call_timeout=5, manual_timeout=30)) as running:
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


class Page:
    """A page with its console errors collected, to assert there were none."""

    def __init__(self, browser: Any, viewport: dict[str, int]) -> None:
        self.page = browser.new_page(viewport=viewport)
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _console(self, message: Any) -> None:
        # A refused form (422) is what a failed Save is: Chromium and htmx log it as an error.
        if message.type == "error" and "422" not in message.text:
            self.errors.append(message.text)

    def open(self, server: RunningServer, identity: str) -> Any:
        from playwright.sync_api import expect

        self.page.goto(f"{server.http}/chargers/{identity}")
        expect(self.page.locator("#live-status")).to_have_text("Live updates: on")
        return self.page


class RawCharger:
    """A charger speaking OCPP-J by hand from its own thread: boots, then sends `rate`
    Heartbeats a second until stopped; or sends one call and waits for its answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[Any] = []
        self.stop = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(1)
        self.future: concurrent.futures.Future[Any] | None = None

    async def _run(self, calls: list[tuple[str, dict[str, Any]]], rate: float) -> None:
        async with websockets.connect(self.url, subprotocols=["ocpp1.6"]) as socket:  # type: ignore[list-item]
            for number, (action, payload) in enumerate(calls):
                await socket.send(json.dumps([2, f"c{number}", action, payload]))
                async with asyncio.timeout(40):
                    self.answers.append(json.loads(await socket.recv()))
            number = 0
            while rate and not self.stop.is_set():
                number += 1
                await socket.send(json.dumps([2, f"h{number}", "Heartbeat", {}]))
                self.answers.append(json.loads(await socket.recv()))
                await asyncio.sleep(1 / rate)

    def start(self, calls: list[tuple[str, dict[str, Any]]], rate: float = 0) -> RawCharger:
        self.future = self._pool.submit(asyncio.run, self._run(calls, rate))
        return self

    def finish(self, timeout: float = 45) -> None:
        self.stop.set()
        assert self.future is not None
        self.future.result(timeout=timeout)
        self._pool.shutdown()


BOOT = ("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})


def top_of(page: Any, selector: str) -> float:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    return float(box["y"])


def test_the_open_editor_stays_in_view_while_20_frames_a_second_arrive(
    browser: Any, server: RunningServer
) -> None:
    from playwright.sync_api import expect

    holder = Page(browser, DESKTOP)
    page = holder.open(server, "CP-F")
    charger = RawCharger(server.charger_url("CP-F")).start([BOOT], rate=20)
    expect(page.locator("#status")).to_contain_text("Connected")
    page.get_by_role("button", name="Configure StopTransaction").click()
    delay = page.locator("#rf-StopTransaction-delay")
    delay.scroll_into_view_if_needed()
    delay.click()
    delay.fill("1.5")
    before = top_of(page, "#rf-StopTransaction-delay")
    lines = page.locator("#log > li").count()
    try:
        for _ in range(8):
            page.wait_for_timeout(500)
            assert abs(top_of(page, "#rf-StopTransaction-delay") - before) < 2
            expect(delay).to_be_focused()
            expect(delay).to_be_in_viewport()
        # the frames did arrive meanwhile (generous: 20/s for 4 s on a loaded machine)
        assert page.locator("#log > li").count() >= lines + 20
        page.keyboard.type("5")
        assert delay.input_value() == "1.55"  # typing still goes into the field in view
        overflow = page.evaluate("document.scrollingElement.scrollHeight - window.innerHeight")
        assert overflow <= 0, "the page itself scrolls: only its panes should"
    finally:
        charger.finish()
    assert holder.errors == [], holder.errors


def test_a_phone_user_reaches_operations_in_one_tap(browser: Any, server: RunningServer) -> None:
    from playwright.sync_api import expect

    holder = Page(browser, PHONE)
    page = holder.open(server, "CP-P")
    tab = page.get_by_role("tab", name="Operations")
    expect(tab).to_be_in_viewport()
    expect(page.get_by_role("tab", name="Log")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#controls")).to_be_hidden()  # nothing lies over the log
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")
    reset = page.get_by_role("button", name="Reset", exact=True)
    expect(reset).to_be_in_viewport()
    expect(page.locator("#log-panel")).to_be_hidden()
    assert page.url.endswith("#operations")
    page.reload()  # the chosen tab is kept in the URL
    expect(page.get_by_role("tab", name="Operations")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("button", name="Reset", exact=True)).to_be_in_viewport()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    assert holder.errors == [], holder.errors


def test_rules_strip_and_boot_state_show(browser: Any, server: RunningServer) -> None:
    from playwright.sync_api import expect

    holder = Page(browser, DESKTOP)
    page = holder.open(server, "CP-R")
    strip = page.locator("#rules-strip")
    expect(strip).to_contain_text("All calls get default answers")
    page.get_by_role("button", name="Configure BootNotification").click()
    preset = page.get_by_role("button", name="Pending, interval 15 s")
    preset.click()
    expect(page.locator("#rule-editor-BootNotification")).to_contain_text("Saved")
    expect(page.get_by_role("button", name="Pending, interval 15 s")).to_be_focused()
    expect(strip).to_contain_text("Boot → Pending 15 s")

    charger = RawCharger(server.charger_url("CP-R")).start([BOOT], rate=1)
    try:
        glance = page.locator("#glance")
        expect(glance).to_contain_text("Boot answered Pending")
        expect(glance).to_be_visible()
        expect(page.locator("#status")).to_contain_text("Connected since")
    finally:
        charger.finish()
    assert charger.answers[0][2]["status"] == "Pending"
    expect(page.locator("#status")).to_contain_text("Offline since")
    iso = re.compile(r"\d{4}-\d\d-\d\dT\d\d")
    expect(page.locator(".charger-head")).not_to_contain_text(iso)  # no raw ISO time
    assert holder.errors == [], holder.errors


def test_a_held_call_alerts_off_screen_and_is_answered_by_keyboard(
    browser: Any, server: RunningServer
) -> None:
    from playwright.sync_api import expect

    holder = Page(browser, DESKTOP)
    page = holder.open(server, "CP-H")
    page.get_by_role("button", name="Configure Authorize").click()
    page.locator("#rule-editor-Authorize").get_by_label("manual").check()
    page.locator("#rf-Authorize-save").click()
    expect(page.locator("#rule-editor-Authorize")).to_contain_text("Saved")

    authorize = ("Authorize", {"idTag": "TAG-1"})
    charger = RawCharger(server.charger_url("CP-H")).start([BOOT, authorize])
    alert = page.locator("#held-alert")
    expect(alert).to_contain_text("Authorize waits for your answer")
    expect(alert).to_be_in_viewport()  # the Configure tab is open: the card is not
    expect(page.locator("#held .held-card")).to_be_hidden()
    assert page.title() == "(1) CP-H · ocpplab"

    alert.get_by_role("link", name="Answer").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("tab", name="Calls")).to_have_attribute("aria-selected", "true")
    field = page.locator("#held .held-card textarea")
    expect(field).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#held .held-card button[value=payload]")).to_be_focused()
    page.keyboard.press("Enter")
    charger.finish()
    assert charger.answers[1][2]["idTagInfo"]["status"] == "Accepted"
    expect(alert).to_be_hidden()
    expect(page).to_have_title("CP-H · ocpplab")
    assert holder.errors == [], holder.errors


def test_a_held_card_proposes_the_time_it_is_shown(browser: Any, server: RunningServer) -> None:
    from playwright.sync_api import expect

    holder = Page(browser, DESKTOP)
    page = holder.open(server, "CP-T")
    page.get_by_role("button", name="Configure Heartbeat").click()
    page.locator("#rule-editor-Heartbeat").get_by_label("manual").check()
    page.locator("#rf-Heartbeat-save").click()
    expect(page.locator("#rule-editor-Heartbeat")).to_contain_text("Saved")
    charger = RawCharger(server.charger_url("CP-T")).start([BOOT, ("Heartbeat", {})])
    expect(page.locator("#held-alert")).to_contain_text("Heartbeat waits")
    page.wait_for_timeout(2500)  # the call is older now than the card's answer will be
    page.locator("#held-alert a").click()
    proposal = json.loads(page.locator("#held .held-card textarea").input_value())
    shown = page.evaluate("Date.now()")
    answered = page.evaluate(f"Date.parse({json.dumps(proposal['currentTime'])})")
    assert shown - answered < 1500, "currentTime is when the call arrived, not now"
    page.locator("#held .held-card button[value=payload]").click()
    charger.finish()
    assert holder.errors == [], holder.errors


def test_keyboard_only_start_configure_and_send(browser: Any, server: RunningServer) -> None:
    from playwright.sync_api import expect

    holder = Page(browser, DESKTOP)
    page = holder.page
    keyboard = page.keyboard
    page.goto(server.http + "/")
    keyboard.type("CP-KB")  # the identity box has the focus
    keyboard.press("Enter")
    page.wait_for_url(f"{server.http}/chargers/CP-KB")
    expect(page.locator("#live-status")).to_have_text("Live updates: on")
    charger = RawCharger(server.charger_url("CP-KB")).start([BOOT], rate=2)
    try:
        expect(page.locator("#status")).to_contain_text("Connected")
        keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to the controls")).to_be_focused()
        keyboard.press("Enter")
        expect(page.get_by_role("tab", name="Configure")).to_be_focused()

        def tab_to(locator: Any, limit: int = 40) -> None:
            for _ in range(limit):
                keyboard.press("Tab")
                if locator.evaluate("el => el === document.activeElement"):
                    return
            raise AssertionError(f"{locator} is not reached by Tab")

        opener = page.get_by_role("button", name="Configure DataTransfer")
        tab_to(opener, 12)
        keyboard.press("Enter")
        editor = page.locator("#rule-editor-DataTransfer")
        expect(editor).to_be_visible()
        tab_to(page.locator("#rf-DataTransfer-preset-1"), 5)
        keyboard.press("Escape")  # closes the editor, the focus back on its opener
        expect(editor).to_have_count(0)
        expect(opener).to_be_focused()

        keyboard.press("Enter")
        tab_to(page.locator("#rf-DataTransfer-delay"), 60)
        keyboard.type("2")
        tab_to(page.locator("#rf-DataTransfer-save"), 5)
        keyboard.press("Enter")
        expect(editor).to_contain_text("Saved")
        expect(page.locator("#rf-DataTransfer-save")).to_be_focused()
        expect(page.locator("#rules-strip")).to_contain_text("DataTransfer → delay 2 s")

        # A failed Save keeps the focus in the editor
        delay = page.locator("#rf-DataTransfer-delay")
        delay.focus()
        keyboard.press("Control+A")
        keyboard.type("soon")
        tab_to(page.locator("#rf-DataTransfer-save"), 5)
        keyboard.press("Enter")
        expect(page.locator("#rf-DataTransfer-delay-error")).to_be_visible()
        expect(page.locator("#rule-editor-DataTransfer :focus")).to_have_count(1)

        # An operation: to the Operations tab by arrow key, its form and Send by Tab
        page.get_by_role("tab", name="Configure").focus()
        keyboard.press("ArrowRight")
        expect(page.get_by_role("tab", name="Operations")).to_be_focused()
        expect(page.get_by_role("tab", name="Operations")).to_have_attribute(
            "aria-selected", "true"
        )
        tab_to(page.get_by_role("button", name="ClearCache", exact=True), 10)
        keyboard.press("Enter")
        expect(page.locator("#op-form-title")).to_be_focused()
        tab_to(page.locator("#op-send"), 10)
        keyboard.press("Enter")
        outcome = page.locator("#op-feedback .op-outcome")
        # this charger answers no call of the central system: the line under Send says so
        expect(outcome).to_contain_text("No answer in time", timeout=15000)
        expect(outcome).to_be_in_viewport()
    finally:
        charger.finish()
    assert holder.errors == [], holder.errors


def test_a_refused_start_leaves_a_url_that_does_not_post_again(
    browser: Any, server: RunningServer
) -> None:
    from playwright.sync_api import expect

    holder = Page(browser, DESKTOP)
    page = holder.page
    page.goto(server.http + "/")
    page.get_by_label("Charger identity").fill(f"ws://127.0.0.1:{server.port}/ocpp/")
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#identity-error")).to_contain_text("central system's URL")
    assert "/start" not in page.url
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.method))
    page.reload()
    expect(page.locator("#identity-error")).to_contain_text("central system's URL")
    assert requests[0] == "GET"
    assert holder.errors == [], holder.errors


def test_the_focus_stays_put_through_a_live_update(browser: Any, server: RunningServer) -> None:
    from playwright.sync_api import expect

    watcher = Page(browser, DESKTOP)
    page = watcher.open(server, "CP-L")
    policy = page.locator("#validation-policy")
    policy.focus()
    other = Page(browser, DESKTOP).open(server, "CP-L")  # someone else changes a rule
    other.get_by_role("button", name="Configure BootNotification").click()
    other.get_by_role("button", name="Rejected, interval 60 s").click()
    # the live update redraws the rules and the policy form around the focused select
    expect(page.locator("#rules-strip")).to_contain_text("Boot → Rejected 60 s")
    expect(policy).to_be_focused()
    assert watcher.errors == [], watcher.errors


def test_edit_and_send_from_the_log_opens_the_operation_form(
    browser: Any, server: RunningServer
) -> None:
    from playwright.sync_api import expect

    holder = Page(browser, DESKTOP)
    page = holder.open(server, "CP-E")
    page.evaluate(
        """document.dispatchEvent(new CustomEvent("ocpplab:edit-call",
           {detail: {action: "Reset", payload: {type: "Hard"}}}))"""
    )
    expect(page.get_by_role("tab", name="Operations")).to_have_attribute("aria-selected", "true")
    box = page.locator("#op-json")
    expect(box).to_be_focused()
    assert json.loads(box.input_value()) == {"type": "Hard"}
    expect(page.locator("#op-form-title")).to_contain_text("Reset")
    assert holder.errors == [], holder.errors


def test_without_scripts_the_sections_stack(browser: Any, server: RunningServer) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport=PHONE, java_script_enabled=False)
    page.goto(f"{server.http}/chargers/CP-N")
    expect(page.locator("[role=tablist]")).to_be_hidden()
    for name in ("#log-pane", "#configure", "#operations", "#calls", "#state"):
        expect(page.locator(name)).to_be_attached()
        assert page.locator(name).is_visible() or name == "#calls", name
    reset = page.get_by_role("button", name="Reset", exact=True)
    reset.scroll_into_view_if_needed()
    expect(reset).to_be_in_viewport()
    expect(page.locator(".charger-head noscript")).to_have_count(1)

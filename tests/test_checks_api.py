"""Guided checks through the API, the CLI, the page and the report, over real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import httpx
import jsonschema
import pytest

from ocpplab.core.checks import REPORT_SCHEMA
from ocpplab.dialects.ocpp16.checks import CATALOGUE
from tests.checks_support import guided_charger, run_simulated, runs_of, verdicts
from tests.support import RunningServer, chromium_path

pytestmark = pytest.mark.timeout(300)

QUICK = ["TC_061_CS", "TC_062_CS"]  # no person, a few seconds each


def api(server: RunningServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.http, timeout=30)


async def test_the_catalogue_lists_at_least_30_checks_by_profile(server: RunningServer) -> None:
    async with api(server) as client:
        answer = await client.get("/api/checks")
    assert answer.status_code == 200
    profiles = answer.json()["profiles"]
    assert profiles[0]["profile"] == "Core"
    checks = [check for group in profiles for check in group["checks"]]
    assert len(checks) >= 30
    assert len(checks) == len(CATALOGUE.checks)
    ids = [check["id"] for check in checks]
    assert len(set(ids)) == len(ids)
    for check in checks:
        assert check["title"]
        assert check["purpose"]
        assert check["preconditions"]
        assert set(check["person"]) <= {"plug", "unplug", "present_card", "power_cycle"}


async def test_a_run_started_over_the_api_is_followed_to_its_report(server: RunningServer) -> None:
    async with guided_charger(server) as charger, api(server) as client:
        path = f"/api/chargers/{charger.identity}/checks"
        assert (await client.get(path)).status_code == 404  # nothing has run yet
        started = await client.post(path, json={"only": QUICK})
        assert started.status_code == 202, started.text
        assert [check["id"] for check in started.json()["checks"]] == QUICK
        again = await client.post(path, json={"only": QUICK})
        assert again.status_code == 409
        assert "already running" in again.json()["error"]
        for _ in range(300):
            report = (await client.get(path)).json()
            if report["state"] != "running":
                break
            await asyncio.sleep(0.1)
        assert report["state"] == "finished", report
        assert verdicts(report) == dict.fromkeys(QUICK, "passed")
        jsonschema.validate(report, REPORT_SCHEMA)
        assert report["charger"]["vendor"] == "ocpplab"
        download = await client.get(f"{path}/report.json")
        assert download.status_code == 200
        assert "attachment" in download.headers["content-disposition"]
        jsonschema.validate(download.json(), REPORT_SCHEMA)
        evidence = [
            uid for check in report["checks"] for s in check["steps"] for uid in s["evidence"]
        ]
        assert evidence, "a passed check links the frames that prove it"


async def test_bad_requests_are_refused_with_reasons(server: RunningServer) -> None:
    async with guided_charger(server) as charger, api(server) as client:
        path = f"/api/chargers/{charger.identity}/checks"
        unknown = await client.post(path, json={"only": ["TC_999_CS"]})
        assert unknown.status_code == 404
        assert "TC_999_CS" in unknown.json()["error"]
        for body, words in (
            ({"only": "TC_061_CS"}, "only must be a list"),
            ({"only": ["x" * 41]}, "only must be a list"),
            ({"id_tag": "x" * 21}, "id_tag"),
            ({"connector": 0}, "connector"),
            ({"connector": True}, "connector"),
            ({"firmware_location": "firmware.bin"}, "firmware_location must be a URL"),
            ({"diagnostics_location": "ftp://" + "x" * 510}, "diagnostics_location"),
            ([], "JSON object"),
        ):
            answer = await client.post(path, json=body)
            assert answer.status_code == 422, body
            assert words in answer.json()["error"], body
        prompt = await client.post(f"{path}/prompt", json={"token": "t", "done": True})
        assert prompt.status_code == 404
        assert (await client.post(f"{path}/prompt", json={"token": 1})).status_code == 422
        assert (await client.delete(path)).status_code == 404
    async with api(server) as client:
        offline = await client.post("/api/chargers/nobody-here/checks", json={})
    assert offline.status_code == 409
    assert "is connected" in offline.json()["error"]


async def test_an_abort_stops_the_run_and_restores_the_persons_rules(
    server: RunningServer,
) -> None:
    async with guided_charger(server) as charger, api(server) as client:
        identity = charger.identity
        rule = {"mode": "custom", "payload": {"currentTime": "2026-01-01T00:00:00Z"}}
        put = await client.put(f"/api/chargers/{identity}/responses/Heartbeat", json=rule)
        assert put.status_code == 200, put.text
        before = (await client.get(f"/api/chargers/{identity}/responses/Heartbeat")).json()
        # TC_001_CS sets its own BootNotification answers, then waits for a power cycle
        # that nobody does: abort it while it waits.
        runs = runs_of(server)
        await runs.start(identity, ["TC_001_CS"], actor=_never)
        for _ in range(100):
            report = await runs.report(identity)
            assert report is not None
            if report["prompt"]:
                break
            await asyncio.sleep(0.05)
        assert report["prompt"], report
        boot_rule = await client.get(f"/api/chargers/{identity}/responses/BootNotification")
        assert boot_rule.json() != {"mode": "default"}, "the check set its own boot answer"
        assert (await client.delete(f"/api/chargers/{identity}/checks")).status_code == 202
        report = await runs.wait(identity)
        assert report is not None
        assert report["state"] == "aborted"
        assert verdicts(report) == {"TC_001_CS": "aborted"}
        after = (await client.get(f"/api/chargers/{identity}/responses/Heartbeat")).json()
        assert after == before
        boot = (await client.get(f"/api/chargers/{identity}/responses/BootNotification")).json()
        assert boot.get("mode", "default") == "default", boot


async def _never(name: str, detail: dict[str, Any]) -> bool:
    await asyncio.sleep(3600)
    return False


async def test_a_persons_question_is_answered_over_the_api(server: RunningServer) -> None:
    async with guided_charger(server) as charger, api(server) as client:
        identity = charger.identity
        path = f"/api/chargers/{identity}/checks"
        # No actor: the question waits for a person. "Can't do this" ends it.
        runs = runs_of(server)
        runs.actors = lambda identity: None
        person_check = next(check.id for check in CATALOGUE.checks if check.person)
        assert (await client.post(path, json={"only": [person_check]})).status_code == 202
        for _ in range(200):
            report = (await client.get(path)).json()
            if report["prompt"]:
                break
            await asyncio.sleep(0.05)
        prompt = report["prompt"]
        assert prompt
        assert prompt["text"]
        answer = await client.post(f"{path}/prompt", json={"token": prompt["token"], "done": False})
        assert answer.status_code == 202
        report = await runs.wait(identity)
        assert report is not None
        assert verdicts(report) == {person_check: "not_applicable"}
        assert "they could not" in report["checks"][0]["reason"]


async def _cli(server: RunningServer, *args: str) -> tuple[int, str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OCPPLAB_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ocpplab",
        "check",
        "--server",
        server.http,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_ocpplab_check_exits_0_when_all_pass_and_1_on_a_fault(server: RunningServer) -> None:
    async with guided_charger(server) as charger:
        code, out, err = await _cli(
            server, "--identity", charger.identity, "--only", ",".join(QUICK)
        )
        assert code == 0, out + err
        assert "PASSED" in out
        assert "TC_061_CS" in out
        assert "2 passed, 0 failed" in out
    async with guided_charger(server, faults={"TC_062_CS"}) as charger:
        code, out, err = await _cli(
            server, "--identity", charger.identity, "--only", "TC_062_CS", "--json"
        )
        assert code == 1, out + err
        report = json.loads(out)
        jsonschema.validate(report, REPORT_SCHEMA)
        assert verdicts(report) == {"TC_062_CS": "failed"}
        assert "UnknownVendorId" in report["checks"][0]["reason"]
    code, out, err = await _cli(server, "--identity", "nobody-here")
    assert code == 2
    assert "409" in err
    assert "is connected" in err
    code, out, err = await _cli(server, "--list")
    assert code == 0
    assert "TC_001_CS" in out


async def test_the_printable_report_in_chromium(server: RunningServer, tmp_path: Any) -> None:
    from playwright.async_api import async_playwright

    report = await run_simulated(server, QUICK, faults={"TC_061_CS"})
    identity = report["identity"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path())
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on(
                "console",
                lambda message: errors.append(message.text) if message.type == "error" else None,
            )
            answer = await page.goto(f"{server.http}/chargers/{identity}/checks/report")
            assert answer is not None
            assert answer.status == 200
            heading = await page.locator("h1").inner_text()
            assert identity in heading
            facts = await page.locator("table.facts").inner_text()
            assert "ocpplab" in facts
            assert "1 passed" in facts
            assert "1 failed" in facts
            failed = page.locator("section.verdict-failed")
            assert await failed.count() == 1
            assert "TC_061_CS" in await failed.locator("h2").inner_text()
            assert await failed.locator("tr.step-failed").count() == 1, "the judged step"
            assert await failed.locator(".reason").inner_text()
            await page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            pdf = await page.pdf()
            assert pdf[:4] == b"%PDF"
            assert errors == []
        finally:
            await browser.close()


async def test_a_cut_closes_the_charger_and_refuses_it_for_a_while(server: RunningServer) -> None:
    import websockets

    central = server.app.state.services.central
    async with guided_charger(server) as charger:
        identity = charger.identity
        await central.cut(identity, 2)
        refused = None
        for _ in range(50):  # the simulated charger's socket may still be closing
            try:
                async with websockets.connect(
                    server.charger_url(identity),
                    subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                ):
                    pass
            except websockets.InvalidStatus as error:
                refused = error
                break
            await asyncio.sleep(0.02)
        assert refused is not None, "a cut charger is refused"
        assert refused.response.status_code == 503
        assert b"offline for a while on purpose" in refused.response.body
        for _ in range(100):  # it reconnects by itself once the refusal expires
            status = await central.status(identity)
            if status.get("connected"):
                break
            await asyncio.sleep(0.1)
        assert status.get("connected"), "the charger came back after the cut"


async def test_the_firmware_location_given_is_the_one_the_charger_is_sent(
    server: RunningServer,
) -> None:
    from ocpplab.broker.keys import events_channel
    from ocpplab.core.messages import FrameEvent, decode_event

    location = "https://firmware.example/ocpplab-2.bin"
    broker = server.app.state.services.broker
    async with guided_charger(server) as charger, api(server) as client:
        path = f"/api/chargers/{charger.identity}/checks"
        body = {"only": ["TC_044_1_CS"], "firmware_location": location}
        async with broker.subscribe(events_channel(charger.identity)) as events:
            assert (await client.post(path, json=body)).status_code == 202
            report = await runs_of(server).wait(charger.identity)
            sent: list[str] = []
            while (item := events.get_nowait()) is not None:
                event = decode_event(item) if isinstance(item, str) else None
                if isinstance(event, FrameEvent) and (event.action, event.dir, event.type) == (
                    "UpdateFirmware",
                    "out",
                    "CALL",
                ):
                    sent.append(event.raw)
    assert report is not None
    assert verdicts(report) == {"TC_044_1_CS": "passed"}
    assert len(sent) == 1
    assert json.loads(sent[0])[3]["location"] == location


async def test_a_simulated_charger_acts_for_the_person_over_the_api_and_its_page(
    server: RunningServer,
) -> None:
    async with api(server) as client:
        started = await client.post("/simulate", headers={"Origin": server.http})
        identity = started.headers["location"].rsplit("/", 1)[1]
        charger = server.app.state.simulations.running[identity].charger
        for _ in range(100):
            if charger.ready.is_set():
                break
            await asyncio.sleep(0.05)
        path = f"/api/chargers/{identity}/simulated"
        for body, words in (
            ({"connector": 100}, "connector"),
            ({"connector": "1"}, "connector"),
            ({"id_tag": ""}, "id_tag"),
            ([1], "JSON object"),
        ):
            answer = await client.post(f"{path}/plug", json=body)
            assert answer.status_code == 422, body
            assert words in answer.json()["error"], body
        assert (await client.post(f"{path}/dance", json={})).status_code == 404
        unknown = await client.post("/api/chargers/nobody/simulated/plug", json={})
        assert unknown.status_code == 404
        plugged = await client.post(f"{path}/plug", json={"connector": 1})
        assert plugged.status_code == 200
        assert plugged.json() == {"act": "plug", "done": True}
        form = await client.post(
            f"/chargers/{identity}/simulated/unplug", headers={"Origin": server.http}
        )
        assert form.status_code == 200
        assert "Simulated charger: unplug done." in form.text

"""`ocpplab check`: run guided charger checks on a running ocpplab from a terminal.

It starts a run through the JSON API (`POST /api/chargers/{identity}/checks`), follows it
(`GET`), prints each check's verdict as it ends, asks the person's questions on the terminal
(Enter: done; `n`: can't do this) and prints the report. Exit status 0 when every check
that ran passed, 1 when one failed or the run was aborted, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

POLL = 0.5
TIMEOUT = 30.0


class ApiError(Exception):
    pass


class Client:
    def __init__(self, server: str, password: str | None) -> None:
        self.server = server.rstrip("/")
        self.headers = {"Accept": "application/json"}
        if password:
            token = base64.b64encode(f"ocpplab:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.server + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read()
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, {"error": text.decode(errors="replace")[:300]}
        except (OSError, ValueError) as error:
            raise ApiError(f"cannot reach {self.server}: {error}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run guided OCPP 1.6 checks (modelled on the OCTT test cases) on a charger connected "
        "to a running ocpplab, and print the report. Questions for the person (plug in, "
        "present a card…) are asked here. Exit status 0: every check that ran passed; "
        "1: one failed or the run was aborted; 2: the run could not start."
    )
    parser.add_argument(
        "--server", default="http://127.0.0.1:8000", help="ocpplab's address [%(default)s]"
    )
    parser.add_argument("--identity", help="the charger's identity (see --list)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="ID",
        help="run only these checks (repeat, or comma-separated: TC_003_CS,TC_010_CS)",
    )
    parser.add_argument("--id-tag", help="the card (idTag) the person will present")
    parser.add_argument("--connector", type=int, default=1, help="connector to use [1]")
    parser.add_argument(
        "--firmware-location", help="URL of a firmware image the charger may fetch (TC_044_1_CS)"
    )
    parser.add_argument(
        "--diagnostics-location", help="URL the charger may upload diagnostics to (TC_045_1_CS)"
    )
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--yes",
        action="store_true",
        help="answer every question for the person with 'done' (a simulated charger acts itself)",
    )


def run(args: argparse.Namespace) -> int:
    client = Client(args.server, os.environ.get("OCPPLAB_DASHBOARD_PASSWORD"))
    try:
        if args.list:
            return _list(client)
        if not args.identity:
            print("ocpplab check: --identity is needed (or --list)", file=sys.stderr)
            return 2
        return follow(client, args, ask=_ask_terminal)
    except ApiError as error:
        print(f"ocpplab check: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nocpplab check: interrupted; aborting the run", file=sys.stderr)
        client.request("DELETE", _path(args.identity))
        return 1


def _path(identity: str, tail: str = "") -> str:
    return f"/api/chargers/{urllib.parse.quote(identity, safe='')}/checks{tail}"


def _list(client: Client) -> int:
    status, body = client.request("GET", "/api/checks")
    if status != 200:
        raise ApiError(f"GET /api/checks answered {status}: {body}")
    for group in body["profiles"]:
        print(f"{group['profile']}:")
        for check in group["checks"]:
            person = " [person]" if check["person"] else ""
            print(f"  {check['id']:<12} {check['title']}{person}")
    return 0


def _ask_terminal(prompt: dict[str, Any]) -> bool:
    answer = input(f"\n>>> {prompt['text']}\n    Enter when done, n if you can't: ")
    return answer.strip().lower() not in {"n", "no"}


def follow(
    client: Client, args: argparse.Namespace, *, ask: Callable[[dict[str, Any]], bool]
) -> int:
    body: dict[str, Any] = {"connector": args.connector}
    if args.only:
        body["only"] = [item for value in args.only for item in value.split(",") if item]
    if args.id_tag:
        body["id_tag"] = args.id_tag
    for key in ("firmware_location", "diagnostics_location"):
        if getattr(args, key, None):
            body[key] = getattr(args, key)
    status, report = client.request("POST", _path(args.identity), body)
    if status != 202:
        message = report.get("error") if isinstance(report, dict) else report
        print(f"ocpplab check: not started ({status}): {message}", file=sys.stderr)
        return 2
    printed: set[str] = set()
    asked: set[str] = set()
    out = sys.stderr if args.json else sys.stdout
    while True:
        for check in report["checks"]:
            if check["verdict"] not in {"pending", "running"} and check["id"] not in printed:
                printed.add(check["id"])
                reason = f" — {check['reason']}" if check["reason"] else ""
                verdict = check["verdict"].replace("_", " ").upper()
                print(f"{verdict:<15} {check['id']:<12} {check['title']}{reason}", file=out)
        prompt = report.get("prompt")
        if prompt and prompt["token"] not in asked:
            asked.add(prompt["token"])
            done = True if args.yes else ask(prompt)
            client.request(
                "POST", _path(args.identity, "/prompt"), {"token": prompt["token"], "done": done}
            )
        if report["state"] in {"finished", "aborted"}:
            break
        time.sleep(POLL)
        status, fresh = client.request("GET", _path(args.identity))
        if status != 200:
            raise ApiError(f"following the run: {status} {fresh}")
        report = fresh
    summary = report["summary"]
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(
            f"\n{summary['passed']} passed, {summary['failed']} failed, "
            f"{summary['not_applicable']} not applicable, {summary['aborted']} aborted"
        )
    ok = report["state"] == "finished" and summary["failed"] == 0 and summary["aborted"] == 0
    return 0 if ok else 1

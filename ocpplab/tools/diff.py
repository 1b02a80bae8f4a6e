"""`ocpplab diff A B`: what two recordings of a charger did differently (the comparison
itself is `core.comparison`)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ocpplab.core.comparison import DEFAULT_THRESHOLD, describe, diff_recordings
from ocpplab.core.recording import MAX_RECORDING_BYTES, Recording, RecordingError
from ocpplab.core.recording import read_recording as read_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Compare two recordings (NDJSON, see the README's Recordings): messages aligned by "
        "direction, message type and action; payload fields, timing and calls only one made. "
        "Exit status 0: no differences, 1: some, 2: a file cannot be read."
    )
    parser.add_argument("a", metavar="A", help="a recording file")
    parser.add_argument("b", metavar="B", help="another recording file")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"seconds a gap before a message may differ by [{DEFAULT_THRESHOLD:g}]",
    )
    parser.add_argument(
        "--strict", action="store_true", help="compare times, ids and meter readings too"
    )
    parser.add_argument("--json", action="store_true", help="print the differences as JSON")


def read_recording_file(path: str) -> Recording:
    """A recording file read, or `RecordingError` whose message names the file (and line)."""
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size > MAX_RECORDING_BYTES:
                raise RecordingError(0, f"larger than {MAX_RECORDING_BYTES} bytes", source=path)
            return read_text(file)
    except OSError as exc:
        raise RecordingError(0, exc.strerror or str(exc), source=path) from None
    except RecordingError as exc:
        if exc.source is not None:
            raise
        raise RecordingError(exc.line, exc.problem, source=path) from None


def run(args: argparse.Namespace) -> int:
    try:
        a, b = read_recording_file(args.a), read_recording_file(args.b)
    except RecordingError as exc:
        print(f"ocpplab diff: {exc}", file=sys.stderr)
        return 2
    found = diff_recordings(a, b, threshold=args.threshold, strict=args.strict)
    if args.json:
        body = {"a": args.a, "b": args.b, "differences": [d.to_json() for d in found]}
        print(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        print(f"--- A {args.a} ({a.identity}, {len(a.frames())} frames)")
        print(f"+++ B {args.b} ({b.identity}, {len(b.frames())} frames)")
        for difference in found:
            print("\n".join(describe(difference)))
        print(f"{len(found) or 'no'} difference{'' if len(found) == 1 else 's'}")
    return 1 if found else 0

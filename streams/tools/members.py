"""``segmenter members SEGMENT``: the current members of a segment, from the memberships topic.

Reads the compacted ``segment-memberships`` topic to its end (every current membership; ended
ones are tombstones) and prints the segment's members as JSON lines or CSV, sorted by
customer id. No worker needs to be asked, and nothing is replayed.
"""

from __future__ import annotations

import asyncio
import csv
import sys
from typing import TextIO

import msgspec

from streams.live.readers import read_compacted
from streams.live.settings import WorkerSettings
from streams.model.memberships import Membership, decode

COLUMNS = ("customer_id", "segment", "since", "change_id", "rule_version", "pack_version")


def members(settings: WorkerSettings, segment: str) -> list[Membership]:
    values = asyncio.run(read_compacted(settings, settings.memberships_topic))
    found = []
    for key, raw in values.items():
        try:
            found.append(decode(raw))
        except msgspec.DecodeError as exc:  # not the worker's: said, and left out
            print(f"members: record {key!r} of {settings.memberships_topic} is not a membership, "
                  f"skipped: {exc}", file=sys.stderr)
    return sorted((m for m in found if m.segment == segment), key=lambda m: m.customer_id)


def command(settings: WorkerSettings, segment: str, form: str, out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    found = members(settings, segment)
    if form == "csv":
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for m in found:
            writer.writerow([getattr(m, column) for column in COLUMNS])
    else:
        for m in found:
            out.write(msgspec.json.encode(m).decode() + "\n")
    print(f"members: {len(found)} in {segment}", file=sys.stderr)
    return 0

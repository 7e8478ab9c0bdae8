"""JSON Schemas of the input events and the segment changes, generated from the msgspec types
that decode and encode them, so that the published contract cannot drift from the code.

``segmenter schemas`` writes them to ``docs/schemas``; a unit test checks they are current.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from streams.model.changes import SegmentChange
from streams.model.events import Event

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema."""
    event = msgspec.json.schema(Event)
    event = {
        "$schema": DRAFT,
        "title": "Input event",
        "description": "One message of the clickstream, transactions or profiles topic (one line "
                       "of a replay file), keyed by customer_id, or by anonymous_id before login. "
                       "The kind is chosen by `type`; unknown fields are ignored. See "
                       "docs/contract.md for the rules a schema cannot say (which id is required "
                       "for which type, size limits).",
        **event,
    }
    change = {
        "$schema": DRAFT,
        "title": "Segment change",
        "description": "One message of the segment-changes topic (one line of replay's output), "
                       "keyed by customer_id. `change` is `entered` or `exited`; `at` is ISO 8601 "
                       "UTC; change_id is the same for the same input on every run.",
        **msgspec.json.schema(SegmentChange),
    }
    return {"input-event.json": event, "segment-change.json": change}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(folder: str | Path) -> list[Path]:
    """Write every schema into ``folder``; return the paths written."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = out / name
        path.write_text(render(schema))
        written.append(path)
    return written

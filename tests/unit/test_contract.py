"""The contract in docs/ is the code's: its schemas are generated from the types, its examples
are what the engine reads and writes, and nothing in the repository sends a reader outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import msgspec
import pytest

from streams.engine import Engine
from streams.model.changes import SegmentChange
from streams.model.clock import parse_instant
from streams.model.events import Envelope, decode
from streams.model.schemas import render, schemas
from streams.rules.load import load_pack

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "contract.md"


def json_examples() -> list[bytes]:
    blocks = re.findall(r"```json\n(.*?)```", CONTRACT.read_text(), re.S)
    return [" ".join(block.split()).encode() for block in blocks]


def test_the_schemas_in_docs_are_current() -> None:
    for name, schema in schemas().items():
        path = ROOT / "docs" / "schemas" / name
        assert path.exists() and path.read_text() == render(schema), (
            f"{path} is stale: run `segmenter schemas`")


def test_the_input_schema_names_every_event_type() -> None:
    text = (ROOT / "docs" / "schemas" / "input-event.json").read_text()
    for type_ in ("page_view", "add_to_cart", "order_completed", "customer_erased", "identify"):
        assert f'"{type_}"' in text


def test_the_contract_examples_are_what_the_engine_reads_and_writes() -> None:
    first, second = json_examples()
    event = decode(first)
    assert isinstance(event, Envelope), event
    change = msgspec.json.decode(second, type=SegmentChange)
    engine = Engine(load_pack(ROOT / "rules"))
    out = engine.process(event, first)
    assert isinstance(out, list)
    out += engine.finish(parse_instant(change.at))
    assert change in out


def test_nothing_in_the_repository_points_outside_it() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    outside = []
    for name in files:
        path = ROOT / name
        if path == Path(__file__).resolve():
            continue  # the words it looks for
        if path.suffix in {".py", ".md", ".toml", ".yml", ".sh", ""} and path.is_file():
            text = path.read_text(errors="replace")
            if "../shared" in text or "SPEC.md" in text or re.search(r"\bSPEC §", text):
                outside.append(name)
    assert not outside, f"these refer to a contract outside the repository: {outside}"

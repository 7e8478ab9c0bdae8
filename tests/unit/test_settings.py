"""Worker settings: every one explained where a user looks (--help, docs/settings.md), and
flags winning over the environment over the defaults."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from streams.cli import main
from streams.live import settings

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_every_setting_says_what_it_does() -> None:
    names = set(settings.WorkerSettings.__struct_fields__)
    assert set(settings.HELP) == names
    assert all(len(text) > 10 for text in settings.HELP.values())


def test_worker_help_explains_each_flag() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["worker", "--help"])
    text = "".join(out.getvalue().split())  # argparse wraps lines, hyphenated words too
    for s in settings.describe():
        assert s.flag in text
        assert "".join(s.help.split()) in text, f"{s.flag}: its help is missing from --help"
        assert s.env in text


def test_docs_table_is_current() -> None:
    assert DOCS.read_text() == settings.markdown_table(), (
        "docs/settings.md is stale: python -m streams.live.settings > docs/settings.md")


def test_flags_win_over_environment_over_defaults() -> None:
    env = {"SEGMENTER_PARTITIONS": "4", "SEGMENTER_APP_ID": "from-env"}
    loaded = settings.load({"app_id": "from-flag", "rules": None}, environ=env)
    assert (loaded.partitions, loaded.app_id, loaded.rules) == (4, "from-flag", "rules")
    assert settings.load(environ={}).partitions == 8


def test_a_bad_value_names_the_setting() -> None:
    with pytest.raises(settings.SegmenterError, match="partitions"):
        settings.load(environ={"SEGMENTER_PARTITIONS": "many"})


def test_a_retired_setting_stops_the_worker_with_what_replaces_it() -> None:
    from streams.errors import SegmenterError

    with pytest.raises(SegmenterError, match=r"SEGMENTER_CHANNEL_TOPICS is no longer a setting: .*docs/activation.md"):
        settings.load(environ={"SEGMENTER_CHANNEL_TOPICS": "true"})


def test_segment_topics_are_among_the_topics_the_worker_creates() -> None:
    from streams.live.topics import pack_topics
    from streams.rules.load import load_pack

    pack = load_pack(Path(__file__).resolve().parents[2] / "rules")
    plain = settings.load(environ={})
    assert pack_topics(plain, [pack]) == ["activations.email", "activations.push", "activations.sms"]
    with_segments = settings.load(environ={"SEGMENTER_SEGMENT_TOPICS": "true"})
    assert "segment-changes.cart_abandoner" in pack_topics(with_segments, [pack])

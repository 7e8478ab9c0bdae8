"""A deployment: a whole rule pack put live at one instant of event time.

Deployments are what the ``rule-deployments`` topic holds, one record each, and what
``segmenter rules history --json`` prints and ``segmenter replay --deployments`` reads: the
pack travels as its files, so every worker (and replay) compiles the very same pack, and the
history of deployments says which pack was live when. Deploying an older pack is a rollback:
a deployment like any other.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import msgspec

from streams.errors import SegmenterError
from streams.model.clock import Instant, format_instant, parse_instant
from streams.rules.load import digest_of, load_pack, pack_files
from streams.rules.pack import RulePack

INITIAL = "initial"
"""The id of the deployment a worker records when it finds none: the pack it started with,
live from the beginning of time."""


class Deployment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: str
    """The record's key on the topic; unique per deployment."""
    pack_version: str
    """The pack's version (its pack.toml ``version``, or its digest)."""
    digest: str
    effective_at: str
    """ISO 8601 UTC: from this instant of event time on, on every partition, the pack is live."""
    files: dict[str, str]
    """pack.toml and the segment files, by name."""
    by: str = ""
    """Who deployed it (free text)."""
    note: str = ""
    deployed_at: str = ""
    """Wall-clock time of the deploy."""
    preview: dict[str, dict[str, int]] = {}
    """segment -> {"entered": n, "exited": n}: what the deploy expected the switch to send."""

    def __post_init__(self) -> None:
        try:
            parse_instant(self.effective_at)
        except ValueError as exc:  # a decode turns this into a ValidationError naming the record
            raise ValueError(f"effective_at: {exc}") from None

    @property
    def at(self) -> Instant:
        return parse_instant(self.effective_at)


class Scheduled(msgspec.Struct, frozen=True):
    """A deployment compiled: the pack, and the instant it goes live."""

    at: Instant
    pack: RulePack
    id: str = ""


def of_folder(directory: str | Path, effective_at: Instant, *, by: str = "", note: str = "",
              deployed_at: str = "") -> Deployment:
    """A deployment of the pack in ``directory`` (checked: a pack that does not load raises)."""
    files = pack_files(directory)
    pack = load_pack(directory)
    at = format_instant(effective_at)
    return Deployment(id=f"{at}/{pack.digest[:12]}", pack_version=pack.version, digest=pack.digest,
                      effective_at=at, files=files, by=by, note=note, deployed_at=deployed_at)


def compile_pack(deployment: Deployment) -> RulePack:
    """The deployment's pack, loaded from its files (checked against its digest)."""
    if digest_of(deployment.files) != deployment.digest:
        raise SegmenterError(f"deployment {deployment.id}: its files do not match its digest")
    with tempfile.TemporaryDirectory(prefix="segmenter-pack-") as folder:
        for name, text in deployment.files.items():
            if "/" in name or "\\" in name or not name.endswith(".toml"):
                raise SegmenterError(f"deployment {deployment.id}: {name!r} is not a rule file name")
            (Path(folder) / name).write_text(text, encoding="utf-8")
        pack = load_pack(folder)
    pack.directory = f"deployment {deployment.id}"
    return pack


def schedule(deployments: Iterable[Deployment]) -> list[Scheduled]:
    """The deployments compiled, in the order they go live (by instant, then as given)."""
    compiled = [Scheduled(d.at, pack, d.id) for d in deployments for pack in [compile_pack(d)]]
    return sorted(compiled, key=lambda s: s.at)


_decoder = msgspec.json.Decoder(Deployment)
_encoder = msgspec.json.Encoder()


def decode(raw: bytes) -> Deployment:
    return _decoder.decode(raw)


def encode(deployment: Deployment) -> bytes:
    return _encoder.encode(deployment)


def read_file(path: str | Path) -> list[Deployment]:
    """A JSON-lines file of deployments (as ``rules history --json`` prints them)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SegmenterError(f"{path}: cannot read the deployments: {exc}") from None
    return decode_lines(text, str(path))


def decode_lines(text: str, name: str = "<deployments>") -> list[Deployment]:
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                out.append(decode(line.encode()))
            except msgspec.DecodeError as exc:
                raise SegmenterError(f"{name}:{number}: not a deployment: {exc}") from None
    return out

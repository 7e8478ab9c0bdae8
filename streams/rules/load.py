"""Reading a rules folder: TOML files checked against a schema, every problem reported at once.

Why TOML: it is in the standard library (``tomllib``), every string is quoted so nothing is
guessed (YAML 1.1 reads ``country: NO`` as false and ``zip: 01234`` as 668), and multi-line
literal strings (``'''...'''``) hold expressions without escaping. Files are decoded into
msgspec Structs that forbid unknown keys, the model of msgspec's pyproject example, so a
misspelt key is an error with its path rather than a setting silently ignored.

Layout of a rules folder:

- ``pack.toml``: ``[settings]``, ``[traits]`` (profile traits rules may read, with their
  types) and ``[windows.NAME]`` (named rolling aggregates, declared once, used by any rule);
- every other ``*.toml`` directly in the folder: one segment;
- sub-folders (``tests/``) are not rules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from streams.model.clock import parse_duration
from streams.model.events import EVENT_TYPES
from streams.rules import expr as expressions
from streams.rules import per_value
from streams.rules import rfm as rfm_windows
from streams.rules.activation import (
    CONSENT_CHANNELS,
    ActivationSettings,
    Channel,
    parse_cap,
    parse_quiet_hours,
    zone_or_none,
)
from streams.rules.compiled import Expr, ExprError, NextFn, Scope
from streams.rules.compose import judging_order, segments_read
from streams.rules.fields import (
    BOOL,
    NUMBER,
    STATE_FIELDS,
    STRING,
    TRAIT_TYPES,
    Field,
    event_fields,
    trait_field,
)
from streams.rules.pack import DEFAULT_ALLOWED_LATENESS, Rule, RulePack, WindowDef, window_name
from streams.rules.problems import Kind, Problem, RuleError, did_you_mean
from streams.rules.rfm import Rfm
from streams.rules.specs import NAME, PackSpec, RfmSpec, SegmentSpec, Settings, WindowSpec

PACK_FILE = "pack.toml"


@dataclass
class _Source:
    path: Path
    text: str

    @property
    def name(self) -> str:
        return self.path.name

    def line_of(self, key: str, after: int = 0) -> int | None:
        """The line where ``key = ...`` (or ``[key]``) first appears after line ``after``."""
        pattern = re.compile(rf"^\s*(\[{re.escape(key)}\]|{re.escape(key)}\s*=)")
        for number, line in enumerate(self.text.splitlines(), start=1):
            if number > after and pattern.match(line):
                return number
        return None


def pack_files(directory: str | Path) -> dict[str, str]:
    """The files that make a pack (pack.toml and the segment files, not the tests), by name."""
    folder = Path(directory)
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.toml"))}


def digest_of(files: dict[str, str]) -> str:
    """SHA-256 over the files' names and texts, in name order."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return h.hexdigest()


def load_pack(directory: str | Path) -> RulePack:
    """Load and compile a rules folder, or raise :class:`RuleError` listing every problem."""
    return _Loader(Path(directory)).load()


def check_pack(directory: str | Path) -> list[Problem]:
    """Every problem in a rules folder; empty when it loads."""
    try:
        load_pack(directory)
    except RuleError as error:
        return error.problems
    return []


class _Loader:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.problems: list[Problem] = []
        self.cooldowns: dict[str, int] = {}
        self.once_per: dict[str, Field] = {}

    def load(self) -> RulePack:
        if not self.directory.is_dir():
            raise RuleError([Problem(Kind.BAD_FILE, str(self.directory), "no such rules folder")])
        pack_source = self._read(self.directory / PACK_FILE, required=False)
        spec = self._decode(pack_source, PackSpec) if pack_source else PackSpec()
        spec = spec or PackSpec()
        lateness = self._duration(pack_source, spec.settings.allowed_lateness, "allowed_lateness",
                                  DEFAULT_ALLOWED_LATENESS)
        traits = self._traits(pack_source, spec.traits)
        scope_fields: dict[str, Field] = dict(STATE_FIELDS)
        scope_fields.update({f"traits.{n}": trait_field(n, t) for n, t in traits.items()})
        windows = self._windows(pack_source, spec.windows)
        rfm = self._rfm(pack_source, spec.rfm, windows)
        timed: dict[str, NextFn | str] = {}
        for window in windows.values():
            if window.by is None:  # a keyed one is read per value (per_value.scope_for)
                name = f"windows.{window.name}"
                scope_fields[name] = window.field()
                timed[name] = window.next_code()
        for name, (value, nxt) in (rfm.fields(windows) if rfm else {}).items():
            scope_fields[name] = value
            timed[name] = nxt
        scope = Scope(scope_fields, timed=timed, windows=frozenset(windows), traits=frozenset(traits),
                      keyed=frozenset(n for n, w in windows.items() if w.by is not None))
        rules = self._rules(scope, windows)
        if self.problems:
            raise RuleError(self.problems)
        windows = per_value.with_values(windows, rules)
        used = {window_name(name) for r in rules for name in r.reads if name.startswith("windows.")}
        used |= {rfm_windows.ORDERS, rfm_windows.SPEND} if rfm else set()
        kept = {n: w for n, w in windows.items() if n in used}
        fields = {n: f for n, f in scope_fields.items()
                  if not n.startswith("windows.") or n.removeprefix("windows.") in used}
        fields.update({name: windows[window_name(name)].value_field(name[name.index("[") + 1:-1])[0]
                       for r in rules for name in r.reads if name.startswith("windows.") and name.endswith("]")})
        rules = _with_definitions(rules, windows, traits, rfm)
        activation = self._activation(pack_source, spec, {rule.name for rule in rules}, traits)
        if self.problems:
            raise RuleError(self.problems)
        label = "" if spec.version is None else str(spec.version)
        return RulePack(tuple(rules), kept, fields, allowed_lateness=lateness, directory=str(self.directory),
                        traits=frozenset(traits), label=label, digest=digest_of(pack_files(self.directory)),
                        activation=activation)

    # --- files -------------------------------------------------------------------------

    def _read(self, path: Path, *, required: bool = True) -> _Source | None:
        try:
            return _Source(path, path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if required:
                self._problem(Kind.BAD_FILE, path.name, "file not found")
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self._problem(Kind.BAD_FILE, path.name, f"cannot read: {exc}")
            return None

    def _decode(self, source: _Source, typ: type[Any]) -> Any:
        try:
            data = tomllib.loads(source.text)
        except tomllib.TOMLDecodeError as exc:
            at = re.search(r"line (\d+)", str(exc))
            self._problem(Kind.BAD_FILE, source.name, f"not valid TOML: {exc}",
                          line=int(at.group(1)) if at else None)
            return None
        try:
            return msgspec.convert(data, typ)
        except msgspec.ValidationError as exc:
            message = str(exc)
            unknown = re.match(r"Object contains unknown field `(\w+)`", message)
            line = None
            if unknown:
                fields: tuple[str, ...] = typ.__struct_fields__
                if "`$.windows." in message:
                    fields = WindowSpec.__struct_fields__
                elif "`$.settings" in message:
                    fields = Settings.__struct_fields__
                message += did_you_mean(unknown.group(1), fields)
                line = source.line_of(unknown.group(1))
            self._problem(Kind.BAD_FILE, source.name, message, line=line)
            return None

    def _problem(self, kind: Kind, file: str, message: str, **where: Any) -> None:
        self.problems.append(Problem(kind, file, message, **where))

    # --- pack.toml -----------------------------------------------------------------------

    def _duration(self, source: _Source | None, text: str, key: str, default: int) -> int:
        try:
            return parse_duration(text)
        except ValueError as exc:
            self._problem(Kind.BAD_VALUE, PACK_FILE, str(exc), key=key,
                          line=source.line_of(key) if source else None)
            return default

    def _traits(self, source: _Source | None, declared: dict[str, str]) -> dict[str, str]:
        traits = {}
        for name, typ in declared.items():
            if typ not in TRAIT_TYPES:
                self._problem(Kind.BAD_VALUE, PACK_FILE, f"trait type {typ!r} is not one of "
                              f"{', '.join(TRAIT_TYPES)}", key=f"traits.{name}",
                              line=source.line_of(name) if source else None)
                continue
            traits[name] = typ
        return traits

    def _windows(self, source: _Source | None, specs: dict[str, WindowSpec]) -> dict[str, WindowDef]:
        windows = {}
        for name, spec in specs.items():
            header = source.line_of(f"windows.{name}") if source else None
            before = len(self.problems)
            if not NAME.match(name):
                self._problem(Kind.BAD_VALUE, PACK_FILE, f"window name {name!r} must be lower_snake_case",
                              line=header)
            for event_type in spec.events:
                if event_type not in EVENT_TYPES:
                    self._problem(Kind.UNKNOWN_EVENT_TYPE, PACK_FILE, f"window {name!r}: unknown event "
                                  f"type {event_type!r}" + did_you_mean(event_type, EVENT_TYPES),
                                  key="events", line=source.line_of("events", header or 0) if source else None)
            if not spec.events:
                self._problem(Kind.BAD_VALUE, PACK_FILE, f"window {name!r} counts no event types",
                              key="events", line=header)
            length = self._duration(source, spec.over, "over", 0)
            scope = Scope(event_fields(spec.events), allow_now=False, what="event field")
            where = self._expression(source, spec.where, scope, BOOL, "where", f"window {name}", header)
            value = None
            if spec.aggregate == "count":
                if spec.value is not None:
                    self._problem(Kind.BAD_VALUE, PACK_FILE, f"window {name!r}: a count takes no `value`; "
                                  "use aggregate = \"sum\" or \"max\" to add one up", key="value",
                                  line=source.line_of("value", header or 0) if source else None)
            elif spec.value is None:
                self._problem(Kind.BAD_VALUE, PACK_FILE, f"window {name!r}: aggregate {spec.aggregate!r} "
                              "needs a `value`, like value = \"total\"", line=header)
            else:
                value = self._expression(source, spec.value, scope, NUMBER, "value", f"window {name}", header)
            by = None
            if spec.by is not None:
                by = self._expression(source, spec.by, scope, STRING, "by", f"window {name}", header)
                if spec.keep < 1:
                    self._problem(Kind.BAD_VALUE, PACK_FILE, f"window {name!r}: keep at least 1 value",
                                  key="keep", line=source.line_of("keep", header or 0) if source else None)
            if len(self.problems) == before:
                definition = (f"events={sorted(spec.events)} over={length} aggregate={spec.aggregate} "
                              f"where={spec.where!r} value={spec.value!r}")
                if by is not None:
                    definition += f" by={spec.by!r} keep={spec.keep}"
                windows[name] = WindowDef(name, tuple(spec.events), length, spec.aggregate, where, value,
                                          spec.description, definition, by, spec.keep if by else 0)
        return windows

    def _rfm(self, source: _Source | None, spec: RfmSpec | None, windows: dict[str, WindowDef]) -> Rfm | None:
        """``[rfm]``, its two windows added to ``windows``."""
        if spec is None:
            return None
        line = source.line_of("rfm") if source else None
        try:
            rfm = rfm_windows.parse(spec)
        except ValueError as exc:
            self._problem(Kind.BAD_VALUE, PACK_FILE, str(exc), key="rfm", line=line)
            rfm = rfm_windows.STAND_IN  # the pack is refused; rules reading RFM still say what else is wrong
        for name in (rfm_windows.ORDERS, rfm_windows.SPEND):
            if name in windows:
                self._problem(Kind.DUPLICATE, PACK_FILE, f"window {name!r} is the name RFM keeps its own "
                              "window under: choose another", key=f"windows.{name}", line=line)
                return None
        total = expressions.compile_expression("total", Scope(event_fields(["order_completed"]), allow_now=False),
                                               NUMBER)
        windows.update(rfm.windows(total))
        return rfm

    # --- activation --------------------------------------------------------------------------

    def _activation(self, source: _Source | None, spec: PackSpec, segments: set[str],
                    traits: dict[str, str]) -> ActivationSettings:
        def problem(message: str, key: str) -> None:
            self._problem(Kind.BAD_VALUE, PACK_FILE, message, key=key,
                          line=source.line_of(key.split(".")[-1]) if source else None)

        def known(name: str, key: str) -> bool:
            # A channel or group naming a segment the pack does not define skips it: a pack.toml
            # copied beside fewer segment files still loads (docs/activation.md).
            return name in segments

        settings = spec.activation
        if settings.timezone_trait is not None and traits.get(settings.timezone_trait) != "string":
            problem(f"timezone_trait {settings.timezone_trait!r} must be a trait declared as \"string\" "
                    "in [traits]", "activation.timezone_trait")
        if zone_or_none(settings.timezone) is None:
            problem(f"timezone {settings.timezone!r} is not an IANA time zone, like \"Europe/Paris\"",
                    "activation.timezone")
        channels = {}
        for name, channel in spec.channels.items():
            if not NAME.match(name):
                problem(f"channel name {name!r} must be lower_snake_case", f"channels.{name}")
            consent = channel.consent or (name if name in CONSENT_CHANNELS else None)
            if consent is not None and consent not in CONSENT_CHANNELS:
                problem(f"channel {name!r}: consent {consent!r} is not one of {', '.join(CONSENT_CHANNELS)}",
                        f"channels.{name}.consent")
            fed = tuple(s for s in channel.segments if known(s, f"channels.{name}.segments"))
            cap = quiet = None
            try:
                cap = parse_cap(channel.cap) if channel.cap else None
                quiet = parse_quiet_hours(channel.quiet_hours) if channel.quiet_hours else None
            except ValueError as exc:
                problem(f"channel {name!r}: {exc}", f"channels.{name}")
            channels[name] = Channel(name, fed, consent, cap, quiet)
        priority, groups = {}, {}
        for group, members in spec.priority.items():
            ranked = tuple(s for s in members if known(s, f"priority.{group}"))
            for rank, segment in enumerate(ranked):
                if segment in priority:
                    problem(f"segment {segment!r} is in two priority groups", f"priority.{group}")
                priority[segment] = rank
                groups[segment] = ranked
        return ActivationSettings(channels, self.cooldowns, priority, groups, settings.timezone_trait,
                                  settings.timezone, self.once_per)

    # --- segments --------------------------------------------------------------------------

    def _rules(self, scope: Scope, windows: dict[str, WindowDef]) -> list[Rule]:
        specs: dict[str, tuple[SegmentSpec, _Source, str, str | None]] = {}
        for path in sorted(self.directory.glob("*.toml")):
            if path.name == PACK_FILE:
                continue
            source = self._read(path)
            spec = self._decode(source, SegmentSpec) if source is not None else None
            if spec is None or source is None:
                continue
            if not NAME.match(spec.name):
                self._problem(Kind.BAD_VALUE, path.name, f"segment name {spec.name!r} must be lower_snake_case",
                              rule=spec.name, key="name", line=source.line_of("name"))
            when = spec.when
            if spec.requires_consent:
                when = f"({when}) and consent.{spec.requires_consent}"
            try:
                names = per_value.segment_names(spec.name, spec.for_each) if spec.for_each is not None else [
                    (spec.name, None)]
            except ValueError as exc:
                self._problem(Kind.BAD_VALUE, path.name, str(exc), rule=spec.name, key="for_each",
                              line=source.line_of("for_each"))
                continue
            for name, value in names:
                if name in specs:
                    self._problem(Kind.DUPLICATE, path.name, f"segment {name!r} is also defined in "
                                  f"{specs[name][1].name}", rule=name, key="name", line=source.line_of("name"))
                    continue
                specs[name] = (spec, source, when, value)
        order, cycles = judging_order({name: segments_read(when) for name, (_, _, when, _) in specs.items()})
        for cycle in cycles:
            source = specs[cycle[0]][1]
            self._problem(Kind.CYCLE, source.name, "segments read each other in a cycle: "
                          + " -> ".join(cycle), rule=cycle[0], key="when", line=source.line_of("when"))
        scope.segment_names = frozenset(specs)
        rules: list[Rule] = []
        for name in order:
            spec, source, when, value = specs[name]
            seen = scope if value is None else per_value.scope_for(scope, windows, value)
            condition = self._expression(source, when, seen, BOOL, "when", name, 0, original=spec.when)
            self._policies(name, spec, source, scope.fields)
            if condition is not None:
                scope.segments[name] = condition
                rules.append(Rule(name, spec.version, condition, source.name, spec.description.strip(),
                                  tuple(spec.tags), spec.requires_consent, definition=when))
        if not specs and not self.problems:
            self._problem(Kind.BAD_FILE, str(self.directory), "no segment files (*.toml besides pack.toml)")
        return rules

    def _policies(self, name: str, spec: SegmentSpec, source: _Source, fields: dict[str, Field]) -> None:
        """A segment's activation policies (``cooldown``, ``once_per``)."""
        if spec.cooldown is not None:
            try:
                self.cooldowns[name] = parse_duration(spec.cooldown)
            except ValueError as exc:
                self._problem(Kind.BAD_VALUE, source.name, str(exc), rule=name, key="cooldown",
                              line=source.line_of("cooldown"))
        if spec.once_per is not None:
            readable = {n: f for n, f in fields.items() if n != "now" and not n.startswith("windows.")}
            once = readable.get(spec.once_per)
            if once is None:
                self._problem(Kind.UNKNOWN_FIELD, source.name, f"once_per {spec.once_per!r} is not a field of "
                              f"the customer's record{did_you_mean(spec.once_per, readable)}",
                              rule=name, key="once_per", line=source.line_of("once_per"))
            else:
                self.once_per[name] = once

    def _expression(self, source: _Source | None, text: str | None, scope: Scope, want: str, key: str,
                    rule: str, after: int | None, *, original: str | None = None) -> Expr | None:
        if text is None:
            return None
        try:
            return expressions.compile_expression(text, scope, want)
        except ExprError as error:
            shown = (original or text).splitlines()
            line_in_expr = min(error.line, len(shown)) if shown else 1
            key_line = source.line_of(key, after or 0) if source else None
            file_line = None
            if key_line is not None and source is not None:
                opens_block = source.text.splitlines()[key_line - 1].rstrip().endswith(("'''", '"""'))
                file_line = key_line + line_in_expr - 1 + (1 if opens_block else 0)
            col = error.col
            if original is not None and error.line == 1 and text != original:
                col = max(col - 1, 1)  # the "(" we put around a consent-gated condition
            self._problem(error.kind, source.name if source else PACK_FILE, error.message, rule=rule,
                          key=key, line=file_line, col=col,
                          source=shown[line_in_expr - 1] if shown else text)
            return None


def _with_definitions(rules: list[Rule], windows: dict[str, WindowDef], traits: dict[str, str],
                      rfm: Rfm | None) -> list[Rule]:
    """The rules (in judging order) with their full definitions: version, condition, and what
    the names they read mean, the segments they read included."""
    out: list[Rule] = []
    done: dict[str, str] = {}
    for rule in rules:
        parts = [f"version={rule.version}", f"when={rule.definition}"]
        for name in sorted(rule.reads):
            if name.startswith("windows."):
                parts.append(f"{name}: {windows[window_name(name)].definition}")
            elif name.startswith("traits."):
                parts.append(f"{name}: {traits[name.removeprefix('traits.')]}")
            elif name.startswith("rfm_") and rfm is not None:
                parts.append(f"{name}: {rfm.definition}")
        for segment in sorted(segments_read(rule.definition)):
            parts.append(f"segment {segment}: {done[segment]}")
        done[rule.name] = "\n".join(parts)
        out.append(dataclasses.replace(rule, definition=done[rule.name]))
    return out

"""One rule over many values (docs/rules.md, One rule, many values): a segment file with
``for_each = ["electronics", "apparel", ...]`` is one segment per value, ``<name>_<value>``, and
in each of them a window kept ``by`` an event field (``by = "category"``) reads the count of that
value alone. A keyed window counts only the values some segment reads, and keeps per customer
its ``keep`` most counted, so a record stays within its bound however many values there are.
"""

from __future__ import annotations

import dataclasses

from streams.rules.compiled import Scope
from streams.rules.pack import Rule, WindowDef, window_name
from streams.rules.specs import NAME


def segment_names(name: str, values: list[str]) -> list[tuple[str, str]]:
    """(segment, value) for each value, or ValueError saying which value cannot name a segment."""
    if not values:
        raise ValueError("for_each lists no values")
    out = []
    for value in values:
        segment = f"{name}_{value}"
        if not NAME.match(segment):
            raise ValueError(f"for_each value {value!r}: {segment!r} is not a lower_snake_case segment name")
        out.append((segment, value))
    if len({s for s, _ in out}) < len(out):
        raise ValueError("for_each lists a value twice")
    return out


def scope_for(scope: Scope, windows: dict[str, WindowDef], value: str) -> Scope:
    """The names a segment of ``value`` reads: each keyed window is its count for that value."""
    fields, timed = dict(scope.fields), dict(scope.timed)
    for window in windows.values():
        if window.by is not None:
            fields[f"windows.{window.name}"], timed[f"windows.{window.name}"] = window.value_field(value)
    return dataclasses.replace(scope, fields=fields, timed=timed)


def with_values(windows: dict[str, WindowDef], rules: list[Rule]) -> dict[str, WindowDef]:
    """The keyed windows told which values segments read (only those are counted)."""
    read: dict[str, set[str]] = {}
    for rule in rules:
        for name in rule.reads:
            if name.startswith("windows.") and name.endswith("]"):
                read.setdefault(window_name(name), set()).add(name[name.index("[") + 1:-1])
    return {name: dataclasses.replace(w, values=frozenset(read.get(name, ()))) if w.by is not None else w
            for name, w in windows.items()}

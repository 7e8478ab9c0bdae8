"""Judging a customer: which segments they are in after a step, and their next deadline.

The pack is compiled once more for the engine: for each kind of step (an event of a type,
with a deadline due or not, with device or channel changed or not, with the keyed values it
counted; a deadline firing; a record judged whole), one generated function judges exactly
the rules that step can change, in judging order, each condition's source inlined, and
returns the next instant at which time alone could change a membership; and for each event
type one counts the event in the windows that take it. Made on first use and kept on the
pack (:attr:`streams.rules.pack.RulePack.plans`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from streams.engine.counting import count_in
from streams.model import windows
from streams.model.changes import Consent, SegmentChange, make
from streams.model.clock import Instant, format_instant
from streams.model.state import CustomerState
from streams.rules.compiled import HELPERS
from streams.rules.fields import TIME
from streams.rules.pack import Rule, RulePack, WindowDef

Plan = Callable[[CustomerState, str, Instant, list[SegmentChange], Instant | None], Instant | None]
"""``plan(state, key, now, changes, keep)``: judges the rules, appends their changes, and
returns the earliest of ``keep`` and the next changes of the rules whose deadlines it owns."""

MoveClock = Callable[[RulePack, CustomerState, Instant], None]
FirePlan = Callable[[CustomerState, str, Instant, list[SegmentChange], MoveClock], Instant | None]
"""``fire(state, key, at, changes, move_clock)``: ``move_clock`` moves the record's clock to ``at``."""

Count = Callable[[Any, CustomerState, Instant], Sequence[str]]

MAX_PLANS = 4096
"""Steps of a kind beyond this many (keyed values in many combinations) are judged by a plan
made for the occasion and not kept, so the cache stays bounded whatever the values."""


class Plans:
    """The generated functions of one pack: judging a step, firing a deadline, counting an event."""

    def __init__(self, pack: RulePack) -> None:
        self.pack = pack
        self.whole = self._build(pack.rules, pack.timed_rules)
        """Every rule and every deadline: a new record, a visitor identified."""
        self.fire = self._build_fire(pack.timed_rules)
        """A deadline reached."""
        self._steps: dict[tuple[Any, ...], Plan] = {}
        self._counts: dict[str, Count] = {}

    def count(self, tag: str) -> Count:
        """``count(event, state, ts)``: the event counted in the windows that take events of
        type ``tag``; returns the keyed values it changed, as :func:`add_to_windows` does."""
        count = self._counts.get(tag)
        if count is None:
            count = self._counts[tag] = self._build_count(self.pack.windows_for_type.get(tag, ()))
        return count

    def step(self, tag: str, due: bool, seen: bool, counted: Sequence[str]) -> Plan:
        """An event of type ``tag`` (``due``: one of the customer's deadlines is reached;
        ``seen``: device, channel or first_seen changed; ``counted``: the keyed window values
        it counted or forgot)."""
        key = (tag, due, seen, *counted)
        plan = self._steps.get(key)
        if plan is None:
            pack = self.pack
            rules = with_values(pack, pack.affected[tag, due, seen], counted)
            plan = self._build(rules, pack.timed_rules if due else [r for r in rules if r.timed])
            if len(self._steps) < MAX_PLANS:
                self._steps[key] = plan
        return plan

    def _build(self, rules: Sequence[Rule], timed: Sequence[Rule]) -> Plan:
        env: dict[str, Any] = {**HELPERS, "_changed": self._changed}
        lines = ["def judge(s, key, now, changes, keep):", "    m = s.members"]
        for n, rule in enumerate(rules):
            lines += _judged(n, rule, env, "    ")
        lines.append("    d = keep")
        for rule in timed:
            if rule.condition.next is not None:
                lines += [f"    t = {rule.condition.next}", *_earlier("t", "    ")]
        lines.append("    return d")
        return self._compile(lines, env)

    def _compile(self, lines: list[str], env: dict[str, Any]) -> Any:
        """The function ``lines`` define (its name on their first line), as profiles name it."""
        name = lines[0][4:lines[0].index("(")]
        exec(compile("\n".join(lines), f"<pack {self.pack.version}>", "exec"), env)
        return env[name]

    def _build_count(self, defs: Sequence[WindowDef]) -> Count:
        """A plain window's filter and value inlined; a keyed one through :func:`count_in`."""
        env: dict[str, Any] = {**HELPERS, "_add": windows.add, "_count_in": count_in}
        keyed = any(window.by is not None for window in defs)
        lines = ["def count(s, st, ts):", "    now = st.clock", "    w = st.windows",
                 "    counted = []" if keyed else "    counted = ()"]
        for n, window in enumerate(defs):
            env[f"_w{n}"] = window
            if window.by is not None:
                lines.append(f"    _count_in(st, s, _w{n}, ts, now, counted)")
                continue
            env[f"_c{n}"] = windows.COMBINE[window.aggregate]
            indent, value = "    ", "1"
            if window.where is not None:
                env.update(window.where.env)
                lines.append(f"{indent}if {window.where.code}:")
                indent += "    "
            if window.value is not None:
                env.update(window.value.env)
                lines += [f"{indent}v = {window.value.code}", f"{indent}if v is not None:"]
                indent, value = indent + "    ", "v"
            name = repr(window.name)
            lines += [f"{indent}e = w.get({name})", f"{indent}if e is None:", f"{indent}    e = w[{name}] = []",
                      f"{indent}_add(e, ts, {value}, now, {window.length}, _c{n})",
                      f"{indent}if not e:", f"{indent}    del w[{name}]"]
        lines.append("    return counted")
        return self._compile(lines, env)

    def _build_fire(self, timed: Sequence[Rule]) -> FirePlan:
        """Judges only the rules whose next change has come. The others' values have not
        changed since the record's last step (their next change is later, and exact), nor has
        that next change: theirs stays as it was computed before the clock moved."""
        env: dict[str, Any] = {**HELPERS, "_changed": self._changed, "_pack": self.pack}
        timed = [rule for rule in timed if rule.condition.next is not None]
        lines = ["def fire(s, key, at, changes, move_clock):"]
        lines += [f"    n{n} = {rule.condition.next}" for n, rule in enumerate(timed)]
        lines += ["    move_clock(_pack, s, at)", "    now = s.clock", "    m = s.members", "    d = None"]
        for n, rule in enumerate(timed):
            lines += [f"    if n{n} is not None and n{n} <= now:", *_judged(n, rule, env, "        "),
                      f"        n{n} = {rule.condition.next}", *_earlier(f"n{n}", "    ")]
        lines.append("    return d")
        return self._compile(lines, env)

    def _changed(self, rule: Rule, key: str, state: CustomerState, now: Instant,
                 changes: list[SegmentChange]) -> None:
        pack = self.pack
        count = flip(state, rule.name, now)
        changes.append(make(key, rule.name, count, now, pack.reason(rule, state, reason_value),
                            consent_of(state), rule.version, state.origin, pack.version))


def _judged(n: int, rule: Rule, env: dict[str, Any], indent: str) -> list[str]:
    """Source that judges ``rule`` (known as ``_r<n>``): a member whose condition is false, or a
    non-member whose condition is true, changes."""
    env.update(rule.condition.env)
    env[f"_r{n}"] = rule
    return [f"{indent}if (not {rule.condition.code}) == (m.get({rule.name!r}, 0) % 2 == 1):",
            f"{indent}    _changed(_r{n}, key, s, now, changes)"]


def _earlier(name: str, indent: str) -> list[str]:
    """Source that keeps in ``d`` the earlier of ``d`` and the instant ``name`` (None: none)."""
    return [f"{indent}if {name} is not None and (d is None or {name} < d):", f"{indent}    d = {name}"]


def plans_of(pack: RulePack) -> Plans:
    plans = pack.plans
    if plans is None:
        plans = pack.plans = Plans(pack)
    assert isinstance(plans, Plans)
    return plans


def with_values(pack: RulePack, rules: tuple[Rule, ...], counted: Sequence[str]) -> tuple[Rule, ...]:
    """``rules`` and those reading the keyed values an event changed, in judging order."""
    extra = {rule.name: rule for key in counted for rule in pack.by_value.get(key, ())}
    if not extra:
        return rules
    extra.update((rule.name, rule) for rule in rules)
    return tuple(sorted(extra.values(), key=lambda rule: pack.rank[rule.name]))


def flip(state: CustomerState, segment: str, now: Instant) -> int:
    """The customer enters or leaves ``segment`` at ``now``; the new transition count."""
    count = state.members.get(segment, 0) + 1
    state.members[segment] = count
    if count % 2 == 1:
        state.since[segment] = now
    else:
        state.since.pop(segment, None)
    return count


def next_deadline(rules: Iterable[Rule], state: CustomerState, keep: Instant | None) -> Instant | None:
    best = keep
    for rule in rules:
        nxt = rule.condition.nxt
        if nxt is None:
            continue
        t = nxt(state)
        if t is not None and (best is None or t < best):
            best = t
    return best


def reason_value(typ: str, value: Any) -> Any:
    if typ == TIME and value is not None:
        return format_instant(value)
    return value


def consent_of(state: CustomerState) -> Consent:
    return Consent(state.consent_email, state.consent_sms, state.consent_push)

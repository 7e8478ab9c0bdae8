"""``segmenter rules deploy`` and ``segmenter rules history``: putting a pack live, safely.

Deploy checks before it sends anything, and refuses with every problem listed: the pack must
load, its rule tests pass, and a rule whose definition changed must have a new ``version``. It
then shows what the switch would do on the live state (:mod:`streams.live.preview`), how far
back history reaches for new windows, and asks; the guard rail asks for a flag when a segment
that needs consent on a channel would take in more than ``--max-share`` of the customers. The
deployment goes to the deployments topic; every worker takes it at ``effective_at``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TextIO

from streams.engine.switch import Switch, new_windows
from streams.live import deploys, preview
from streams.live.readers import read_compacted
from streams.live.settings import WorkerSettings
from streams.model.clock import (
    SECOND,
    Instant,
    format_duration,
    format_instant,
    from_datetime,
    parse_instant,
)
from streams.offline import ruletest
from streams.rules import deployments
from streams.rules.deployments import Deployment
from streams.rules.load import load_pack
from streams.rules.pack import Rule, RulePack
from streams.rules.problems import RuleError

LEAD = 30.0
"""Seconds between a deploy and its default effective_at: time for every worker to learn it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="rules folder of the pack to put live")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--effective-at", type=_instant, metavar="TS", help="instant of event time it goes live (ISO 8601); "
                      f"default: {LEAD:.0f} s after the later of now and the partitions' clocks")
    when.add_argument("--in", dest="lead", type=float, default=LEAD, metavar="SECONDS",
                      help=f"go live this many seconds from now (default {LEAD:.0f})")
    parser.add_argument("--yes", action="store_true", help="do not ask before putting it live")
    parser.add_argument("--dry-run", action="store_true", help="check and preview only")
    parser.add_argument("--by", default="", help="who deploys (free text, shown by rules history)")
    parser.add_argument("--note", default="", help="why (free text, shown by rules history)")
    parser.add_argument("--max-share", type=float, default=0.10, metavar="SHARE",
                        help="largest share of customers a consent-gated segment may take in at the switch "
                        "without --allow-large (default 0.10)")
    parser.add_argument("--allow-large", action="store_true", help="go ahead past --max-share")
    parser.add_argument("--partial-history", action="store_true",
                        help="go ahead when a new window reaches further back than the input topics retain")


def _instant(text: str) -> Instant:
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time with an offset: {exc}") from None


def problems(directory: str) -> tuple[RulePack | None, list[str]]:
    """The pack, and everything in it that keeps it from going live: every load problem, or
    every failing rule test."""
    try:
        pack = load_pack(directory)
    except RuleError as error:
        return None, [str(problem) for problem in error.problems]
    out = io.StringIO()
    if ruletest.discover(directory) and ruletest.command(directory, out=out) != 0:
        return pack, [f"rule tests: {line}" for line in out.getvalue().splitlines() if not line.startswith("ok")]
    return pack, []


def unversioned(pack: RulePack, live: RulePack) -> list[str]:
    """Rules whose definition changed while their version stayed the same."""
    before = {rule.name: rule for rule in live.rules}
    found = []
    for rule in pack.rules:
        prior = before.get(rule.name)
        if prior is not None and prior.version == rule.version and prior.definition != rule.definition:
            what = ("a window, trait or segment it reads changed" if _condition(prior) == _condition(rule)
                    else "its condition changed")
            found.append(f"{rule.file}: segment {rule.name!r}: {what} but its version is still "
                         f"{rule.version}: set version = {rule.version + 1}, so every change says which "
                         f"rule decided it")
    return found


def _condition(rule: Rule) -> str:
    return rule.definition.split("\n")[1]


def too_large(pack: RulePack, seen: preview.Preview, max_share: float) -> list[str]:
    """Segments gated on a channel's consent that the switch would fill past ``max_share`` of
    the customers: each is a campaign about to message that many people at once."""
    found = []
    for rule in pack.rules:
        entries = seen.entries(rule.name)
        share = entries / max(seen.customers, 1)
        if rule.requires_consent and share > max_share:
            found.append(f"{rule.name} (needs {rule.requires_consent} consent) would take in {entries} "
                         f"customers at once, {share:.0%} of {seen.customers}, over --max-share {max_share:.0%}")
    return found


def live_pack(history: list[Deployment]) -> tuple[RulePack | None, Instant | None]:
    """The pack of the latest deployment (by effective_at), and that instant."""
    if not history:
        return None, None
    latest = max(history, key=lambda d: d.at)
    return deployments.compile_pack(latest), latest.at


def command(args: argparse.Namespace, settings: WorkerSettings, out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    return asyncio.run(_deploy(args, settings, out))


async def _deploy(args: argparse.Namespace, settings: WorkerSettings, out: TextIO) -> int:
    pack, found = problems(args.dir)  # before anything is read from Kafka
    live, live_at = None, None
    if pack is not None and not found:
        live, live_at = live_pack(await deploys.read_all(settings))
        found = [] if live is None else unversioned(pack, live)
    if found or pack is None:
        print(f"refused: {args.dir} cannot go live:", file=out)
        for problem in found:
            print(f"  {problem}", file=out)
        return 1
    now = from_datetime(datetime.now(UTC))
    if args.effective_at:
        at = args.effective_at
    else:
        clocks = await read_compacted(settings, preview.changelog(settings, "progress"))
        latest = max([now, *(int(v) for k, v in clocks.items() if k.startswith("clock#"))])
        at = latest + int(args.lead * SECOND)
    if live_at is not None and at <= live_at:
        print(f"refused: effective_at {format_instant(at)} is not after the live deployment's "
              f"({format_instant(live_at)})", file=out)
        return 1
    deployment = deployments.of_folder(args.dir, at, by=args.by, note=args.note,
                                       deployed_at=format_instant(now))
    scheduled = deployments.Scheduled(at, pack, deployment.id)
    base = live or pack
    switch = Switch(base, pack, at, pack.traits)
    print(f"pack {pack.version} ({pack.digest[:12]}) from {args.dir}, live at {format_instant(at)}"
          f"{'' if live is None else f', replacing pack {live.version}'}", file=out)
    for segment, kind in sorted(switch.effect.items()):
        print(f"  {kind:8} {segment}", file=out)
    seen = await preview.preview(settings, base, scheduled)
    added = new_windows(base, pack)
    if added:
        longest = max(w.length for w in added.values())
        reach = seen.reach.earliest
        told = "all of it" if reach is None else f"back to {format_instant(reach)}"
        print(f"history for new windows: {len(added)} window(s), up to {format_duration(longest)} back; "
              f"the input topics hold {told}; {seen.history_read} messages read", file=out)
        if reach is not None and reach > at - longest and not args.partial_history:
            print(f"refused: a new window needs history from {format_instant(at - longest)} but the input "
                  f"topics begin at {format_instant(reach)}; --partial-history to go ahead", file=out)
            return 1
    print(f"at the switch, of {seen.customers} customers:", file=out)
    for segment in sorted(set(switch.effect) | set(seen.counts)):
        counts: Mapping[str, int] = seen.counts.get(segment, {})
        print(f"  {segment}: {counts.get('entered', 0)} enter, {counts.get('exited', 0)} exit", file=out)
        for change in seen.samples.get(segment, []):
            print(f"    {change.change} {change.customer_id} {change.reason}", file=out)
    large = too_large(pack, seen, args.max_share)
    if large and not args.allow_large:
        for problem in large:
            print(f"refused: {problem}; --allow-large to go ahead", file=out)
        return 1
    if args.dry_run:
        print("dry run: nothing deployed", file=out)
        return 0
    if not args.yes and not _confirm(out):
        print("not deployed", file=out)
        return 1
    deployment.preview = seen.plain()
    await deploys.publish(settings, deployment)
    print(f"deployed {deployment.id}: pack {deployment.pack_version} goes live at {deployment.effective_at}",
          file=out)
    return 0


def _confirm(out: TextIO) -> bool:
    if not sys.stdin.isatty():
        print("refused: not a terminal to ask on; --yes to deploy without asking", file=out)
        return False
    return input("put it live? [y/N] ").strip().lower() in ("y", "yes")


def history(settings: WorkerSettings, as_json: bool, out: TextIO | None = None) -> int:
    """``segmenter rules history``: what was live when, by whom, with what effect."""
    out = out if out is not None else sys.stdout
    found = sorted(asyncio.run(deploys.read_all(settings)), key=lambda d: d.at)
    if as_json:
        for deployment in found:
            out.write(deployments.encode(deployment).decode() + "\n")
        return 0
    if not found:
        print("no deployments yet: the first worker records the pack it starts with", file=out)
        return 0
    print(f"{'effective_at':22} {'pack':14} {'by':12} effect / note", file=out)
    for deployment in found:
        effect = ", ".join(f"{s} +{c.get('entered', 0)}/-{c.get('exited', 0)}"
                           for s, c in deployment.preview.items()) or "-"
        print(f"{deployment.effective_at:22} {deployment.pack_version:14} {deployment.by or '-':12} {effect}"
              f"{'  (' + deployment.note + ')' if deployment.note else ''}", file=out)
    print(f"(at {format_instant(from_datetime(datetime.now(UTC)))})", file=out)
    return 0

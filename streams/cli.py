"""The ``segmenter`` command: one entry point, one subcommand per thing a user does."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams import __version__
from streams.errors import SegmenterError
from streams.model.clock import parse_instant
from streams.rules.problems import RuleError

if TYPE_CHECKING:
    from streams.model.limits import Limits
    from streams.rules.deployments import Scheduled
    from streams.rules.pack import RulePack

DEFAULT_RULES = "rules"


def _instant(text: str) -> int:
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time with an offset: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segmenter", description="Real-time customer segmentation on Kafka.")
    parser.add_argument("--version", action="version", version=f"segmenter {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    replay = commands.add_parser("replay", help="run the engine offline over a JSONL file of events",
                                 description="Replay events from a JSONL file (or - for stdin) through the "
                                 "rules; print segment changes as JSON lines on stdout, bad events and a "
                                 "summary on stderr.")
    replay.add_argument("file", help="JSONL file of events, or - for standard input")
    replay.add_argument("--rules", default=DEFAULT_RULES, metavar="DIR", help="rules folder (default: rules)")
    replay.add_argument("--until", type=_instant, metavar="TS",
                        help="move the clock to this time at the end, firing the deadlines due by then")
    replay.add_argument("--deployments", metavar="FILE",
                        help="rule deployments (JSON lines, as `segmenter rules history --json` prints "
                        "them): each pack goes live at its effective_at, as on the workers")
    replay.add_argument("--activations", action="store_true",
                        help="print the activations (docs/activation.md) instead of the changes, and on "
                        "stderr what each policy suppressed and what quiet hours held")
    replay.set_defaults(run=_replay)

    backtest = commands.add_parser("backtest", help="replay a history and report how each segment behaved",
                                   description="Replay events from a JSONL file through the rules and report, "
                                   "per segment, entrants, entries, stay lengths, re-entries, size at the end "
                                   "and peak, and how much segments overlap; a table on stdout and in "
                                   "OUT/backtest.txt, a chart of segment sizes in OUT/segment_sizes.png.")
    backtest.add_argument("file", help="JSONL file of events")
    backtest.add_argument("--rules", default=DEFAULT_RULES, metavar="DIR", help="rules folder (default: rules)")
    backtest.add_argument("--out", default="backtest", metavar="DIR",
                          help="folder for backtest.txt and segment_sizes.png (default: backtest)")
    backtest.add_argument("--until", type=_instant, metavar="TS",
                          help="move the clock to this time at the end, firing the deadlines due by then")
    backtest.add_argument("--deployments", metavar="FILE",
                          help="rule deployments (JSON lines), each going live at its effective_at")
    backtest.add_argument("--suggest-rfm", action="store_true",
                          help="also print an [rfm] table for pack.toml: cut points at the quintiles of "
                               "the customers' recency, frequency and monetary value at the end")
    backtest.set_defaults(run=_backtest)

    worker = commands.add_parser("worker", help="run the streaming worker on Kafka",
                                 description="The streaming worker: consumes the input topics, keeps "
                                 "customer state in faust tables, produces segment changes. Every flag "
                                 "has a SEGMENTER_* environment variable.")
    _worker_flags(worker)
    worker.add_argument("--loglevel", default="info", choices=["crit", "error", "warn", "info", "debug"])
    worker.set_defaults(run=_worker)

    simulate = commands.add_parser("simulate", help="generate simulated customer events, as JSON lines or onto Kafka",
                                   description="Simulated shoppers (personas, sessions, identity, noise), "
                                   "deterministic for a seed: JSON lines on stdout or in --out, or produced "
                                   "to the worker's input topics with --kafka.")
    from streams.tools import simulate as simulate_module

    simulate_module.add_arguments(simulate)
    simulate.set_defaults(run=simulate_module.run)

    demo_view = commands.add_parser("demo-view", help="watch segment changes live (the view of scripts/demo)",
                                    description="Consume the segment-changes topic and show, once a second, "
                                    "segment sizes, entries and exits per minute and the latest changes. "
                                    "On a terminal the view is redrawn in place; otherwise it prints plain "
                                    "snapshot blocks.")
    from streams.tools import demo_view as demo

    demo.add_arguments(demo_view)
    demo_view.set_defaults(run=demo.run)

    members = commands.add_parser("members", help="export a segment's current members (JSONL or CSV)",
                                  description="The current members of SEGMENT, read from the workers' "
                                  "compacted memberships topic: JSON lines (default) or CSV on stdout, "
                                  "sorted by customer id. Kafka settings as for the worker.")
    members.add_argument("segment", help="the segment's name")
    members.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    _kafka_flags(members)
    members.add_argument("--memberships-topic", default=None, metavar="TOPIC",
                         help="the memberships topic (env SEGMENTER_MEMBERSHIPS_TOPIC, default segment-memberships)")
    members.set_defaults(run=_members)

    schemas = commands.add_parser("schemas", help="write the JSON Schemas of input events and segment changes",
                                  description="Write docs/schemas/input-event.json and segment-change.json "
                                  "(or into --out), generated from the types the engine decodes and "
                                  "encodes with.")
    schemas.add_argument("--out", default="docs/schemas", metavar="DIR",
                         help="folder to write them to (default: docs/schemas)")
    schemas.set_defaults(run=_schemas)

    rules = commands.add_parser("rules", help="work with rule files")
    rules_commands = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND", required=True)
    validate = rules_commands.add_parser("validate", help="check rule files; list every problem")
    validate.add_argument("dir", nargs="?", default=DEFAULT_RULES, help="rules folder (default: rules)")
    validate.set_defaults(run=_validate)
    rule_tests = rules_commands.add_parser("test", help="run the rule tests in DIR/tests/*.toml",
                                           description="Run every case of DIR/tests/*.toml through a fresh "
                                           "engine and compare the segment changes with the expected ones "
                                           "(see docs/rules.md). Exit 0 only if all pass.")
    rule_tests.add_argument("dir", nargs="?", default=DEFAULT_RULES, help="rules folder (default: rules)")
    rule_tests.set_defaults(run=_rules_test)
    deploy = rules_commands.add_parser(
        "deploy", help="validate, test and preview a pack, then put it live on the running workers",
        description="Check the pack (it loads, its rule tests pass, a changed rule has a new version), "
        "show what the switch would do on the live state (entries and exits per segment, with a sample, "
        "and how far back history reaches for new windows), ask, and put it live at effective_at on "
        "every worker. Deploying an older pack is a rollback. Kafka settings: --bootstrap-servers, "
        "--app-id or the SEGMENTER_* variables of the worker.")
    from streams.tools import deploy as deploy_module

    deploy_module.add_arguments(deploy)
    _kafka_flags(deploy)
    deploy.set_defaults(run=_rules_deploy)
    package = rules_commands.add_parser(
        "package", help="print a deployment of a pack as a JSON line, for replay and backtest --deployments",
        description="The deployment `rules deploy` would send, without Kafka: to see offline what a pack "
        "going live at an instant does to a history (`segmenter replay FILE --deployments OUT`).")
    package.add_argument("dir", help="rules folder of the pack")
    package.add_argument("--effective-at", type=_instant, required=True, metavar="TS",
                         help="instant of event time it goes live (ISO 8601)")
    package.add_argument("--by", default="", help="who (free text)")
    package.add_argument("--note", default="", help="why (free text)")
    package.set_defaults(run=_rules_package)
    history = rules_commands.add_parser("history", help="list the rule packs put live, when, by whom, with what effect",
                                        description="Every deployment on the workers' deployments topic, "
                                        "in the order they go live; --json prints them as JSON lines, the "
                                        "file `segmenter replay --deployments` reads.")
    history.add_argument("--json", action="store_true", help="JSON lines, with each pack's files")
    _kafka_flags(history)
    history.set_defaults(run=_rules_history)
    return parser


def _kafka_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-servers", default=None, metavar="SERVERS",
                        help="Kafka bootstrap servers (env SEGMENTER_BOOTSTRAP_SERVERS, default 127.0.0.1:9092)")
    parser.add_argument("--app-id", default=None, metavar="ID",
                        help="the workers' app id (env SEGMENTER_APP_ID, default segmenter)")
    parser.add_argument("--partitions", default=None, metavar="N",
                        help="partitions of the input topics (env SEGMENTER_PARTITIONS, default 8)")


def _worker_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per worker setting, saying what it does; defaults stay None so that the
    environment can fill them."""
    from streams.live import settings

    for s in settings.describe():
        text = f"{s.help} (env {s.env}, default {s.default})"
        if s.type is bool:
            parser.add_argument(s.flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            parser.add_argument(s.flag, default=None, metavar=s.name.split("_")[-1].upper(), help=text)


def _replay(args: argparse.Namespace) -> int:
    from streams.offline.replay import replay_file
    from streams.rules.load import load_pack

    pack = load_pack(args.rules)
    if args.file != "-" and not Path(args.file).is_file():
        print(f"segmenter replay: no such file: {args.file}", file=sys.stderr)
        return 2
    replay_file(pack, args.file, until=args.until, limits=_limits(pack), deployments=_deployments(args),
                activations=args.activations)
    return 0


def _deployments(args: argparse.Namespace) -> list[Scheduled]:
    from streams.rules import deployments

    return [] if not args.deployments else deployments.schedule(deployments.read_file(args.deployments))


def _limits(pack: RulePack) -> Limits:
    """The worker's limits, from the same SEGMENTER_* variables, checked against the pack."""
    from streams.engine import bounds
    from streams.model.limits import from_environ

    limits = from_environ()
    bounds.check(pack, limits)
    return limits


def _backtest(args: argparse.Namespace) -> int:
    from streams.offline.backtest import Activations, backtest_file
    from streams.offline.report import chart, table
    from streams.rules.load import load_pack

    pack = load_pack(args.rules)
    if not Path(args.file).is_file():
        print(f"segmenter backtest: no such file: {args.file}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    activations = Activations()
    suggestion: list[str] = []

    def suggest_rfm(engine: Any) -> None:
        from streams.offline.backtest import rfm_values
        from streams.rules import rfm

        values, horizon = rfm_values(engine)
        if not values["recency"]:
            suggestion.append("# RFM: no customer with an order in this history: no cut points to suggest\n")
            return
        whole = "" if horizon is not None else " (the pack has no [rfm]: frequency and monetary over the whole history)"
        suggestion.append(f"# RFM cut points at the quintiles of {len(values['recency']):,} customers with an "
                          f"order{whole}; paste into pack.toml\n"
                          + rfm.suggest(values, horizon or rfm.parse_duration("365d")))

    report, summary = backtest_file(pack, args.file, until=args.until, deployments=_deployments(args),
                                    activations=activations, finished=suggest_rfm if args.suggest_rfm else None)
    skipped = f", {summary.bad} bad skipped (segmenter replay lists them)" if summary.bad else ""
    text = table(report, f"Backtest of {args.file} with the rules in {args.rules}: "
                         f"{summary.events_read:,} events{skipped}, "
                         f"{sum(sum(k.values()) for k in summary.changes.values()):,} changes")
    text += "\n" + activations.table()
    text += "".join("\n" + block for block in suggestion)
    sys.stdout.write(text)
    sys.stdout.flush()
    (out / "backtest.txt").write_text(text)
    chart(report, out / "segment_sizes.png", title=f"Segment sizes over time: {Path(args.file).name}")
    print(f"backtest: wrote {out / 'backtest.txt'} and {out / 'segment_sizes.png'}", file=sys.stderr)
    return 0


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    import faust

    from streams.engine import bounds
    from streams.live import settings
    from streams.live.worker import Worker
    from streams.rules.load import load_pack

    config = settings.load(vars(args))
    try:
        pack = load_pack(config.rules)
    except RuleError as error:
        print(f"segmenter worker: refusing to start: the rules in {config.rules} are invalid\n{error}",
              file=sys.stderr)
        return 1
    topics = [*config.input_topics, config.identity_topic]
    bounds.check(pack, config.limits(), sources=len(topics) * config.partitions,
                 source_length=max(map(len, topics)) + 6)
    worker = Worker(config, pack)
    asyncio.run(worker.ensure_topics())
    asyncio.run(worker.rollout.read_known())
    faust.Worker(worker.app, loglevel=args.loglevel, quiet=True).execute_from_commandline()
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from streams.model.schemas import write

    for path in write(args.out):
        print(path)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from streams.rules.load import load_pack

    pack = load_pack(args.dir)
    print(f"{args.dir}: {len(pack.rules)} segments and {len(pack.windows)} windows in use, all valid")
    for rule in pack.rules:
        print(f"  {rule.name} v{rule.version} ({rule.file})")
    return 0


def _rules_test(args: argparse.Namespace) -> int:
    from streams.offline.ruletest import command

    return command(args.dir)


def _rules_deploy(args: argparse.Namespace) -> int:
    from streams.live import settings
    from streams.tools import deploy

    return deploy.command(args, settings.load(vars(args)))


def _members(args: argparse.Namespace) -> int:
    from streams.live import settings
    from streams.tools import members

    return members.command(settings.load(vars(args)), args.segment, args.format)


def _rules_package(args: argparse.Namespace) -> int:
    from streams.rules import deployments

    made = deployments.of_folder(args.dir, args.effective_at, by=args.by, note=args.note)
    print(deployments.encode(made).decode())
    return 0


def _rules_history(args: argparse.Namespace) -> int:
    from streams.live import settings
    from streams.tools import deploy

    return deploy.history(settings.load(vars(args)), args.json)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from streams.engine import collector

    collector.tune()
    try:
        code: int = args.run(args)
    except RuleError as error:
        print(error, file=sys.stderr)
        return 1
    except SegmenterError as error:
        print(f"segmenter: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())

"""Drawing a :class:`streams.offline.backtest.Report`: a plain-text table and a PNG of segment sizes.

The chart is drawn on a bare ``Figure`` with the Agg canvas: no pyplot, no global state, no
display needed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from streams.model.clock import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    Duration,
    Instant,
    format_instant,
    to_datetime,
)
from streams.offline.backtest import NOT_DISTINCT, Report, SegmentReport


def human_duration(duration: Duration | None) -> str:
    """``2d 4h``, ``3h 05m``, ``30m``, ``12s``: the two largest units, rounded down."""
    if duration is None:
        return "-"
    if duration < MINUTE:
        return f"{duration / SECOND:.0f}s"
    if duration < HOUR:
        return f"{duration // MINUTE}m"
    if duration < DAY:
        return f"{duration // HOUR}h {duration % HOUR // MINUTE:02d}m"
    return f"{duration // DAY}d {duration % DAY // HOUR}h"


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f}%"


def _short_time(instant: Instant | None) -> str:
    return "-" if instant is None else format_instant(instant)[:16].replace("T", " ")


def table(report: Report, heading: str = "") -> str:
    """The report as text: one row per segment, then the overlapping pairs."""
    lines = [heading] if heading else []
    lines.append(f"Period: {_short_time(report.start)} to {_short_time(report.end)} UTC")
    lines.append("")
    columns = ["segment", "customers", "entries", "re-entered", "median stay", "p90 stay",
               "stays ended", "inside at end", "peak", "peak at (UTC)"]
    rows = [_row(s) for s in report.segments]
    widths = [max(len(columns[i]), *(len(r[i]) for r in rows)) for i in range(len(columns))]
    lines.append(_line(columns, widths))
    lines.append(_line(["-" * w for w in widths], widths))
    lines.extend(_line(row, widths) for row in rows)
    lines.append("")
    lines.append("customers: entered at least once; re-entered: share of them who entered 2+ times;")
    lines.append("stays: of stays that ended; inside at end: stays still open = size at the end.")
    never = [s.name for s in report.segments if s.entries == 0]
    if never:
        lines.append(f"Never entered: {', '.join(never)}.")
    lines.append("")
    lines.extend(_overlap_matrix(report))
    lines.append("")
    flagged = report.not_distinct()
    if flagged:
        lines.append(f"Not distinct (>= {NOT_DISTINCT:.0%} of its member-time inside another segment):")
        lines.extend(f"  {o.segment} is {_percent(o.time_share)} inside {o.other} "
                     f"({_percent(o.customer_share)} of its customers were in both at once)" for o in flagged)
    else:
        lines.append(f"Every segment is distinct: none is >= {NOT_DISTINCT:.0%} inside another.")
    if report.anomalies:
        lines.append(f"Warning: {report.anomalies} changes broke the entered/exited alternation "
                     "and were ignored.")
    return "\n".join(lines) + "\n"


def _overlap_matrix(report: Report) -> list[str]:
    """Row A, column B: the share of A's member-time spent also in B, in whole percent."""
    names = [s.name for s in report.segments if s.member_time > 0]
    if len(names) < 2:
        return ["Overlap: fewer than two segments had members; nothing to compare."]
    shares = {(o.segment, o.other): o.time_share for o in report.overlaps}
    lines = ["Overlap: % of the row segment's member-time (customers x time) also spent in the column",
             f"segment; * marks >= {NOT_DISTINCT:.0%}: the row segment is not distinct from the column one.", ""]
    width = max(len(n) for n in names) + 6
    cell = max(5, len(str(len(names))) + 2)
    lines.append(" " * width + "".join(f"{n:>{cell - 1}} " for n in range(1, len(names) + 1)).rstrip())
    for i, a in enumerate(names, start=1):
        cells = []
        for b in names:
            share = shares.get((a, b), 0.0)
            text = "." if a == b else "" if share == 0 else "<1" if share < 0.005 else f"{100 * share:.0f}"
            cells.append(text.rjust(cell - 1) + ("*" if share >= NOT_DISTINCT else " "))
        lines.append((f"{i:>2}  {a}".ljust(width) + "".join(cells)).rstrip())
    return lines


def _row(s: SegmentReport) -> list[str]:
    return [s.name, f"{s.entrants:,}", f"{s.entries:,}", _percent(s.reentry_share),
            human_duration(s.median_stay), human_duration(s.p90_stay), f"{s.completed:,}",
            f"{s.inside_at_end:,}", f"{s.peak:,}", _short_time(s.peak_at)]


def _line(cells: list[str], widths: list[int], left: int = 1) -> str:
    """The first ``left`` columns left-aligned, the others right-aligned."""
    out = [cell.ljust(width) for cell, width in zip(cells[:left], widths[:left], strict=True)]
    out.extend(cell.rjust(width) for cell, width in zip(cells[left:], widths[left:], strict=True))
    return "  ".join(out)


def chart(report: Report, path: str | Path, title: str = "Segment sizes over time") -> None:
    """A PNG with one step line per segment that ever had a member, biggest peak first."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 7), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    drawn = sorted((s for s in report.segments if s.entries), key=lambda s: (-s.peak, s.name))
    colours = [f"tab:{c}" for c in ("blue", "orange", "green", "red", "purple", "brown", "pink",
                                    "gray", "olive", "cyan")]
    styles = ["-", "--", ":"]
    for n, segment in enumerate(drawn):
        points = report.sizes[segment.name]
        times = [report.start if report.start is not None else points[0][0], *(t for t, _ in points)]
        sizes = [0, *(size for _, size in points)]
        if report.end is not None and report.end > times[-1]:
            times.append(report.end)
            sizes.append(sizes[-1])
        axes.plot(date2num([to_datetime(t) for t in times]), sizes, drawstyle="steps-post", linewidth=1.4,
                  color=colours[n % len(colours)], linestyle=styles[n // len(colours) % len(styles)],
                  label=f"{segment.name} (peak {segment.peak:,}, end {segment.inside_at_end:,})")
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.set_title(title, fontsize=13)
    axes.set_xlabel("event time (UTC)")
    axes.set_ylabel("members")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    if drawn:
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=3, fontsize=9, frameon=False)
    never = [s.name for s in report.segments if not s.entries]
    if never:
        # Wrapped, and kept out of the layout: a long list must not squeeze the plot away.
        text = textwrap.fill("never entered: " + ", ".join(never), width=150)
        axes.text(0.01, 0.98, text, transform=axes.transAxes, fontsize=8, va="top", color="dimgray",
                  in_layout=False)
    figure.savefig(path)

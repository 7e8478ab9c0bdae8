"""What an engine did: events applied, dropped and refused, and the changes and activations it made."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Stats:
    events: int = 0
    """Events applied (duplicates and bad events not included)."""
    bad: int = 0
    duplicates: int = 0
    late: int = 0
    """Events behind the customer's own time that were still applied."""
    after_erasure: int = 0
    """Events from before a customer's erasure that arrived after it, dropped."""
    changes: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(segment, entered|exited) -> count."""
    activations: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(policy, segment, channel) -> activations it suppressed; ("held", ...) -> held ones."""

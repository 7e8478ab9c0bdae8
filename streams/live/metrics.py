"""Prometheus metrics of a worker, in a registry of its own (several workers may share a process in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter("segmenter_events_in", "Messages read, by topic", ["topic"], registry=r)
        self.events_applied = Counter("segmenter_events_applied", "Messages taken through the engines (after "
                                      "event-time alignment), dead letters included", registry=r)
        self.bad_events = Counter("segmenter_bad_events", "Messages sent to the dead-letter topic", ["topic"],
                                  registry=r)
        self.duplicates = Counter("segmenter_duplicate_events", "Events dropped as exact duplicates", registry=r)
        self.changes = Counter("segmenter_changes", "Segment changes emitted", ["segment", "change"], registry=r)
        self.segment_size = Gauge("segmenter_segment_size", "Members per segment on this worker", ["segment"],
                                  registry=r)
        self.lag = Gauge("segmenter_consumer_lag", "Messages behind the end of each input partition",
                         ["topic", "partition"], registry=r)
        self.timers = Gauge("segmenter_timer_backlog", "Customers with a pending time-triggered deadline",
                            registry=r)
        self.batch_seconds = Histogram("segmenter_batch_seconds", "Time to evaluate one slice of a fetch (the "
                                       "events applied between two yields: rules and state), excluding Kafka I/O", registry=r,
                                       buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.clock_step = Gauge("segmenter_clock_step_seconds", "How far the system clock was stepped since "
                                "the worker started; the worker keeps the clock it read then", registry=r)
        self.handoffs_given_up = Counter("segmenter_handoffs_given_up", "Identity merges not back within "
                                         "handoff_wait: the customer's events went on without them", registry=r)
        self.activations = Counter("segmenter_activations", "Activations sent to channel topics, by channel and "
                                   "action (send, cancel)", ["channel", "action"], registry=r)
        self.suppressed = Gauge("segmenter_activations_suppressed", "Activations suppressed (or held, policy "
                                "\"held\") on this worker's partitions since it took them, by policy, segment and "
                                "channel", ["policy", "segment", "channel"], registry=r)
        self.deployments = Counter("segmenter_deployments", "Rule deployments read from the topic while "
                                   "running, learnt or refused (a pack that does not compile)", ["outcome"],
                                   registry=r)
        self.pack = Gauge("segmenter_rule_pack", "Partitions on which each pack version is live", ["version"],
                          registry=r)
        self.partitions = Gauge("segmenter_partitions", "Input partitions this worker owns", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

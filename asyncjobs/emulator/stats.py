"""Counters for tests and benchmarks; :meth:`Stats.snapshot` is the JSON of ``GET /_emulator/stats``.

The keys are stable (benchmarks and crash tests read them):

``requests``, ``throttled``, ``quota_rejections``, ``errors``
    ``{operation: n}`` (``errors`` is ``{code: n}`` of every error response sent);
``throttled_total``, ``quota_rejections_total``
    the sums;
``faults``
    ``{"error": n, "drop_before": n, "drop_after": n}``;
``jobs_created``, ``jobs_total``
    ``{"bedrock" | "personalize" | "personalize-segment": n}`` and the sum;
``duplicate_jobs``, ``duplicates``
    jobs created beyond the first per (kind, jobName), and ``{"<kind>/<jobName>": extra}``;
``idempotent_replays``, ``already_exists``
    Bedrock token replays answered with the original ARN; Personalize repeated names;
``peak_running``, ``running``
    ``{quota_key: n}``: the most jobs ever holding a quota slot at once, and now;
``jobs_by_status``
    ``{kind: {status: n}}``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .jobs import KINDS


@dataclass(slots=True)
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    quota_rejections: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    jobs_created: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    idempotent_replays: int = 0
    already_exists: int = 0
    peak_running: dict[str, int] = field(default_factory=dict)

    def note_running(self, quota_key: str, running: int) -> None:
        if running > self.peak_running.get(quota_key, 0):
            self.peak_running[quota_key] = running

    def to_json(self) -> dict[str, Any]:
        """Every counter as it is (for saving the state; :meth:`snapshot` is the public view)."""
        return {
            f.name: dict(value) if isinstance(value := getattr(self, f.name), dict) else value
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stats:
        """The counters :meth:`to_json` wrote; ValueError (or TypeError) if ``data`` is not that."""
        stats = cls()
        if not isinstance(data, Mapping) or set(data) != {f.name for f in dataclasses.fields(cls)}:
            raise ValueError("not emulator counters")
        for f in dataclasses.fields(cls):
            current, value = getattr(stats, f.name), data[f.name]
            if isinstance(current, dict):
                counts = {str(key): int(n) for key, n in dict(value).items()}
                setattr(stats, f.name, Counter(counts) if isinstance(current, Counter) else counts)
            else:
                setattr(stats, f.name, int(value))
        return stats

    def snapshot(self, running: dict[str, int], jobs_by_status: dict[str, dict[str, int]]) -> dict[str, Any]:
        """The JSON-ready counters, with the live ``running`` and ``jobs_by_status`` views."""
        return {
            "requests": dict(self.requests),
            "throttled": dict(self.throttled),
            "throttled_total": self.throttled.total(),
            "quota_rejections": dict(self.quota_rejections),
            "quota_rejections_total": self.quota_rejections.total(),
            "errors": dict(self.errors),
            "faults": {name: self.faults[name] for name in ("error", "drop_before", "drop_after")},
            "jobs_created": {kind: self.jobs_created[kind] for kind in KINDS},
            "jobs_total": self.jobs_created.total(),
            "duplicate_jobs": self.duplicates.total(),
            "duplicates": dict(self.duplicates),
            "idempotent_replays": self.idempotent_replays,
            "already_exists": self.already_exists,
            "peak_running": dict(self.peak_running),
            "running": running,
            "jobs_by_status": jobs_by_status,
        }

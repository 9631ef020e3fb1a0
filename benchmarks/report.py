"""Results: one entry per scenario and contender, checked against its targets, and printed.

Every entry of ``results.json`` has the keys ``scenario``, ``contender``, the scenario's
figures, ``target`` (``{figure: [op, value]}``, empty for a contender without targets),
``met`` (true, false, or null without targets) and ``missed`` (the figures that missed).
"""

from __future__ import annotations

import json
import operator
import os
import platform
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

_OPS: dict[str, Callable[[Any, Any], bool]] = {"<=": operator.le, ">=": operator.ge, "==": operator.eq}


def entry(
    scenario: str,
    contender: str,
    figures: Mapping[str, Any],
    target: Mapping[str, tuple[str, float]] | None = None,
) -> dict[str, Any]:
    """A results entry; ``met`` compares each targeted figure with its bound."""
    target = dict(target or {})
    missed = [
        name
        for name, (op, bound) in target.items()
        if figures.get(name) is None or not _OPS[op](figures[name], bound)
    ]
    return {
        "scenario": scenario,
        "contender": contender,
        **figures,
        "target": {name: [op, bound] for name, (op, bound) in target.items()},
        "met": (not missed) if target else None,
        "missed": missed,
    }


def median_run(runs: Sequence[Mapping[str, Any]], figure: str) -> Mapping[str, Any]:
    """The run whose ``figure`` is the median (the upper middle one of an even number of runs)."""
    return sorted(runs, key=lambda run: run[figure])[len(runs) // 2]


def summary(runs: Sequence[Mapping[str, Any]], figure: str, digits: int = 3) -> dict[str, Any]:
    """``{figure: median, figure_spread: [min, max]}`` of ``figure`` over ``runs``."""
    values = [run[figure] for run in runs]
    return {
        figure: round(statistics.median(values), digits),
        f"{figure}_spread": [round(min(values), digits), round(max(values), digits)],
    }


def machine() -> dict[str, Any]:
    """What the run was measured on."""
    try:
        import psutil

        memory_gb: float | None = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil is a dev dependency
        memory_gb = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_model() or platform.processor() or platform.machine(),
        "memory_gb": memory_gb,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def source_revision(repo: Path) -> dict[str, Any]:
    """The commit measured, and whether the engine's files differed from it (others edit in parallel)."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": sorted(git("status", "--porcelain", "asyncjobs").splitlines()),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


#: Columns of the printed table: (heading, figure key).
COLUMNS: Sequence[tuple[str, str]] = (
    ("scenario", "scenario"),
    ("contender", "contender"),
    ("key figure", "_headline"),
    ("details", "_details"),
    ("target", "_target"),
    ("met", "_met"),
)

#: The figures shown per scenario: the headline first.
_SHOWN: dict[str, Sequence[str]] = {
    "quota_bound": (
        "makespan_ratio",
        "makespan_s",
        "ideal_s",
        "greedy_instant_s",
        "makespan_vs_greedy_instant",
        "makespan_vs_best_peer",
        "throttles_per_create",
        "throttled_create_share",
        "reads_per_job",
        "duplicates",
        "failed",
    ),
    "discovered": (
        "throttled_create_share",
        "create_throttles",
        "create_calls",
        "quota_rejections",
        "create_rate_allowed",
        "create_span_ratio",
        "makespan_s",
        "jobs",
        "duplicates",
        "failed",
    ),
    "overhead": ("throughput_ratio", "creates_per_s", "seconds", "jobs"),
    "metrics": ("throughput_ratio", "creates_per_s", "runs", "jobs"),
    "scale": ("ingest_specs_per_s", "ingest_file_specs_per_s", "peak_rss_mb", "resume_startup_s", "specs"),
    "journal": ("changes_per_s", "changes", "seconds", "concurrency"),
}


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _with_spread(e: Mapping[str, Any], name: str) -> str:
    """The figure, and the range over runs of the headline or the makespan when it was a median."""
    spread = e.get(f"{name}_spread")
    if spread is None or e.get("runs", 1) < 2 or name not in (_SHOWN[e["scenario"]][0], "makespan_s"):
        return _fmt(e[name])
    return f"{_fmt(e[name])} ({_fmt(spread[0])} to {_fmt(spread[1])})"


def table(entries: Sequence[Mapping[str, Any]]) -> str:
    """The entries as a markdown table."""
    lines = ["| " + " | ".join(h for h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for e in entries:
        shown = [name for name in _SHOWN.get(e["scenario"], ()) if name in e and e[name] is not None]
        headline = f"{shown[0]} = {_with_spread(e, shown[0])}" if shown else ""
        if shown and f"{shown[0]}_spread" in e:
            headline += f", median of {e['runs']} runs" if e.get("runs", 1) > 1 else ", 1 run"
        details = ", ".join(f"{name} {_with_spread(e, name)}" for name in shown[1:])
        target = ", ".join(f"{name} {op} {_fmt(bound)}" for name, (op, bound) in e["target"].items())
        met = "-" if e["met"] is None else ("yes" if e["met"] else "**no**: " + ", ".join(e["missed"]))
        cells = [e["scenario"], e["contender"], headline, details, target or "-", met]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write(path: Path, entries: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> None:
    path.write_text(json.dumps({**meta, "results": list(entries)}, indent=2) + "\n")

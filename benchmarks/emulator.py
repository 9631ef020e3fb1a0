"""What the emulator's counters say, by kind of call (``GET /_emulator/stats``).

The emulator itself runs as a separate process, one fresh instance per scenario and
contender: :func:`asyncjobs.emulator.process.emulator_process`, the helper the tests use too.
Every request stays on the loopback interface (the emulator's default host).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CREATE_OPERATIONS = frozenset(
    {"CreateModelInvocationJob", "CreateBatchInferenceJob", "CreateBatchSegmentJob"}
)
CREATE_OPERATIONS_BY_SERVICE = {
    "bedrock": ("CreateModelInvocationJob",),
    "personalize": ("CreateBatchInferenceJob", "CreateBatchSegmentJob"),
}
READ_OPERATIONS = frozenset(
    {
        "GetModelInvocationJob",
        "ListModelInvocationJobs",
        "DescribeBatchInferenceJob",
        "DescribeBatchSegmentJob",
        "ListBatchInferenceJobs",
        "ListBatchSegmentJobs",
    }
)


def create_calls(stats: Mapping[str, Any]) -> int:
    return sum(n for op, n in stats["requests"].items() if op in CREATE_OPERATIONS)


def read_calls(stats: Mapping[str, Any]) -> int:
    return sum(n for op, n in stats["requests"].items() if op in READ_OPERATIONS)


def create_throttles(stats: Mapping[str, Any]) -> int:
    return sum(n for op, n in stats["throttled"].items() if op in CREATE_OPERATIONS)


def create_throttles_by_service(stats: Mapping[str, Any]) -> dict[str, int]:
    """Throttled create calls by AWS service (each service has its own request limit)."""
    return {
        service: sum(stats["throttled"].get(op, 0) for op in operations)
        for service, operations in CREATE_OPERATIONS_BY_SERVICE.items()
    }


def read_throttles(stats: Mapping[str, Any]) -> int:
    return sum(n for op, n in stats["throttled"].items() if op in READ_OPERATIONS)

"""The public API: what `import asyncjobs` offers, and nothing by accident."""

from __future__ import annotations

from pathlib import Path

import asyncjobs
from asyncjobs import errors

EXPECTED = {
    "AddResult", "AlreadyExists", "AsyncJobsError", "Campaign", "CampaignError", "CampaignEvent",
    "CapacityExceeded", "EventRecord", "Fatal", "IllegalTransition", "InputError", "Job", "JobSpec",
    "JobState", "Journal", "JournalError", "JournalLocked", "JournalSchemaError", "JournalUnsafe",
    "JournalUnwritable", "JournalConflict", "JournalUnavailable",
    "KeyProgress", "LimitExceeded",
    "NotFound", "Progress", "Rejected", "SQLiteJournal", "Service", "ServiceError", "Settings", "SpecChanged",
    "StateCounts", "Summary", "Throttled", "Transient", "__version__", "check_spec", "open_journal",
    "read_campaign",
    # records in, results out (issue #14)
    "RecordsOptions", "ResultSummary", "campaign_results",
}  # fmt: skip


def test_export_list_is_curated() -> None:
    assert set(asyncjobs.__all__) == EXPECTED
    assert sorted(asyncjobs.__all__) == asyncjobs.__all__
    for name in asyncjobs.__all__:
        assert hasattr(asyncjobs, name), name


def test_every_error_is_exported_and_rooted() -> None:
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    for cls in classes:
        assert issubclass(cls, asyncjobs.AsyncJobsError)
        assert cls.__name__ in asyncjobs.__all__, cls.__name__
        assert cls.__doc__, f"{cls.__name__} has a default message"


def test_package_is_typed() -> None:
    assert (Path(asyncjobs.__file__).parent / "py.typed").exists()


def test_only_the_commands_configure_logging() -> None:
    package = Path(asyncjobs.__file__).parent
    commands = {package / "cli" / "logs.py", package / "emulator" / "cli.py"}
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path not in commands
        and any(
            call in path.read_text()
            for call in ("structlog.configure(", "logging.basicConfig(", "dictConfig(")
        )
    ]
    assert offenders == []

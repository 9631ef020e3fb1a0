"""asyncjobs: submit and shepherd very large campaigns of AWS batch jobs.

Bedrock batch inference (model invocation jobs) and Personalize batch inference and
batch segment jobs: rate-limited, quota-aware, exactly-once and resumable. See the
README for the command; the Python API in brief::

    journal = await asyncjobs.open_journal("campaign.db")
    campaign = asyncjobs.Campaign(journal, session=aioboto3.Session())
    await campaign.add(asyncjobs.read_campaign("campaign.jsonl"))
    summary = await campaign.run()
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .campaign import check_spec, read_campaign
from .errors import (
    AlreadyExists,
    AsyncJobsError,
    CampaignError,
    CapacityExceeded,
    Fatal,
    IllegalTransition,
    InputError,
    JournalConflict,
    JournalError,
    JournalLocked,
    JournalSchemaError,
    JournalUnavailable,
    JournalUnsafe,
    JournalUnwritable,
    LimitExceeded,
    NotFound,
    Rejected,
    ServiceError,
    SpecChanged,
    Throttled,
    Transient,
)
from .journal import AddResult, EventRecord, Journal, SQLiteJournal, open_journal
from .model import Job, JobSpec, JobState, Service, StateCounts
from .records import RecordsOptions, ResultSummary, campaign_results
from .scheduler import Campaign, CampaignEvent, KeyProgress, Progress, Settings, Summary

try:
    __version__ = version("asyncjobs")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0.0.0"

__all__ = [
    "AddResult",
    "AlreadyExists",
    "AsyncJobsError",
    "Campaign",
    "CampaignError",
    "CampaignEvent",
    "CapacityExceeded",
    "EventRecord",
    "Fatal",
    "IllegalTransition",
    "InputError",
    "Job",
    "JobSpec",
    "JobState",
    "Journal",
    "JournalConflict",
    "JournalError",
    "JournalLocked",
    "JournalSchemaError",
    "JournalUnavailable",
    "JournalUnsafe",
    "JournalUnwritable",
    "KeyProgress",
    "LimitExceeded",
    "NotFound",
    "Progress",
    "RecordsOptions",
    "Rejected",
    "ResultSummary",
    "SQLiteJournal",
    "Service",
    "ServiceError",
    "Settings",
    "SpecChanged",
    "StateCounts",
    "Summary",
    "Throttled",
    "Transient",
    "__version__",
    "campaign_results",
    "check_spec",
    "open_journal",
    "read_campaign",
]

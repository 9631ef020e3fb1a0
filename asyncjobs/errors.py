"""The exception tree. Every error asyncjobs raises derives from :class:`AsyncJobsError`::

    AsyncJobsError
    ├── InputError                 bad campaign input or options; nothing was sent
    │   └── CampaignError          a campaign line is invalid (file:line, field)
    ├── JournalError               the journal cannot be used
    │   ├── JournalLocked          another process holds it
    │   ├── JournalSchemaError     written by a newer asyncjobs, or not a journal
    │   ├── SpecChanged            a spec id already journaled now asks for something else
    │   ├── JournalUnsafe          a link, another user's file, or one others can write: refused
    │   ├── JournalConflict        another worker changed the job first (a shared journal)
    │   └── JournalUnwritable      a write failed (read-only file, disk full)
    │       └── JournalUnavailable the journal's database stayed unreachable too long
    ├── IllegalTransition          a state change the lifecycle table does not allow
    └── ServiceError               a service call failed; raised by the adapters only
        ├── Throttled              request rate exceeded: slow down and retry
        ├── CapacityExceeded       a running-jobs quota is full: wait for a slot
        ├── LimitExceeded          one of the two, and the service does not say which
        ├── Transient              5xx, dropped connection, timeout: retry
        ├── Rejected               refused for good (validation): do not retry
        ├── Fatal                  credentials, access or TLS: the run stops, resumable
        ├── AlreadyExists          a job with this name exists: reconcile
        └── NotFound               no such job

Service errors keep botocore's exception as ``__cause__``; the retry policy keys off
the class, never off strings. A class's docstring is its default message. An error that
ends :meth:`Campaign.run <asyncjobs.Campaign.run>` carries the run's ``summary``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .scheduler.reporting import Summary


class AsyncJobsError(Exception):
    """asyncjobs failed."""

    #: How the campaign stood when this error ended its run (counts as they stand, the API
    #: calls made); None for an error raised anywhere else.
    summary: Summary | None = None

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or type(self).__name__).strip().splitlines()[0])

    @property
    def message(self) -> str:
        return str(self.args[0])


class InputError(AsyncJobsError):
    """The input is invalid; nothing was submitted."""


class CampaignError(InputError):
    """A campaign line is invalid.

    ``str()`` is one line: ``campaign.jsonl:12: request.jobName: must match ...``.
    """

    def __init__(
        self, reason: str, *, source: str, line: int | None = None, field: str | None = None
    ) -> None:
        self.source = source
        self.line = line
        self.field = field
        self.reason = reason
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {field}: {reason}" if field else f"{where}: {reason}")


class JournalError(AsyncJobsError):
    """The journal cannot be used."""


class JournalLocked(JournalError):
    """The journal is in use by another process."""


class JournalSchemaError(JournalError):
    """The journal was written by a newer asyncjobs, or is not an asyncjobs journal."""


class SpecChanged(JournalError):
    """A spec id that is already in the journal now asks for something different."""

    def __init__(self, spec_id: str, source: str | None = None) -> None:
        self.spec_id = spec_id
        where = f"{source}: " if source else ""
        super().__init__(
            f"{where}spec {spec_id!r} differs from the one already in the journal; "
            "give it a new id, or use a new journal"
        )


class JournalUnsafe(JournalError):
    """A journal file is not safe to use: a symbolic link, another user's, or writable by others."""


class JournalUnwritable(JournalError):
    """A journal write failed (read-only file or disk full); the campaign stopped and can be resumed."""


class JournalUnavailable(JournalUnwritable):
    """The journal's database stayed unreachable longer than the outage it rides; resume when it is back."""


class JournalConflict(JournalError):
    """Another worker changed the job first (its lease was taken over): this change was not recorded."""

    def __init__(self, job_id: str, message: str | None = None) -> None:
        self.job_id = job_id
        super().__init__(message or f"job {job_id!r} was changed by another worker; this change was dropped")


class IllegalTransition(AsyncJobsError):
    """The lifecycle table does not allow this state change."""


class ServiceError(AsyncJobsError):
    """A service call failed."""

    def __init__(
        self, message: str | None = None, *, code: str | None = None, operation: str | None = None
    ) -> None:
        self.code = code
        self.operation = operation
        super().__init__(message)

    def describe(self) -> str:
        """``Code: message`` as shown to users and stored in the journal."""
        return f"{self.code}: {self.message}" if self.code else self.message


class Throttled(ServiceError):
    """The service throttled the request."""


class CapacityExceeded(ServiceError):
    """A running-jobs quota is full."""


class LimitExceeded(ServiceError):
    """A request-rate or running-jobs limit was hit; the service does not say which.

    Personalize answers both with ``LimitExceededException`` and an undocumented message:
    the scheduler decides which it was from what it knows, never from the words.
    """


class Transient(ServiceError):
    """The service or the network failed; the call may be retried."""


class Rejected(ServiceError):
    """The service refused the request for good."""


class Fatal(ServiceError):
    """The service cannot be used as configured (credentials, access, TLS); the run stopped, resumable."""


class AlreadyExists(ServiceError):
    """A job with this name already exists."""


class NotFound(ServiceError):
    """The service has no such job."""

"""``asyncjobs demo``: a sample campaign against an in-process emulator.

The demo folder (``.asyncjobs-demo/`` by default) holds:

- ``campaign.jsonl``: the sample campaign (Bedrock over two models, Personalize
  batch inference and batch segment jobs, and a records line);
- ``prompts.jsonl``: the records line's prompts (:data:`PROMPTS` Bedrock records), cut
  into shards of :data:`RECORDS_PER_JOB`, uploaded to the emulator's S3 (bucket
  :data:`RECORDS_BUCKET`), one job per shard; their results are joined back into
  ``results/prompts.jsonl``, one line per prompt, in input order;
- ``journal.db``: the campaign's journal;
- ``emulator-state.json``: the emulated services' jobs and S3 (``Emulator.save_state``),
  saved while the demo runs and when it stops, so that a resumed demo meets the
  remote jobs it left running (as it would on AWS, where jobs keep running while
  the client is down), and the shards and outputs they left in S3.

The folder is private (0700) and so are its files (0600), whatever the umask; they
are written to a new temp file and renamed into place, never through a link found at
their names. A folder of another user is refused.

Running the demo again resumes an unfinished one; a finished one (or ``--fresh``)
starts over. The emulator is set up with AWS-like running-job quotas, a create
rate low enough to throttle a client that does not pace itself, a few failed jobs
and a few 5xx errors, and short job durations so that the demo ends in well under
a minute.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

from .atomic import write_private
from .emulator import Emulator, EmulatorConfig, EmulatorStateError
from .errors import InputError, JournalError, JournalLocked
from .journal import open_journal
from .scheduler import Settings

#: The demo's (fake) AWS account and credentials: the emulator accepts any.
ACCOUNT = "123456789012"
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "AKIDEMODEMODEMODEMO0", "aws_secret_access_key": "demo-secret-not-real"}
BEDROCK_MODELS = ("anthropic.claude-3-haiku-20240307-v1:0", "amazon.nova-micro-v1:0")
#: How often the emulator's state is saved while the demo runs (seconds).
SAVE_EVERY = 0.5

CAMPAIGN_FILE = "campaign.jsonl"
PROMPTS_FILE = "prompts.jsonl"
RESULTS_DIR = "results"
#: The records example: prompts, cut into shards of this many (one Bedrock job each).
PROMPTS = 300
RECORDS_PER_JOB = 100
#: The emulator's S3 bucket the shards go to and their outputs come from (created by the demo).
RECORDS_BUCKET = "demo-records"
JOURNAL_FILE = "journal.db"
STATE_FILE = "emulator-state.json"
#: Where demos before the JSON state kept it; removed when a demo starts over.
_OLD_STATE_FILE = "emulator.pickle"


def emulator_config(seed: int = 7) -> EmulatorConfig:
    """Quotas, throttling and a few failures, with jobs that last seconds instead of hours."""
    return EmulatorConfig(
        seed=seed,
        create_rate=20.0,  # creates/s per service: the unpaced start meets ThrottlingException
        bedrock_max_running=20,  # the AWS default per model
        personalize_max_running=10,  # AWS's default is 5; raised to keep the demo short
        job_seconds=(0.5, 2.0),
        bedrock_phase_seconds=(0.1, 0.4),
        personalize_pending_seconds=(0.2, 0.6),
        fail_rate=0.03,
        partial_rate=0.01,
        error_rate=0.01,
        record_error_rate=0.02,  # a few prompts of the records example end with an error
    )


def demo_settings() -> Settings:
    """Faster polling than the production default (the demo's jobs last seconds), one retry of failed jobs."""
    return Settings(
        poll_interval=2.0,
        min_poll_interval=0.5,
        read_rate=10.0,
        resubmit_failed=1,
        max_running={"personalize": 10},  # what the emulator allows, as for a raised AWS quota
    )


# ------------------------------------------------------------------ the campaign
def sample_specs(jobs: int = 300) -> Iterator[dict[str, Any]]:
    """The sample campaign: 70% Bedrock (two models), 20% Personalize inference, 10% segment."""
    bedrock = round(jobs * 0.7)
    personalize = round(jobs * 0.2)
    segment = jobs - bedrock - personalize
    role = f"arn:aws:iam::{ACCOUNT}:role"
    solution = f"arn:aws:personalize:{REGION}:{ACCOUNT}:solution"
    for i in range(bedrock):
        model = BEDROCK_MODELS[i % len(BEDROCK_MODELS)]
        yield {
            "id": f"summaries-{i:04d}",
            "service": "bedrock",
            "request": {
                "roleArn": f"{role}/BedrockBatchInference",
                "modelId": model,
                "inputDataConfig": {
                    "s3InputDataConfig": {"s3Uri": f"s3://demo-bucket/bedrock/in/part-{i:04d}.jsonl"}
                },
                "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://demo-bucket/bedrock/out/"}},
                "timeoutDurationInHours": 24,
            },
        }
    for i in range(personalize):
        yield {
            "id": f"recs-{i:04d}",
            "service": "personalize",
            "request": {
                "solutionVersionArn": f"{solution}/demo-recs/1a2b3c4d",
                "jobInput": {"s3DataSource": {"path": f"s3://demo-bucket/personalize/in/users-{i:04d}.json"}},
                "jobOutput": {
                    "s3DataDestination": {"path": f"s3://demo-bucket/personalize/out/recs-{i:04d}/"}
                },
                "roleArn": f"{role}/PersonalizeBatch",
                "numResults": 25,
            },
        }
    for i in range(segment):
        yield {
            "id": f"segments-{i:04d}",
            "service": "personalize-segment",
            "request": {
                "solutionVersionArn": f"{solution}/demo-segments/5e6f7a8b",
                "jobInput": {"s3DataSource": {"path": f"s3://demo-bucket/personalize/in/items-{i:04d}.json"}},
                "jobOutput": {
                    "s3DataDestination": {"path": f"s3://demo-bucket/personalize/out/segments-{i:04d}/"}
                },
                "roleArn": f"{role}/PersonalizeBatch",
                "numResults": 100,
            },
        }


def records_line() -> dict[str, Any]:
    """The records example: a prompts file in, one result per prompt out."""
    return {
        "id": "prompts",
        "service": "bedrock",
        "records": PROMPTS_FILE,
        "request": {
            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/BedrockBatchInference",
            "modelId": BEDROCK_MODELS[0],
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{RECORDS_BUCKET}/staging/"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{RECORDS_BUCKET}/results/"}},
        },
    }


def write_prompts(path: Path, records: int = PROMPTS) -> None:
    """Bedrock records (Anthropic's messages body); every tenth without a recordId, which
    asyncjobs assigns."""
    lines = []
    for i in range(records):
        body = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 200,
            "messages": [{"role": "user", "content": f"Summarise support ticket #{1000 + i} in one line."}],
        }
        record: dict[str, Any] = {"modelInput": body}
        if i % 10:
            record = {"recordId": f"TICKET{1000 + i}", **record}
        lines.append(json.dumps(record, separators=(",", ":")) + "\n")
    write_private(path, "".join(lines).encode())


def write_campaign(path: Path, jobs: int = 300) -> None:
    specs = [*sample_specs(jobs), records_line()]
    text = "".join(json.dumps(spec, separators=(",", ":")) + "\n" for spec in specs)
    write_private(path, text.encode())
    write_prompts(path.parent / PROMPTS_FILE)


# ------------------------------------------------------------------ emulator state
def restore_state(emulator: Emulator, path: Path) -> bool:
    """Put the saved jobs back into a new emulator; False if there is nothing usable to restore.

    A state that cannot be read, is corrupt, or was saved under other emulator settings
    or by another version of the emulator is not usable; nor is one that is a link, or that
    another user owns or could have written.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return False
    try:
        emulator.load_state(path)
    except EmulatorStateError:
        return False
    return True


async def autosave(emulator: Emulator, path: Path) -> None:
    """Save the emulator's state every :data:`SAVE_EVERY` seconds until cancelled, and once more."""
    try:
        while True:
            await anyio.sleep(SAVE_EVERY)
            emulator.save_state(path)
    finally:
        emulator.save_state(path)


# ------------------------------------------------------------------ the folder
async def journal_finished(path: Path) -> bool:
    """Whether the journal at ``path`` holds a campaign whose jobs are all final."""
    journal = await open_journal(path, create=False)
    try:
        return journal.counts().done
    finally:
        await journal.aclose()


def private_folder(directory: Path) -> None:
    """Make ``directory`` the demo's private folder (0700), creating it if needed.

    A folder of another user, or something else than a folder, is refused (exit 2): its owner
    could change what the demo reads. One of ours that others could enter is closed to them.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    st = os.stat(directory)  # --dir may name a link to a folder: its target is checked
    euid = os.geteuid()
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(
            f"{directory}: refusing to use this demo folder: it is not a folder; choose another --dir"
        )
    if st.st_uid != euid:
        raise InputError(
            f"{directory}: refusing to use this demo folder: it is owned by uid {st.st_uid}, not by you"
            f" (uid {euid}); choose another --dir"
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(directory, 0o700)  # exactly: mkdir's mode went through the umask


def reset_folder(directory: Path, jobs: int) -> None:
    """Start over: a new campaign file, no journal, no emulator state."""
    private_folder(directory)
    stale = [
        JOURNAL_FILE,
        f"{JOURNAL_FILE}-wal",
        f"{JOURNAL_FILE}-shm",
        f"{JOURNAL_FILE}-journal",
        f"{JOURNAL_FILE}.lock",
        STATE_FILE,
        f"{STATE_FILE}.tmp",  # the fixed temp name of earlier versions
        _OLD_STATE_FILE,
        # temp files of a write that was killed before its rename
        *(
            p.name
            for p in directory.glob(".*.tmp")
            if p.name.startswith((f".{STATE_FILE}.", f".{CAMPAIGN_FILE}.", f".{PROMPTS_FILE}."))
        ),
    ]
    for name in stale:
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()  # unlink removes a link itself, never its target
    write_campaign(directory / CAMPAIGN_FILE, jobs)


async def prepare(directory: Path, *, fresh: bool, jobs: int) -> tuple[bool, str | None]:
    """Decide whether to resume; returns (resuming, why not) and leaves the folder ready."""
    private_folder(directory)
    journal = directory / JOURNAL_FILE
    state = directory / STATE_FILE
    if not journal.exists():
        reset_folder(directory, jobs)
        return False, None
    try:
        finished = await journal_finished(journal)
    except JournalLocked:  # another demo is running in this folder
        raise
    except JournalError:  # unreadable: only --fresh may replace it
        if not fresh:
            raise
        finished = True
    if fresh:
        reset_folder(directory, jobs)
        return False, None
    if finished:
        reset_folder(directory, jobs)
        return False, "the previous demo had finished; starting a new one"
    if not state.exists():
        reset_folder(directory, jobs)
        return False, "the emulator's saved state is missing; starting a new demo"
    return True, None

"""Records in, results out: a prompts file cut into shard jobs, and their outputs joined back.

- :mod:`~asyncjobs.records.reader`: streamed validation of a records file; the bytes each
  record is uploaded as.
- :mod:`~asyncjobs.records.shards`: the pure split rule and each shard's identity.
- :mod:`~asyncjobs.records.expand`: a campaign line with ``records`` as one spec per shard.
- :mod:`~asyncjobs.records.upload`: a shard to S3, streamed, checksummed, at most once.
- :mod:`~asyncjobs.records.results`: a finished shard's outputs joined to its records, in
  input order.
- :mod:`~asyncjobs.records.retry`: failed records cut into new shards.
- :mod:`~asyncjobs.records.stage`: a run's shards uploaded before their create, collected
  when their job ends, failed records sent again.
- :mod:`~asyncjobs.records.collected`: a campaign's results from its journal.
"""

from __future__ import annotations

from .collected import campaign_results, write_journal_results
from .expand import RecordsOptions, ShardSpec, expand_records_line
from .reader import Record, RecordsScan, assigned_record_id, record_lines, scan_records
from .results import ResultSummary, ShardOutput, output_locations, results_path, write_results
from .retry import RetryPlan, plan_retry, staging_prefix
from .shards import Shard, ShardingError, cut_shards, shard_records, shard_sizes, verify_shard
from .stage import RecordsStage, UploadCounts
from .upload import ProgressCallback, UploadResult, is_uploaded, upload_shard

__all__ = [
    "ProgressCallback",
    "Record",
    "RecordsOptions",
    "RecordsScan",
    "RecordsStage",
    "ResultSummary",
    "RetryPlan",
    "Shard",
    "ShardOutput",
    "ShardSpec",
    "ShardingError",
    "UploadCounts",
    "UploadResult",
    "assigned_record_id",
    "campaign_results",
    "cut_shards",
    "expand_records_line",
    "is_uploaded",
    "output_locations",
    "plan_retry",
    "record_lines",
    "results_path",
    "scan_records",
    "shard_records",
    "shard_sizes",
    "staging_prefix",
    "upload_shard",
    "verify_shard",
    "write_journal_results",
    "write_results",
]

"""A local, wire-compatible emulator of the AWS Bedrock batch-inference and Personalize batch-job APIs,
with S3 (moto's, in-process) on the same endpoint.

The real botocore/aioboto3/boto3 clients and the AWS CLI talk to it through
``endpoint_url``::

    async with Emulator(EmulatorConfig(seed=7, job_seconds=(2.0, 4.0))) as emu:
        session.client("bedrock", endpoint_url=emu.url, ...)

Modules: :mod:`.config` (the knobs), :mod:`.jobs` (a job's lifecycle), :mod:`.state`
(jobs, quotas, idempotency), :mod:`.listing` (List pages and the list lag), :mod:`.stats`
and :mod:`.introspection` (counters; what ``/_emulator/stats`` and ``/_emulator/jobs`` show),
:mod:`.limits` (rate buckets), :mod:`.faults`, :mod:`.wire` (error codes and messages),
:mod:`.bodies` (JSON request bodies, nesting bounded), :mod:`.calls` (one parsed request),
:mod:`.bedrock` and :mod:`.personalize` (the operations, tags included), :mod:`.s3` (moto's S3
behind the endpoint) and :mod:`.saved_s3` (its saved form), :mod:`.jobdata`,
:mod:`.bedrock_data` and :mod:`.personalize_data` (what jobs read from S3 and write back) and
:mod:`.outputs` (when), :mod:`.service` (the API request pipeline), :mod:`.control` (the
``/_emulator/*`` routes), :mod:`.http_wire` (signatures and the shape of every answer),
:mod:`.server` (the routes and :class:`Emulator`), :mod:`.saved_state` (the state file),
:mod:`.cli` (the ``emulator`` command), :mod:`.process` (it as a subprocess).
"""

from .config import EmulatorConfig
from .server import Emulator, EmulatorStateError

__all__ = ["Emulator", "EmulatorConfig", "EmulatorStateError"]

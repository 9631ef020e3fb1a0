"""A local, wire-compatible emulator of the AWS Bedrock batch-inference and Personalize batch-job APIs,
with S3 (moto's, in-process) on the same endpoint.

The real botocore/aioboto3/boto3 clients and the AWS CLI talk to it through
``endpoint_url``::

    async with Emulator(EmulatorConfig(seed=7, job_seconds=(2.0, 4.0))) as emu:
        session.client("bedrock", endpoint_url=emu.url, ...)

Modules: :mod:`.config` (the knobs), :mod:`.jobs` (a job's lifecycle), :mod:`.state`
(jobs, quotas, idempotency), :mod:`.stats`, :mod:`.limits` (rate buckets),
:mod:`.faults`, :mod:`.wire` (error codes and messages), :mod:`.bodies` (JSON request
bodies, nesting bounded), :mod:`.calls` (one parsed request), :mod:`.bedrock` and
:mod:`.personalize` (the operations, tags included), :mod:`.s3` (moto's S3 behind the
endpoint), :mod:`.jobdata` (what jobs read from S3 and write back), :mod:`.server` (HTTP
and :class:`Emulator`), :mod:`.cli` (the ``emulator`` command).
"""

from .config import EmulatorConfig
from .server import Emulator, EmulatorStateError

__all__ = ["Emulator", "EmulatorConfig", "EmulatorStateError"]

"""asyncjobs.campaign: campaign files read line by line, every bad line named file:line and field."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from asyncjobs.campaign import MAX_LINE_BYTES, check_spec, read_campaign
from asyncjobs.errors import CampaignError, InputError
from asyncjobs.model import JobSpec, Service

ROLE = "arn:aws:iam::123456789012:role/BatchRole"
SOLUTION = "arn:aws:personalize:us-east-1:123456789012:solution/my-solution/abcdef12"
KMS = "arn:aws:kms:us-east-1:123456789012:key/k1"

BEDROCK: dict[str, Any] = {
    "jobName": "campaign-0001",
    "roleArn": ROLE,
    "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
    "inputDataConfig": {
        "s3InputDataConfig": {"s3Uri": "s3://my-bucket/in/part-1.jsonl", "s3InputFormat": "JSONL"}
    },
    "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://my-bucket/out/"}},
    "timeoutDurationInHours": 48,
    "tags": [{"key": "team", "value": "search"}],
}
PERSONALIZE: dict[str, Any] = {
    "jobName": "campaign-0002",
    "solutionVersionArn": SOLUTION,
    "filterArn": "arn:aws:personalize:us-east-1:123456789012:filter/no-seen",
    "numResults": 50,
    "jobInput": {"s3DataSource": {"path": "s3://my-bucket/users/", "kmsKeyArn": KMS}},
    "jobOutput": {"s3DataDestination": {"path": "s3://my-bucket/recs/", "kmsKeyArn": KMS}},
    "roleArn": ROLE,
    "batchInferenceJobConfig": {"itemExplorationConfig": {"explorationWeight": "0.3"}},
    "batchInferenceJobMode": "THEME_GENERATION",
    "themeGenerationConfig": {"fieldsForThemeGeneration": {"itemName": "TITLE"}},
    "tags": [{"tagKey": "team", "tagValue": "search"}],
}
SEGMENT: dict[str, Any] = {
    "jobName": "campaign-0003",
    "solutionVersionArn": SOLUTION,
    "numResults": 1000,
    "jobInput": {"s3DataSource": {"path": "s3://my-bucket/items/"}},
    "jobOutput": {"s3DataDestination": {"path": "s3://my-bucket/segments/"}},
    "roleArn": ROLE,
}
REQUESTS = {"bedrock": BEDROCK, "personalize": PERSONALIZE, "personalize-segment": SEGMENT}


def line(spec_id: str = "s1", service: str = "bedrock", **changes: Any) -> str:
    """A campaign line; ``changes`` replace request members (or remove them, given ``DROP``)."""
    request = {**REQUESTS[service]}
    for key, value in changes.items():
        if value is DROP:
            request.pop(key, None)
        else:
            request[key] = value
    return json.dumps({"id": spec_id, "service": service, "request": request})


DROP = object()
GOOD = line("good")


def write(tmp_path: Path, *lines: str | bytes, name: str = "campaign.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


def error_of(source: Any, **kwargs: Any) -> CampaignError:
    with pytest.raises(CampaignError) as info:
        list(read_campaign(source, **kwargs))
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    return info.value


# -- bad input: one table, each naming file:line and the field -------------------------------------

BAD_LINES: list[tuple[str, str | bytes, str | None, str]] = [
    (
        "malformed JSON",
        '{"id": "s1", "service": "bedrock" "request": {}}',
        None,
        "malformed JSON: Expecting ',' delimiter (column 35)",
    ),
    ("truncated JSON", '{"id": "s1", "service": "bedrock", "request": {', None, "malformed JSON: "),
    (
        "NaN",
        '{"id": "s1", "service": "bedrock", "request": {"timeoutDurationInHours": NaN}}',
        None,
        "malformed JSON: NaN is not a JSON value",
    ),
    ("not an object", '["s1", "bedrock", {}]', None, "a spec must be a JSON object, not array"),
    ("a bare string", '"s1"', None, "a spec must be a JSON object, not string"),
    ("missing id", json.dumps({"service": "bedrock", "request": BEDROCK}), "id", "is required"),
    ("missing service", json.dumps({"id": "s1", "request": BEDROCK}), "service", "is required"),
    ("missing request", json.dumps({"id": "s1", "service": "bedrock"}), "request", "is required"),
    (
        "unknown key",
        json.dumps({"id": "s1", "service": "bedrock", "request": BEDROCK, "requests": {}}),
        "requests",
        "unknown key; a spec has only id, service, request, records",
    ),
    (
        "unknown service",
        json.dumps({"id": "s1", "service": "sagemaker", "request": {}}),
        "service",
        "unknown service 'sagemaker'; expected one of: bedrock, personalize, personalize-segment",
    ),
    (
        "service not a string",
        json.dumps({"id": "s1", "service": 1, "request": {}}),
        "service",
        "unknown service integer; expected one of: bedrock, personalize, personalize-segment",
    ),
    (
        "request not an object",
        json.dumps({"id": "s1", "service": "bedrock", "request": "jobName=x"}),
        "request",
        "must be a JSON object, not string",
    ),
    ("empty id", line(""), "id", "must not be empty"),
    (
        "numeric id",
        json.dumps({"id": 7, "service": "bedrock", "request": BEDROCK}),
        "id",
        "must be a string, not integer",
    ),
    ("long id", line("x" * 257), "id", "must be at most 256 characters, not 257"),
    ("control character in id", line("a\tb"), "id", "must be printable, with no control characters"),
    (
        "jobName breaks the pattern",
        line(jobName="bad name!"),
        "request.jobName",
        r"must match the pattern [a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}, got 'bad name!'",
    ),
    (
        "jobName too long",
        line(jobName="a" * 64),
        "request.jobName",
        "must be at most 63 characters, got 'aaaa",
    ),
    (
        "Personalize jobName breaks the pattern",
        line(service="personalize", jobName="my.job"),
        "request.jobName",
        "must match the pattern ^[a-zA-Z0-9][a-zA-Z0-9\\-_]*, got 'my.job'",
    ),
    (
        "segment jobName too long",
        line(service="personalize-segment", jobName="j" * 64),
        "request.jobName",
        "must be at most 63 characters",
    ),
    (
        "malformed roleArn",
        line(roleArn="arn:aws:iam::1234:role/x"),
        "request.roleArn",
        "must match the pattern arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+, got 'arn:aws:iam::1234:role/x'",
    ),
    (
        "malformed Personalize roleArn",
        line(service="personalize", roleArn="role/x"),
        "request.roleArn",
        "must match the pattern arn:([a-z\\d-]+):iam::\\d{12}:role/?",
    ),
    (
        "malformed solutionVersionArn",
        line(service="personalize", solutionVersionArn="arn:aws:s3:::b"),
        "request.solutionVersionArn",
        "must match the pattern arn:([a-z\\d-]+):personalize:.*:.*:.+, got 'arn:aws:s3:::b'",
    ),
    (
        "malformed segment solutionVersionArn",
        line(service="personalize-segment", solutionVersionArn="x"),
        "request.solutionVersionArn",
        "must match the pattern",
    ),
    (
        "malformed filterArn",
        line(service="personalize", filterArn="filter/x"),
        "request.filterArn",
        "must match the pattern",
    ),
    ("malformed modelId", line(modelId="claude haiku"), "request.modelId", "must match the pattern"),
    (
        "negative numResults",
        line(service="personalize", numResults=-1),
        "request.numResults",
        "must be at least 1, got -1",
    ),
    (
        "negative segment numResults",
        line(service="personalize-segment", numResults=-10),
        "request.numResults",
        "must be at least 1, got -10",
    ),
    (
        "zero numResults",
        line(service="personalize", numResults=0),
        "request.numResults",
        "must be at least 1, got 0",
    ),
    (
        "timeout below range",
        line(timeoutDurationInHours=23),
        "request.timeoutDurationInHours",
        "must be between 24 and 168, got 23",
    ),
    (
        "timeout above range",
        line(timeoutDurationInHours=169),
        "request.timeoutDurationInHours",
        "must be between 24 and 168, got 169",
    ),
    (
        "timeout as a string",
        line(timeoutDurationInHours="48"),
        "request.timeoutDurationInHours",
        "must be an integer, not string",
    ),
    (
        "unknown request member",
        line(modelInvocationType="Converse"),
        "request.modelInvocationType",
        "is not a member of CreateModelInvocationJob",
    ),
    (
        "misspelt request member",
        line(**{"jobname": "x"}),
        "request.jobname",
        "is not a member of CreateModelInvocationJob; did you mean 'jobName'?",
    ),
    ("missing request member", line(roleArn=DROP), "request.roleArn", "is required"),
    (
        "nested path",
        line(inputDataConfig={"s3InputDataConfig": {"s3Uri": "http://x"}}),
        "request.inputDataConfig.s3InputDataConfig.s3Uri",
        "must match the pattern",
    ),
    (
        "enum",
        line(service="personalize", batchInferenceJobMode="THEMES"),
        "request.batchInferenceJobMode",
        "must be one of: BATCH_INFERENCE, THEME_GENERATION, got 'THEMES'",
    ),
    (
        "union with no member",
        line(outputDataConfig={}),
        "request.outputDataConfig",
        "must set exactly one member (s3OutputDataConfig), got none",
    ),
    (
        "tag index",
        line(tags=[{"key": "a", "value": "b"}, {"key": "", "value": "c"}]),
        "request.tags[1].key",
        "must be at least 1 character, got ''",
    ),
    (
        "map key path",
        line(service="personalize", batchInferenceJobConfig={"itemExplorationConfig": {"w": 1}}),
        "request.batchInferenceJobConfig.itemExplorationConfig.w",
        "must be a string, not integer",
    ),
    (
        "more than one issue",
        line(jobName="bad name", timeoutDurationInHours=1, roleArn=DROP),
        "request.jobName",
        r"must match the pattern [a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}, got 'bad name' (and 2 more)",
    ),
    ("a null jobName", line(jobName=None), "request.jobName", "must be a string, not null"),
    (
        "not UTF-8",
        b'{"id": "caf\xe9", "service": "bedrock", "request": {}}',
        None,
        "not valid UTF-8: byte 0xe9 at column 12",
    ),
]


@pytest.mark.parametrize(
    ("bad", "field", "reason"), [c[1:] for c in BAD_LINES], ids=[c[0] for c in BAD_LINES]
)
def test_bad_line_is_named_by_file_line_and_field(
    tmp_path: Path, bad: str | bytes, field: str | None, reason: str
) -> None:
    path = write(tmp_path, GOOD, "", bad, GOOD)
    error = error_of(path)
    assert isinstance(error, InputError)
    assert (error.source, error.line, error.field) == (str(path), 3, field)
    prefix = f"{path}:3: {field}: " if field else f"{path}:3: "
    assert str(error).startswith(prefix + reason), str(error)


def test_a_10_mb_line_is_refused_with_its_size(tmp_path: Path) -> None:
    giant = '{"id": "big", "service": "bedrock", "request": {"jobName": "' + "x" * (10 * 2**20) + '"}}'
    path = write(tmp_path, GOOD, giant, GOOD)
    error = error_of(path)
    assert (error.line, error.field) == (2, None)
    assert str(error) == f"{path}:2: line is {len(giant)} bytes, over the limit of {MAX_LINE_BYTES} bytes"


@pytest.mark.parametrize(("extra", "refused"), [(0, False), (1, True)])
def test_line_limit_is_exact(tmp_path: Path, extra: int, refused: bool) -> None:
    head = line("edge")[:-1] + ', "pad": "'
    padded = head + "x" * (MAX_LINE_BYTES - len(head) - 2 + extra) + '"}'
    assert len(padded) == MAX_LINE_BYTES + extra
    # Padding sits inside the spec object, so a line that fits fails later, on the unknown key.
    error = error_of(write(tmp_path, padded))
    assert ("over the limit" in str(error)) is refused


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    error = error_of(path)
    assert str(error) == f"{path}: no such file"
    assert (error.line, error.field) == (None, None)


def test_directory(tmp_path: Path) -> None:
    assert str(error_of(tmp_path)) == f"{tmp_path}: is a directory, not a campaign file"


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD)

    def refuse(*args: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("asyncjobs.campaign.open", refuse, raising=False)
    assert str(error_of(path)) == f"{path}: permission denied"


def test_read_error_names_the_line() -> None:
    class Failing(io.BytesIO):
        def readline(self, size: int | None = -1) -> bytes:
            if self.tell():
                raise OSError(5, "Input/output error")
            return super().readline(size)

    error = error_of(Failing(f"{GOOD}\n{GOOD}\n".encode()), name="disk")
    assert str(error) == "disk:2: cannot read: Input/output error"


@pytest.mark.parametrize(
    "content", [b"", b"\n\n  \n", b"\r\n\t\n", b"\xef\xbb\xbf\n"], ids=["empty", "blank", "whitespace", "bom"]
)
def test_a_file_without_specs_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    error = error_of(path)
    assert str(error) == f"{path}: contains no job specs"


# -- good input -----------------------------------------------------------------------------------


def test_valid_specs_of_every_service(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        line("b1"),
        "",
        "   ",
        line("p1", "personalize"),
        line("p2", "personalize", batchInferenceJobMode="BATCH_INFERENCE", themeGenerationConfig=DROP),
        line("s1", "personalize-segment"),
    )
    specs = list(read_campaign(path))
    assert [(s.id, s.service, s.source) for s in specs] == [
        ("b1", Service.BEDROCK, f"{path}:1"),
        ("p1", Service.PERSONALIZE, f"{path}:4"),
        ("p2", Service.PERSONALIZE, f"{path}:5"),
        ("s1", Service.PERSONALIZE_SEGMENT, f"{path}:6"),
    ]
    assert specs[0].request == BEDROCK
    assert specs[1].request == PERSONALIZE


@pytest.mark.parametrize("service", ["bedrock", "personalize", "personalize-segment"])
def test_job_name_may_be_left_out_and_is_not_added(tmp_path: Path, service: str) -> None:
    [spec] = read_campaign(write(tmp_path, line("x", service, jobName=DROP)))
    assert "jobName" not in spec.request


def test_crlf_bom_and_no_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "windows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + line("a").encode() + b"\r\n\r\n" + line("b").encode())
    assert [(s.id, s.source) for s in read_campaign(path)] == [("a", f"{path}:1"), ("b", f"{path}:3")]


def test_unicode_id_and_values(tmp_path: Path) -> None:
    path = write(
        tmp_path, line("spécial-ü", "personalize", tags=[{"tagKey": "équipe", "tagValue": "données"}])
    )
    assert [s.id for s in read_campaign(path)] == ["spécial-ü"]


def test_name_overrides_the_path_in_messages(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, line(jobName="bad name"))
    error = error_of(path, name="spring.jsonl")
    assert str(error).startswith("spring.jsonl:2: request.jobName: ")
    assert [s.source for s in read_campaign(write(tmp_path, GOOD), name="x")] == ["x:1"]


def test_path_like_source(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert [s.source for s in read_campaign(path)] == [f"{path}:1"]
    assert [s.source for s in read_campaign(str(path))] == [f"{path}:1"]


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(f"{GOOD}\n{line('two', jobName='bad name')}\n".encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    specs = read_campaign("-")
    assert next(specs).source == "<stdin>:1"
    with pytest.raises(CampaignError, match=r"^<stdin>:2: request\.jobName: "):
        next(specs)


def test_binary_stream_is_named_and_left_open() -> None:
    stream = io.BytesIO(f"{GOOD}\n".encode())
    assert [s.source for s in read_campaign(stream)] == ["<stream>:1"]
    assert not stream.closed
    assert [s.source for s in read_campaign(io.BytesIO(GOOD.encode()), name="pipe")] == ["pipe:1"]


def test_specs_stream_before_a_later_bad_line(tmp_path: Path) -> None:
    specs = read_campaign(write(tmp_path, GOOD, "{oops"))
    assert next(specs).id == "good"
    with pytest.raises(CampaignError, match=r":2: malformed JSON"):
        next(specs)


def test_duplicates_are_left_to_the_journal(tmp_path: Path) -> None:
    assert len(list(read_campaign(write(tmp_path, GOOD, GOOD)))) == 2


# -- check_spec -----------------------------------------------------------------------------------


def test_check_spec_accepts_a_valid_spec() -> None:
    check_spec(JobSpec("a", Service.PERSONALIZE, PERSONALIZE))
    check_spec(JobSpec("b", Service.BEDROCK, {k: v for k, v in BEDROCK.items() if k != "jobName"}))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            JobSpec("a", Service.BEDROCK, {**BEDROCK, "jobName": "x y"}),
            "spec 'a': request.jobName: must match",
        ),
        (
            JobSpec("a", Service.BEDROCK, {**BEDROCK, "jobName": "x y"}, source="c.jsonl:9"),
            "c.jsonl:9: request.jobName: ",
        ),
        (JobSpec("", Service.BEDROCK, BEDROCK), "spec '': id: must not be empty"),
        (JobSpec("a", "sagemaker", BEDROCK), "spec 'a': service: unknown service 'sagemaker'"),  # type: ignore[arg-type]
        (JobSpec("a", Service.BEDROCK, []), "spec 'a': request: must be a JSON object, not array"),  # type: ignore[arg-type]
        (
            JobSpec("a", Service.PERSONALIZE_SEGMENT, {**SEGMENT, "numResults": -1}),
            "spec 'a': request.numResults: must be at least 1",
        ),
    ],
)
def test_check_spec_refuses(spec: JobSpec, message: str) -> None:
    with pytest.raises(CampaignError) as info:
        check_spec(spec)
    assert str(info.value).startswith(message), str(info.value)

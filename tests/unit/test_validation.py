"""asyncjobs.validation: requests checked against botocore's models as AWS checks them."""

from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any

import botocore.session
import pytest

from asyncjobs.validation import Issue, _pattern, format_issues, validate_request

ROLE = "arn:aws:iam::123456789012:role/BatchRole"
KMS_KEY_ID = "arn:aws:kms:us-east-1:123456789012:key/0123abcd-0123-abcd-0123-0123456789ab"
SOLUTION = "arn:aws:personalize:us-east-1:123456789012:solution/my-solution/abcdef12"

BEDROCK: dict[str, Any] = {
    "jobName": "campaign-0001",
    "roleArn": ROLE,
    "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
    "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://my-bucket/in/part-1.jsonl"}},
    "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://my-bucket/out/"}},
}
BEDROCK_FULL: dict[str, Any] = {
    **BEDROCK,
    "clientRequestToken": "3f1c2a9e0b7d4c6f8a1e2d3c4b5a6978",
    "inputDataConfig": {
        "s3InputDataConfig": {
            "s3Uri": "s3://my-bucket/in/part-1.jsonl",
            "s3InputFormat": "JSONL",
            "s3BucketOwner": "123456789012",
        }
    },
    "outputDataConfig": {
        "s3OutputDataConfig": {
            "s3Uri": "s3://my-bucket/out/",
            "s3EncryptionKeyId": KMS_KEY_ID,
            "s3BucketOwner": "123456789012",
        }
    },
    "vpcConfig": {"subnetIds": ["subnet-0123abcd"], "securityGroupIds": ["sg-0123abcd"]},
    "timeoutDurationInHours": 24,
    "tags": [{"key": "team", "value": "search"}, {"key": "cost center", "value": ""}],
}
PERSONALIZE: dict[str, Any] = {
    "jobName": "campaign-0001",
    "solutionVersionArn": SOLUTION,
    "jobInput": {"s3DataSource": {"path": "s3://my-bucket/users/"}},
    "jobOutput": {"s3DataDestination": {"path": "s3://my-bucket/recs/"}},
    "roleArn": ROLE,
}
PERSONALIZE_FULL: dict[str, Any] = {
    **PERSONALIZE,
    "filterArn": "arn:aws:personalize:us-east-1:123456789012:filter/no-seen",
    "numResults": 25,
    "jobInput": {
        "s3DataSource": {
            "path": "s3://my-bucket/users/",
            "kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k1",
        }
    },
    "jobOutput": {
        "s3DataDestination": {
            "path": "s3://my-bucket/recs/",
            "kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k1",
        }
    },
    "batchInferenceJobConfig": {
        "itemExplorationConfig": {"explorationWeight": "0.3", "explorationItemAgeCutOff": "30"}
    },
    "batchInferenceJobMode": "THEME_GENERATION",
    "themeGenerationConfig": {"fieldsForThemeGeneration": {"itemName": "ITEM_NAME"}},
    "tags": [{"tagKey": "team", "tagValue": "search"}, {"tagKey": "équipe", "tagValue": "données 2"}],
}
SEGMENT: dict[str, Any] = {**PERSONALIZE, "numResults": 1000, "filterArn": SOLUTION, "tags": []}

CREATE = {
    "bedrock": ("bedrock", "CreateModelInvocationJob", BEDROCK),
    "personalize": ("personalize", "CreateBatchInferenceJob", PERSONALIZE),
    "segment": ("personalize", "CreateBatchSegmentJob", SEGMENT),
}
DELETE = object()


def changed(request: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """A deep copy of ``request`` with the member at ``path`` (``a.b[1].c``) set, or deleted."""
    result = copy.deepcopy(request)
    parts: list[str | int] = [int(i) if i else n for n, i in re.findall(r"(\w+)|\[(\d+)\]", path)]
    target: Any = result
    for part in parts[:-1]:
        target = target[part]
    if value is DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return result


def issues_of(kind: str, path: str, value: object, base: dict[str, Any] | None = None) -> list[Issue]:
    service, operation, default = CREATE[kind]
    return validate_request(service, operation, changed(base or default, path, value))


# -- valid requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "operation", "request_"),
    [
        ("bedrock", "CreateModelInvocationJob", BEDROCK),
        ("bedrock", "CreateModelInvocationJob", BEDROCK_FULL),
        ("personalize", "CreateBatchInferenceJob", PERSONALIZE),
        ("personalize", "CreateBatchInferenceJob", PERSONALIZE_FULL),
        (
            "personalize",
            "CreateBatchInferenceJob",
            {**PERSONALIZE, "batchInferenceJobMode": "BATCH_INFERENCE"},
        ),
        ("personalize", "CreateBatchSegmentJob", PERSONALIZE),
        ("personalize", "CreateBatchSegmentJob", SEGMENT),
    ],
    ids=[
        "bedrock",
        "bedrock-full",
        "personalize",
        "personalize-full",
        "personalize-mode",
        "segment",
        "segment-full",
    ],
)
def test_valid_create_requests_pass(service: str, operation: str, request_: dict[str, Any]) -> None:
    assert validate_request(service, operation, request_) == []


@pytest.mark.parametrize(
    "model_id",
    [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "amazon.nova-lite-v1:0",
        "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
        "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.titan-text-express-v1:0:8k/abcdefghijkl",
        "my-profile_1",
    ],
)
def test_model_id_forms_pass(model_id: str) -> None:
    assert issues_of("bedrock", "modelId", model_id) == []


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        1700000000,
        1700000000.5,
        "2024-01-02T03:04:05Z",
        "2024-01-02",
    ],
)
def test_timestamps_accept_datetime_epoch_and_iso(value: object) -> None:
    assert validate_request("bedrock", "ListModelInvocationJobs", {"submitTimeAfter": value}) == []


# -- invalid create requests: the exact member and constraint ------------------------------------

LONG_ARN = "arn:aws:personalize:us-east-1:123456789012:solution/" + "s" * 250

INVALID = [
    # Bedrock
    ("bedrock", "jobName", "bad name!", "jobName", "pattern"),
    ("bedrock", "jobName", "-leading-dash", "jobName", "pattern"),
    ("bedrock", "jobName", "a" * 64, "jobName", "max"),
    ("bedrock", "jobName", "", "jobName", "min"),
    ("bedrock", "jobName", None, "jobName", "type"),
    ("bedrock", "jobName", DELETE, "jobName", "required"),
    ("bedrock", "roleArn", "arn:aws:iam::12345:role/x", "roleArn", "pattern"),
    ("bedrock", "roleArn", "not-an-arn", "roleArn", "pattern"),
    ("bedrock", "roleArn", DELETE, "roleArn", "required"),
    ("bedrock", "modelId", "not a model", "modelId", "pattern"),
    ("bedrock", "modelId", "arn:aws:bedrock:us-east-1:123456789012:foo/bar", "modelId", "pattern"),
    ("bedrock", "modelId", "", "modelId", "min"),
    ("bedrock", "clientRequestToken", "bad token!", "clientRequestToken", "pattern"),
    (
        "bedrock",
        "inputDataConfig.s3InputDataConfig.s3Uri",
        "http://bucket/x",
        "inputDataConfig.s3InputDataConfig.s3Uri",
        "pattern",
    ),
    (
        "bedrock",
        "inputDataConfig.s3InputDataConfig.s3Uri",
        "s3://UPPER/x",
        "inputDataConfig.s3InputDataConfig.s3Uri",
        "pattern",
    ),
    (
        "bedrock",
        "inputDataConfig.s3InputDataConfig.s3Uri",
        DELETE,
        "inputDataConfig.s3InputDataConfig.s3Uri",
        "required",
    ),
    (
        "bedrock",
        "inputDataConfig.s3InputDataConfig.s3BucketOwner",
        "1234",
        "inputDataConfig.s3InputDataConfig.s3BucketOwner",
        "pattern",
    ),
    (
        "bedrock",
        "outputDataConfig.s3OutputDataConfig.s3Uri",
        "s3://b",
        "outputDataConfig.s3OutputDataConfig.s3Uri",
        "pattern",
    ),
    (
        "bedrock",
        "outputDataConfig.s3OutputDataConfig.s3EncryptionKeyId",
        "",
        "outputDataConfig.s3OutputDataConfig.s3EncryptionKeyId",
        "min",
    ),
    (
        "bedrock",
        "outputDataConfig.s3OutputDataConfig.s3EncryptionKeyId",
        "key!",
        "outputDataConfig.s3OutputDataConfig.s3EncryptionKeyId",
        "pattern",
    ),
    ("bedrock", "vpcConfig", {"subnetIds": [], "securityGroupIds": ["sg-1"]}, "vpcConfig.subnetIds", "min"),
    (
        "bedrock",
        "vpcConfig",
        {"subnetIds": ["s"] * 17, "securityGroupIds": ["sg-1"]},
        "vpcConfig.subnetIds",
        "max",
    ),
    (
        "bedrock",
        "vpcConfig",
        {"subnetIds": ["s", "bad id!"], "securityGroupIds": ["sg"]},
        "vpcConfig.subnetIds[1]",
        "pattern",
    ),
    (
        "bedrock",
        "vpcConfig",
        {"subnetIds": ["s"], "securityGroupIds": ["g" * 33]},
        "vpcConfig.securityGroupIds[0]",
        "max",
    ),
    ("bedrock", "vpcConfig", {"subnetIds": ["s"]}, "vpcConfig.securityGroupIds", "required"),
    ("bedrock", "timeoutDurationInHours", 23, "timeoutDurationInHours", "min"),
    ("bedrock", "timeoutDurationInHours", 169, "timeoutDurationInHours", "max"),
    ("bedrock", "timeoutDurationInHours", "72", "timeoutDurationInHours", "type"),
    ("bedrock", "timeoutDurationInHours", 72.0, "timeoutDurationInHours", "type"),
    ("bedrock", "timeoutDurationInHours", True, "timeoutDurationInHours", "type"),
    ("bedrock", "tags", [{"key": "k", "value": "v"}] * 201, "tags", "max"),
    ("bedrock", "tags", {"key": "k", "value": "v"}, "tags", "type"),
    ("bedrock", "tags", [{"key": "k", "value": "v"}, {"key": "", "value": "v"}], "tags[1].key", "min"),
    (
        "bedrock",
        "tags",
        [{"key": "k", "value": "v"}, {"key": "k", "value": "a|b"}],
        "tags[1].value",
        "pattern",
    ),
    ("bedrock", "tags", [{"key": "k"}], "tags[0].value", "required"),
    ("bedrock", "tags", [{"key": "k", "value": "v", "Key": "x"}], "tags[0].Key", "unknown"),
    ("bedrock", "modelInvocationType", "Converse", "modelInvocationType", "unknown"),
    # Personalize batch inference
    ("personalize", "jobName", "-bad", "jobName", "pattern"),
    ("personalize", "jobName", "bad.name", "jobName", "pattern"),
    ("personalize", "jobName", "trailing!", "jobName", "pattern"),
    ("personalize", "jobName", "name\n", "jobName", "pattern"),
    ("personalize", "jobName", "a" * 64, "jobName", "max"),
    ("personalize", "solutionVersionArn", "arn:aws:s3:::bucket", "solutionVersionArn", "pattern"),
    ("personalize", "solutionVersionArn", LONG_ARN, "solutionVersionArn", "max"),
    ("personalize", "solutionVersionArn", DELETE, "solutionVersionArn", "required"),
    ("personalize", "filterArn", "filter/no-seen", "filterArn", "pattern"),
    ("personalize", "numResults", -1, "numResults", "min"),
    ("personalize", "numResults", 0, "numResults", "min"),
    ("personalize", "numResults", "25", "numResults", "type"),
    ("personalize", "roleArn", "arn:aws:iam::12345678901:role/x", "roleArn", "pattern"),
    ("personalize", "roleArn", "arn:aws:iam::١٢٣٤٥٦٧٨٩٠١٢:role/x", "roleArn", "pattern"),  # Java \d is ASCII
    ("personalize", "jobInput.s3DataSource.path", "ftp://bucket/x", "jobInput.s3DataSource.path", "pattern"),
    ("personalize", "jobInput.s3DataSource", {}, "jobInput.s3DataSource.path", "required"),
    ("personalize", "jobOutput", {}, "jobOutput.s3DataDestination", "required"),
    (
        "personalize",
        "jobOutput.s3DataDestination.kmsKeyArn",
        "key/1",
        "jobOutput.s3DataDestination.kmsKeyArn",
        "pattern",
    ),
    ("personalize", "batchInferenceJobMode", "THEMES", "batchInferenceJobMode", "enum"),
    ("personalize", "batchInferenceJobMode", "batch_inference", "batchInferenceJobMode", "enum"),
    (
        "personalize",
        "themeGenerationConfig",
        {},
        "themeGenerationConfig.fieldsForThemeGeneration",
        "required",
    ),
    (
        "personalize",
        "themeGenerationConfig",
        {"fieldsForThemeGeneration": {"itemName": "1st"}},
        "themeGenerationConfig.fieldsForThemeGeneration.itemName",
        "pattern",
    ),
    (
        "personalize",
        "batchInferenceJobConfig",
        {"itemExplorationConfig": {str(i): "1" for i in range(101)}},
        "batchInferenceJobConfig.itemExplorationConfig",
        "max",
    ),
    (
        "personalize",
        "batchInferenceJobConfig",
        {"itemExplorationConfig": {"w": "v" * 1001}},
        "batchInferenceJobConfig.itemExplorationConfig.w",
        "max",
    ),
    (
        "personalize",
        "batchInferenceJobConfig",
        {"itemExplorationConfig": {"w": 0.3}},
        "batchInferenceJobConfig.itemExplorationConfig.w",
        "type",
    ),
    (
        "personalize",
        "batchInferenceJobConfig",
        {"rankingInfluence": {"POPULARITY": 0.5}},
        "batchInferenceJobConfig.rankingInfluence",
        "unknown",
    ),
    (
        "personalize",
        "tags",
        [{"tagKey": "a", "tagValue": "b"}, {"tagKey": "", "tagValue": "b"}],
        "tags[1].tagKey",
        "min",
    ),
    ("personalize", "tags", [{"tagKey": "a|b", "tagValue": "b"}], "tags[0].tagKey", "pattern"),
    ("personalize", "tags", [{"key": "a", "value": "b"}], "tags[0].key", "unknown"),
    # Personalize batch segment
    ("segment", "numResults", -5, "numResults", "min"),
    ("segment", "batchInferenceJobConfig", {}, "batchInferenceJobConfig", "unknown"),
    ("segment", "batchInferenceJobMode", "BATCH_INFERENCE", "batchInferenceJobMode", "unknown"),
    ("segment", "jobName", "x" * 64, "jobName", "max"),
    ("segment", "roleArn", DELETE, "roleArn", "required"),
]


@pytest.mark.parametrize(("kind", "member", "value", "path", "constraint"), INVALID)
def test_invalid_member_is_reported_at_its_exact_path(
    kind: str, member: str, value: object, path: str, constraint: str
) -> None:
    issues = issues_of(kind, member, value)
    assert issues, "expected an issue"
    assert (issues[0].path, issues[0].constraint) == (path, constraint), issues


def test_a_member_breaking_two_constraints_gets_two_issues() -> None:
    issues = issues_of("bedrock", "jobName", "")
    assert [i.constraint for i in issues] == ["min", "pattern"]


def test_issues_follow_request_order_then_missing_members() -> None:
    request = {"timeoutDurationInHours": 1, "jobName": "bad name", "surprise": 1}
    issues = validate_request("bedrock", "CreateModelInvocationJob", request)
    assert [(i.path, i.constraint) for i in issues] == [
        ("timeoutDurationInHours", "min"),
        ("jobName", "pattern"),
        ("surprise", "unknown"),
        ("roleArn", "required"),
        ("modelId", "required"),
        ("inputDataConfig", "required"),
        ("outputDataConfig", "required"),
    ]


def test_map_key_issue_names_the_key() -> None:
    key = "k" * 257
    issues = issues_of("personalize", "batchInferenceJobConfig", {"itemExplorationConfig": {key: "1"}})
    assert [(i.path, i.constraint, i.message) for i in issues] == [
        (f"batchInferenceJobConfig.itemExplorationConfig.{key}", "max", "key must be at most 256 characters")
    ]


def test_unknown_member_suggests_a_close_name() -> None:
    [issue] = validate_request("bedrock", "CreateModelInvocationJob", {**BEDROCK, "jobname": "x"})
    assert issue.message == "is not a member of CreateModelInvocationJob; did you mean 'jobName'?"
    [issue] = validate_request("bedrock", "CreateModelInvocationJob", {**BEDROCK, "zzz": 1})
    assert issue.message == "is not a member of CreateModelInvocationJob"


def test_recently_valid_values_are_remembered_but_never_wrongly() -> None:
    # Each string member remembers recent valid values; invalid ones are checked every time.
    for n in range(1000):
        assert issues_of("bedrock", "jobName", f"job-{n}") == []
        assert issues_of("bedrock", "jobName", "job-1") == []
        assert [i.constraint for i in issues_of("bedrock", "jobName", "bad name")] == ["pattern"]
    assert [i.path for i in issues_of("bedrock", "roleArn", "job-1")] == ["roleArn"]


def test_personalize_tag_pattern_accepts_unicode_letters() -> None:
    tags = [{"tagKey": "équipe", "tagValue": "東京 ٣"}]
    assert issues_of("personalize", "tags", tags) == []


def test_catastrophic_job_name_is_rejected_quickly() -> None:
    # The model's pattern backtracks for seconds on this; the linear equivalent does not.
    [issue] = issues_of("bedrock", "jobName", "a" + "-" * 60 + "!")
    assert issue.constraint == "pattern"
    assert issue.message == r"must match the pattern [a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}"


# -- enums and unions -----------------------------------------------------------------------------

STATUSES = ["Submitted", "InProgress", "Completed", "Failed", "Stopping", "Stopped"]
STATUSES += ["PartiallyCompleted", "Expired", "Validating", "Scheduled"]
ENUMS = [
    (
        "bedrock",
        "CreateModelInvocationJob",
        BEDROCK,
        "inputDataConfig.s3InputDataConfig.s3InputFormat",
        ["JSONL"],
    ),
    (
        "personalize",
        "CreateBatchInferenceJob",
        PERSONALIZE,
        "batchInferenceJobMode",
        ["BATCH_INFERENCE", "THEME_GENERATION"],
    ),
    ("bedrock", "ListModelInvocationJobs", {}, "statusEquals", STATUSES),
    ("bedrock", "ListModelInvocationJobs", {}, "sortBy", ["CreationTime"]),
    ("bedrock", "ListModelInvocationJobs", {}, "sortOrder", ["Ascending", "Descending"]),
]


@pytest.mark.parametrize(("service", "operation", "base", "path", "values"), ENUMS)
def test_enum_accepts_exactly_its_values(
    service: str, operation: str, base: dict[str, Any], path: str, values: list[str]
) -> None:
    for value in values:
        assert validate_request(service, operation, changed(base, path, value)) == []
    for value in ["", values[0].lower(), values[0] + "x"]:
        [issue] = validate_request(service, operation, changed(base, path, value))
        assert (issue.path, issue.constraint) == (path, "enum")
        assert issue.message == f"must be one of: {', '.join(values)}"


@pytest.mark.parametrize("member", ["inputDataConfig", "outputDataConfig"])
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("keep", []),
        ("empty", [("union", "", "got none")]),
        ("add-unknown", [("unknown", ".other", "is not a member")]),
        ("only-unknown", [("unknown", ".other", "is not a member"), ("union", "", "got none")]),
    ],
)
def test_union_needs_exactly_one_member(
    member: str, change: str, expected: list[tuple[str, str, str]]
) -> None:
    union = copy.deepcopy(BEDROCK[member])
    if change in ("empty", "only-unknown"):
        union = {}
    if change in ("add-unknown", "only-unknown"):
        union["other"] = {"s3Uri": "s3://b/x"}
    issues = validate_request("bedrock", "CreateModelInvocationJob", {**BEDROCK, member: union})
    assert [(i.constraint, i.path) for i in issues] == [(c, member + p) for c, p, _ in expected]
    for issue, (_, _, text) in zip(issues, expected, strict=True):
        assert text in issue.message


# -- other operations -----------------------------------------------------------------------------

ARN_ID = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghijkl"


@pytest.mark.parametrize(
    ("service", "operation", "params", "expected"),
    [
        ("bedrock", "ListModelInvocationJobs", {"maxResults": 1000}, []),
        ("bedrock", "ListModelInvocationJobs", {"maxResults": 1001}, [("maxResults", "max")]),
        ("bedrock", "ListModelInvocationJobs", {"maxResults": 0}, [("maxResults", "min")]),
        ("bedrock", "ListModelInvocationJobs", {"nameContains": "camp-"}, []),
        ("bedrock", "ListModelInvocationJobs", {"nameContains": "a b"}, [("nameContains", "pattern")]),
        (
            "bedrock",
            "ListModelInvocationJobs",
            {"submitTimeAfter": "yesterday"},
            [("submitTimeAfter", "type")],
        ),
        ("bedrock", "ListModelInvocationJobs", {"submitTimeAfter": True}, [("submitTimeAfter", "type")]),
        ("bedrock", "ListModelInvocationJobs", {"nextToken": "has space"}, [("nextToken", "pattern")]),
        ("bedrock", "GetModelInvocationJob", {"jobIdentifier": "abcdefghijkl"}, []),
        ("bedrock", "GetModelInvocationJob", {"jobIdentifier": ARN_ID}, []),
        (
            "bedrock",
            "GetModelInvocationJob",
            {"jobIdentifier": "abcdefghijk"},
            [("jobIdentifier", "pattern")],
        ),
        (
            "bedrock",
            "GetModelInvocationJob",
            {"jobIdentifier": "ABCDEFGHIJKL"},
            [("jobIdentifier", "pattern")],
        ),
        ("bedrock", "GetModelInvocationJob", {"jobIdentifier": ARN_ID + "x"}, [("jobIdentifier", "pattern")]),
        ("bedrock", "GetModelInvocationJob", {}, [("jobIdentifier", "required")]),
        ("bedrock", "StopModelInvocationJob", {"jobIdentifier": ARN_ID}, []),
        ("personalize", "ListBatchInferenceJobs", {"maxResults": 100}, []),
        ("personalize", "ListBatchInferenceJobs", {"maxResults": 101}, [("maxResults", "max")]),
        ("personalize", "ListBatchInferenceJobs", {"nextToken": "naïve"}, [("nextToken", "pattern")]),
        ("personalize", "DescribeBatchSegmentJob", {"batchSegmentJobArn": SOLUTION}, []),
        (
            "personalize",
            "DescribeBatchInferenceJob",
            {"batchInferenceJobArn": "job"},
            [("batchInferenceJobArn", "pattern")],
        ),
    ],
)
def test_other_operations(
    service: str, operation: str, params: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert [(i.path, i.constraint) for i in validate_request(service, operation, params)] == expected


def test_unknown_service_or_operation_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown service"):
        validate_request("nosuchservice", "CreateThing", {})
    with pytest.raises(ValueError, match="unknown operation"):
        validate_request("bedrock", "CreateThing", {})


# -- AWS-style messages ---------------------------------------------------------------------------


def test_aws_messages() -> None:
    issues = validate_request("bedrock", "CreateModelInvocationJob", changed(BEDROCK, "roleArn", DELETE))
    assert [i.aws_message() for i in issues] == [
        "Value null at 'roleArn' failed to satisfy constraint: Member must not be null"
    ]
    request = {**BEDROCK, "jobName": "bad name", "timeoutDurationInHours": 200}
    issues = validate_request("bedrock", "CreateModelInvocationJob", request)
    assert format_issues(issues) == (
        "2 validation errors detected: "
        "Value 'bad name' at 'jobName' failed to satisfy constraint: Member must satisfy regular expression "
        r"pattern: [a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}; "
        "Value 200 at 'timeoutDurationInHours' failed to satisfy constraint: "
        "Member must have value less than or equal to 168"
    )
    assert format_issues(issues[:1]).startswith("1 validation error detected: Value 'bad name' at 'jobName'")
    assert format_issues([]) == ""


@pytest.mark.parametrize(
    ("request_", "message", "aws"),
    [
        (
            {"jobName": "a" * 64},
            "must be at most 63 characters",
            "Member must have length less than or equal to 63",
        ),
        (
            {"timeoutDurationInHours": 23},
            "must be between 24 and 168",
            "Member must have value greater than or equal to 24",
        ),
        (
            {"inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://bbb/x", "s3InputFormat": "CSV"}}},
            "must be one of: JSONL",
            "Member must satisfy enum value set: [JSONL]",
        ),
        (
            {"timeoutDurationInHours": "x"},
            "must be an integer, not string",
            "Member must be an integer, not string",
        ),
        (
            {"tags": [{"key": "k", "value": "v"}] * 201},
            "must have at most 200 items",
            "Member must have length less than or equal to 200",
        ),
    ],
)
def test_messages(request_: dict[str, Any], message: str, aws: str) -> None:
    [issue] = validate_request("bedrock", "CreateModelInvocationJob", {**BEDROCK, **request_})
    assert issue.message == message
    assert issue.aws_message().endswith(f"failed to satisfy constraint: {aws}")


def test_long_values_are_cut_short_in_aws_messages() -> None:
    [issue] = issues_of("bedrock", "jobName", "a" * 5000)
    assert len(issue.aws_message()) < 400
    assert issue.value == "a" * 5000


# -- the patterns themselves ----------------------------------------------------------------------

BATCH_OPERATIONS = {
    "bedrock": [
        "CreateModelInvocationJob",
        "GetModelInvocationJob",
        "ListModelInvocationJobs",
        "StopModelInvocationJob",
    ],
    "personalize": [
        "CreateBatchInferenceJob",
        "CreateBatchSegmentJob",
        "DescribeBatchInferenceJob",
        "DescribeBatchSegmentJob",
        "ListBatchInferenceJobs",
        "ListBatchSegmentJobs",
    ],
}


def _patterns() -> list[tuple[str, int]]:
    found: dict[str, int] = {}
    session = botocore.session.get_session()
    for service, operations in BATCH_OPERATIONS.items():
        model = session.get_service_model(service)
        pending = [model.operation_model(op).input_shape for op in operations]
        seen: set[str] = set()
        while pending:
            shape = pending.pop()
            if shape is None or shape.name in seen:
                continue
            seen.add(shape.name)
            if "pattern" in shape.metadata:
                found[shape.metadata["pattern"]] = shape.metadata.get("max", 300)
            pending.extend(getattr(shape, "members", {}).values())
            pending.extend(
                s
                for s in (
                    getattr(shape, "member", None),
                    getattr(shape, "key", None),
                    getattr(shape, "value", None),
                )
                if s
            )
    return sorted(found.items())


@pytest.mark.parametrize(("pattern", "max_length"), _patterns())
def test_patterns_do_not_backtrack_catastrophically(pattern: str, max_length: int) -> None:
    # A guard against hangs in the emulator, not a timing benchmark: a catastrophic
    # pattern takes seconds to minutes on these probes; a sound one, microseconds.
    compiled = _pattern(pattern)
    length = min(max_length, 300)
    for a in "a0-.:/_ ":
        for b in "a0-.:/_ ":
            for probe in (a + b * (length - 2) + "!", (a + b) * (length // 2 - 1) + "!"):
                compiled.fullmatch(probe, timeout=2.0)


# -- integer ranges -------------------------------------------------------------------------------
# Smithy's ``integer`` is a signed 32-bit value and ``long`` a signed 64-bit one; where the model
# gives no min/max, the type's range applies (AWS could not read more, nor the journal store it).

INT32_MAX = 2147483647
INT64_MIN, INT64_MAX = -9223372036854775808, 9223372036854775807


@pytest.mark.parametrize("kind", ["personalize", "segment"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (10**30, "must be at most 2147483647 (a 32-bit integer)"),
        (2**63, "must be at most 2147483647 (a 32-bit integer)"),
        (INT32_MAX + 1, "must be at most 2147483647 (a 32-bit integer)"),
        (-(10**30), "must be at least 1"),  # the documented minimum comes first
    ],
)
def test_an_integer_member_is_a_32_bit_integer(kind: str, value: int, message: str) -> None:
    [issue] = issues_of(kind, "numResults", value)
    assert (issue.path, issue.message, issue.value) == ("numResults", message, value)
    assert issue.constraint == ("max" if value > 0 else "min")


def test_an_integer_member_accepts_the_largest_32_bit_integer() -> None:
    assert issues_of("personalize", "numResults", INT32_MAX) == []


def test_a_model_bound_still_applies_to_a_huge_integer() -> None:
    [issue] = issues_of("bedrock", "timeoutDurationInHours", 10**30)
    assert (issue.constraint, issue.message) == ("max", "must be between 24 and 168")


def test_the_32_bit_bound_in_aws_words() -> None:
    [issue] = issues_of("personalize", "numResults", 2**31)
    assert issue.aws_message() == (
        "Value 2147483648 at 'numResults' failed to satisfy constraint: "
        "Member must have value less than or equal to 2147483647"
    )


def _compile(shapes: dict[str, Any]) -> Any:
    """A check compiled from a made-up model fragment (the create calls have no ``long`` member)."""
    from botocore.model import ShapeResolver

    from asyncjobs.validation import _Compiler

    return _Compiler({}).compile(ShapeResolver(shapes).get_shape_by_name("Input"), "", "Input")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (INT64_MAX, None),
        (INT64_MIN, None),
        (INT64_MAX + 1, "must be at most 9223372036854775807 (a 64-bit integer)"),
        (INT64_MIN - 1, "must be at least -9223372036854775808 (a 64-bit integer)"),
        (10**30, "must be at most 9223372036854775807 (a 64-bit integer)"),
    ],
)
def test_a_long_member_is_a_64_bit_integer(value: int, message: str | None) -> None:
    check = _compile(
        {
            "Input": {"type": "structure", "members": {"items": {"shape": "Items"}}},
            "Items": {"type": "list", "member": {"shape": "Count"}},
            "Count": {"type": "long"},
        }
    )
    issues: list[Issue] = []
    check({"items": [1, value]}, "", issues)
    assert [(i.path, i.message) for i in issues] == ([] if message is None else [("items[1]", message)])


def test_a_long_member_keeps_the_model_bounds_it_has() -> None:
    check = _compile(
        {
            "Input": {"type": "structure", "members": {"n": {"shape": "N"}}},
            "N": {"type": "long", "min": 0},
        }
    )
    issues: list[Issue] = []
    check({"n": -1}, "", issues)
    check({"n": 2**64}, "", issues)
    assert [i.message for i in issues] == [
        "must be at least 0",
        "must be at most 9223372036854775807 (a 64-bit integer)",
    ]

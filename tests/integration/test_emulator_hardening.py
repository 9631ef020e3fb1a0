"""The control routes and request parsing under hostile input: browsers, bad settings, deep JSON.

A web page in a browser on the same machine can send a "simple" cross-origin POST
(``Content-Type: text/plain``, no preflight) to the emulator's port. The state-changing
``/_emulator/*`` routes therefore take only ``application/json`` and refuse a foreign
``Origin``. Every setting is type-checked, and no request body can nest deep enough to
exhaust the parser's recursion.
"""

from __future__ import annotations

import json
import math
from typing import Any

import aiohttp
import pytest

from asyncjobs.emulator import Emulator, EmulatorConfig
from tests.conftest import MakeEmulator, aws_client, bedrock_job

SIGNED = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/bedrock/aws4_request"}
CREATE_INFERENCE = {**SIGNED, "X-Amz-Target": "AmazonPersonalize.CreateBatchInferenceJob"}
#: The nesting the emulator accepts in a request body (its documented limit).
MAX_DEPTH = 64


async def _send(
    method: str, url: str, *, data: bytes | str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """A raw request (no client library in between); the body parsed as JSON if it is JSON."""
    async with aiohttp.ClientSession() as http, http.request(method, url, data=data, headers=headers) as r:
        text = await r.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        return r.status, dict(r.headers), body


async def _post_json(url: str, body: Any, **headers: str) -> tuple[int, Any]:
    status, _, answer = await _send(
        "POST", url, data=json.dumps(body), headers={"Content-Type": "application/json", **headers}
    )
    return status, answer


async def _config(emu: Emulator) -> Any:
    return (await _send("GET", f"{emu.url}/_emulator/config"))[2]


# -- the state-changing control routes: JSON only, and no foreign origin


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_control_routes_take_only_json(make_emulator: MakeEmulator, content_type: str | None) -> None:
    emu = await make_emulator()
    async with aws_client("bedrock", emu.url) as client:
        await client.create_model_invocation_job(**bedrock_job())
    before = await _config(emu)
    headers = {} if content_type is None else {"Content-Type": content_type}
    status, _, error = await _send(
        "POST", f"{emu.url}/_emulator/config", data='{"fail_rate": 1}', headers=headers
    )
    assert status == 415
    assert "application/json" in error["message"]
    status, _, error = await _send("POST", f"{emu.url}/_emulator/reset", data="{}", headers=headers)
    assert status == 415
    assert await _config(emu) == before
    assert len(emu.jobs()) == 1  # not reset


async def test_json_with_a_charset_is_json(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    status, _, config = await _send(
        "POST",
        f"{emu.url}/_emulator/config",
        data='{"seed": 9}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert (status, config["seed"]) == (200, 9)


async def test_reset_takes_no_body_or_an_empty_object(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    url = f"{emu.url}/_emulator/reset"
    json_type = {"Content-Type": "application/json"}
    async with aws_client("bedrock", emu.url) as client:
        await client.create_model_invocation_job(**bedrock_job())
        for body in ("[]", '{"everything": true}', "not json", "null"):
            status, _, error = await _send("POST", url, data=body, headers=json_type)
            assert status == 400, body
            assert error["message"]
        assert len(emu.jobs()) == 1
        assert (await _send("POST", url, headers=json_type))[0] == 200
        assert emu.jobs() == []
        await client.create_model_invocation_job(**bedrock_job())
        assert await _post_json(url, {}) == (200, {"reset": True})
        assert emu.jobs() == []


async def test_a_foreign_origin_is_refused(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    port = emu.url.rsplit(":", 1)[1]
    before = await _config(emu)
    foreign = [
        "http://evil.example",
        f"http://evil.example:{port}",  # a DNS-rebinding page names its own host
        "null",  # sandboxed frames and file:// pages
        f"https://127.0.0.1:{port}",
        f"http://127.0.0.1:{int(port) + 1}",
        f"http://127.0.0.2:{port}",
    ]
    for origin in foreign:
        status, error = await _post_json(f"{emu.url}/_emulator/config", {"fail_rate": 1}, Origin=origin)
        assert status == 403, origin
        assert "origin" in error["message"].lower()
        status, _ = await _post_json(f"{emu.url}/_emulator/reset", {}, Origin=origin)
        assert status == 403, origin
    assert await _config(emu) == before


async def test_the_emulators_own_origin_is_allowed(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    port = emu.url.rsplit(":", 1)[1]
    own = [emu.url, f"http://localhost:{port}", f"http://LOCALHOST:{port}", f"http://[::1]:{port}"]
    for seed, origin in enumerate(own, start=1):
        status, config = await _post_json(f"{emu.url}/_emulator/config", {"seed": seed}, Origin=origin)
        assert (status, config["seed"]) == (200, seed), origin
    assert (await _post_json(f"{emu.url}/_emulator/reset", {}, Origin=emu.url))[0] == 200


async def test_a_browsers_simple_cross_origin_post_cannot_reconfigure(make_emulator: MakeEmulator) -> None:
    """What ``fetch(url, {method: "POST", mode: "no-cors", body})`` sends from another site."""
    emu = await make_emulator()
    before = await _config(emu)
    page = {"Origin": "http://attacker.example", "Content-Type": "text/plain;charset=UTF-8"}
    status, _, _ = await _send(
        "POST", f"{emu.url}/_emulator/config", data='{"auth_fault": "access-denied"}', headers=page
    )
    assert status == 403
    assert (await _send("POST", f"{emu.url}/_emulator/reset", data="{}", headers=page))[0] == 403
    assert await _config(emu) == before
    # a no-cors page cannot set any other Content-Type; without an Origin, text/plain is refused too
    status, _, _ = await _send(
        "POST",
        f"{emu.url}/_emulator/config",
        data='{"auth_fault": "access-denied"}',
        headers={"Content-Type": "text/plain"},
    )
    assert status == 415
    assert await _config(emu) == before


# -- every setting is type- and range-checked

NAN, INF = math.nan, math.inf
_RATE = ["fast", True, -1, [1], INF]
_PROBABILITY = [1.5, -0.1, True, "0.1", None, NAN]
_PAIR = [[1], [2, 1], ["a", "b"], [True, True], [-1, 1], [0, 1e9], "1,2", None, [1, 2, 3], [0, INF]]
_COUNT = [0, 2.5, True, "3", None]
_STATUS = [5, "", None, ["CREATE PENDING"]]

#: For every setting, values it must refuse (with a 400 that names it).
BAD_VALUES: dict[str, list[Any]] = {
    "seed": ["abc", True, 1.5, None, [1]],
    "region": [5, "", "Not A Region", None],
    "account_id": [123456789012, "12345", None, "12345678901a"],
    "create_rate": _RATE,
    "get_rate": _RATE,
    "list_rate": _RATE,
    "bedrock_max_running": _COUNT,
    "personalize_max_running": _COUNT,
    "job_seconds": _PAIR,
    "bedrock_phase_seconds": _PAIR,
    "personalize_pending_seconds": _PAIR,
    "stop_seconds": [-1, "1", True, 1e9, None, NAN],
    "time_scale": [0, -1, "x", True, 1e6, None, NAN, INF],
    "fail_rate": _PROBABILITY,
    "partial_rate": _PROBABILITY,
    "expire_rate": _PROBABILITY,
    "error_rate": _PROBABILITY,
    "drop_rate": _PROBABILITY,
    "bedrock_default_timeout_hours": [23, 169, 24.5, True, None, "48"],
    "personalize_pending_status": _STATUS,
    "personalize_running_status": _STATUS,
    "bedrock_token_mismatch": [["original"], "nope", None, 1],
    "latency": [[1e9, 1e9], [0, 61], [-1, 0], [True, False], "0,1", [NAN, NAN], [1, 0]],
    "auth_fault": ["nope", 1, True, ["access-denied"]],
    "auth_fault_after": [-1, True, 1.5, None, "2"],
    "limit_message": [5, ["x"], "x" * 3000, True],
    "list_lag": [-1, "1", True, 1e9, None, NAN, INF],
    "bedrock_min_records": _COUNT,
    "bedrock_max_records": [*_COUNT, 99],
    "record_error_rate": _PROBABILITY,
    "record_errors_status": ["Failed", None, 1, ["Completed"]],
    "output_order": ["random", None, 1, ["input"]],
}


async def test_every_setting_has_bad_values_listed(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    assert set(await _config(emu)) == set(BAD_VALUES)


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
async def test_a_bad_value_is_a_400_naming_the_setting(make_emulator: MakeEmulator, name: str) -> None:
    emu = await make_emulator()
    before = await _config(emu)
    for value in BAD_VALUES[name]:
        status, error = await _post_json(f"{emu.url}/_emulator/config", {name: value})
        assert status == 400, (name, value)
        assert name in error["message"], (name, value, error)
        with pytest.raises(ValueError, match=name):
            emu.configure(**{name: value})
    assert await _config(emu) == before


async def test_sane_values_at_the_caps_are_accepted(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    settings = {
        "latency": [0, 60],
        "job_seconds": [0, 7 * 24 * 3600],
        "stop_seconds": 3600,
        "time_scale": 100,
        "list_lag": 3600,
        "limit_message": "x" * 2048,
        "seed": 2**64,
        "create_rate": None,
    }
    status, config = await _post_json(f"{emu.url}/_emulator/config", settings)
    assert status == 200, config
    assert {name: config[name] for name in settings} == settings


def test_the_python_api_checks_types_too() -> None:
    with pytest.raises(ValueError, match="seed"):
        EmulatorConfig(seed="abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latency"):
        EmulatorConfig(latency=(1e9, 1e9))
    with pytest.raises(ValueError, match="fail_rate"):
        EmulatorConfig(fail_rate=True)


# -- request bodies nested deeper than any request needs


@pytest.mark.parametrize("body", ["[" * 100_000, "[" * 100 + "]" * 100, '{"a":' * 1000 + "1" + "}" * 1000])
async def test_a_deeply_nested_body_is_a_400_in_each_services_shape(
    make_emulator: MakeEmulator, body: str
) -> None:
    emu = await make_emulator()
    status, headers, error = await _send(
        "POST",
        f"{emu.url}/model-invocation-job",
        data=body,
        headers={**SIGNED, "Content-Type": "application/json"},
    )
    assert (status, headers["x-amzn-ErrorType"]) == (400, "ValidationException")
    assert "nest" in error["message"]
    status, headers, error = await _send(
        "POST",
        f"{emu.url}/",
        data=body,
        headers={**CREATE_INFERENCE, "Content-Type": "application/x-amz-json-1.1"},
    )
    assert (status, error["__type"]) == (400, "InvalidInputException")
    assert "nest" in error["message"]
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    for route in ("config", "reset"):
        status, _, error = await _send(
            "POST",
            f"{emu.url}/_emulator/{route}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        assert status == 400, route
        assert "nest" in error["message"]
    assert emu.stats()["jobs_total"] == 0


async def test_nesting_up_to_the_limit_is_parsed(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    # an object holding lists: MAX_DEPTH levels in all, then one more
    at_limit = '{"jobName": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    beyond = '{"jobName": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}"
    for body, says_nesting in ((at_limit, False), (beyond, True)):
        status, _, error = await _send("POST", f"{emu.url}/", data=body, headers=CREATE_INFERENCE)
        assert (status, error["__type"]) == (400, "InvalidInputException")
        assert ("nest" in error["message"]) == says_nesting, error
        assert ("jobName" in error["message"]) != says_nesting, error
    # brackets inside strings are not nesting
    names = json.dumps({"jobName": "[" * 200 + "{" * 200})
    status, _, error = await _send("POST", f"{emu.url}/", data=names, headers=CREATE_INFERENCE)
    assert status == 400 and "nest" not in error["message"], error


async def test_an_integer_too_long_to_read_is_a_serialization_error(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    body = '{"numResults": ' + "9" * 5000 + "}"
    status, _, error = await _send("POST", f"{emu.url}/", data=body, headers=CREATE_INFERENCE)
    assert (status, error["__type"]) == (400, "SerializationException")
    status, _, error = await _send(
        "POST",
        f"{emu.url}/_emulator/config",
        data='{"seed": ' + "9" * 5000 + "}",
        headers={"Content-Type": "application/json"},
    )
    assert status == 400 and error["message"]

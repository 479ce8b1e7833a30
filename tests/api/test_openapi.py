"""GET /openapi.json describes every route, and every test's responses are checked against it."""

from __future__ import annotations

import pytest
from starlette.routing import Route

from hub.web.openapi import openapi_document
from tests.support.hub import RunningHub
from tests.support.openapi import ResponseChecker


async def test_the_document_is_openapi_3_1_and_lists_every_route(hub: RunningHub) -> None:
    r = await hub.client.get("/openapi.json")
    assert r.status_code == 200
    document = r.json()
    assert document["openapi"] == "3.1.0"
    assert hub.app is not None
    routes = {
        (route.path.replace(":path}", "}"), method)
        for route in hub.app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
    }
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    assert {(p, m) for p, m in routes if m != "HEAD"} == documented


async def test_every_operation_documents_its_error_shape(hub: RunningHub) -> None:
    document = (await hub.client.get("/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            refused = operation["responses"]["400"]["content"]["application/json"]["schema"]
            assert refused["required"] == ["err", "description"], (path, method)
            if "security" in operation:
                assert {"401", "403"} <= set(operation["responses"]), (path, method)


async def test_the_answers_of_this_test_were_checked(hub: RunningHub) -> None:
    assert hub.responses is not None
    before = hub.responses.checked
    await hub.create_stream()
    await hub.client.get("/ssf/stream", headers=hub.auth())
    assert (await hub.client.get("/ssf/stream?stream_id=nope", headers=hub.auth())).status_code == 404
    assert hub.responses.checked - before == 3


def test_a_body_that_does_not_fit_the_document_fails_the_test() -> None:
    checker = ResponseChecker(openapi_document("http://hub", "", "/.well-known/ssf-configuration"))
    with pytest.raises(AssertionError, match=r"does not fit /openapi\.json"):
        checker.check(
            "GET", "/ssf/status", 200, "application/json", b'{"stream_id": "s1", "status": "sleeping"}'
        )
    with pytest.raises(AssertionError, match="status 418 is not documented"):
        checker.check("GET", "/ssf/status", 418, "application/json", b"{}")
    with pytest.raises(AssertionError, match=r"not in /openapi\.json"):
        checker.check("GET", "/ssf/secret", 200, "application/json", b"{}")
    checker.check("POST", "/ssf/admin/issuers/https://idp.example.com", 405, "application/json", b"{}")

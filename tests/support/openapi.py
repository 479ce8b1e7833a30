"""Every response a test hub gives is checked against its own /openapi.json (issue 13).

:class:`ResponseChecker` finds the operation for a response (path template, method), checks
that its status is one the document lists, and validates a JSON body against the schema for
that status. ``run_hub`` installs it as an httpx response hook, so every API test doubles as
a check that the document and the code agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import fastjsonschema
import httpx


class ResponseChecker:
    def __init__(self, document: dict[str, Any]) -> None:
        self.operations: list[tuple[re.Pattern[str], str, dict[str, Any]]] = []
        for template, methods in document["paths"].items():
            parts = re.split(r"(\{[^}]+\})", template)  # path parameters may hold "/" (an issuer URL)
            pattern = re.compile("".join(".+" if p.startswith("{") else re.escape(p) for p in parts) + "$")
            for method, operation in methods.items():
                self.operations.append((pattern, method.upper(), operation))
        self._validators: dict[int, Callable[[Any], Any]] = {}
        self.checked = 0

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        for pattern, op_method, operation in self.operations:
            if op_method == method and pattern.match(path):
                return operation
        return None

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        operation = self.operation(method, path)
        if operation is None:
            if status in (404, 405):  # no such route: Starlette's answer, not an operation's
                return
            raise AssertionError(f"{method} {path} answered {status} but is not in /openapi.json")
        response = operation["responses"].get(str(status))
        assert response is not None, f"{method} {path}: status {status} is not documented"
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is None or not content_type.startswith("application/json"):
            return
        validator = self._validators.get(id(schema))
        if validator is None:
            validator = self._validators[id(schema)] = fastjsonschema.compile(schema)
        try:
            validator(json.loads(body))
        except fastjsonschema.JsonSchemaValueException as exc:
            raise AssertionError(
                f"{method} {path} {status}: the body does not fit /openapi.json: {exc}"
            ) from None
        self.checked += 1

    def hook(self, base: str) -> Callable[[httpx.Response], Any]:
        """An httpx response hook checking the answers of the hub at ``base`` (only those)."""
        origin = httpx.URL(base)

        async def on_response(response: httpx.Response) -> None:
            request, content_type = response.request, response.headers.get("content-type", "")
            if (request.url.host, request.url.port) != (origin.host, origin.port):
                return
            await response.aread()
            self.check(request.method, request.url.path, response.status_code, content_type, response.content)

        return on_response

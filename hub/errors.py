"""Exceptions the hub raises, each carrying the status code and wire error it maps to.

    HubError                 err, description, status_code (the one JSON error shape)
    ├── InvalidRequest       400 invalid_request: malformed body, wrong types, bad values
    │   └── InvalidEvent     400 invalid_request: an event's claims do not fit its type
    ├── Unauthorized         401 invalid_token / authentication_failed (with WWW-Authenticate)
    ├── Forbidden            403 access_denied / insufficient_scope
    ├── NotFound             404 not_found (also for a stream owned by someone else)
    ├── Conflict             409 conflict
    ├── PayloadTooLarge      413 payload_too_large
    ├── TooManyRequests      429 too_many_requests (min_verification_interval)
    └── Unavailable          503 temporarily_unavailable (Retry-After)
        └── StoreUnavailable the store is down or full: logged once per outage

Core modules raise these without knowing about HTTP frameworks; the web edge renders
every one of them as ``{"err": ..., "description": ...}`` with ``status_code``.
"""

from __future__ import annotations


class HubError(Exception):
    status_code = 400
    err = "invalid_request"

    def __init__(self, description: str, *, err: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        if err is not None:
            self.err = err

    def as_dict(self) -> dict[str, str]:
        return {"err": self.err, "description": self.description}


class InvalidRequest(HubError):
    status_code = 400
    err = "invalid_request"


class InvalidEvent(InvalidRequest):
    """An event payload or subject that does not fit its definition."""


class Unauthorized(HubError):
    status_code = 401
    err = "invalid_token"

    def __init__(self, description: str, *, err: str | None = None, token_presented: bool = True) -> None:
        super().__init__(description, err=err)
        # RFC 6750 §3.1: no error attribute when the request carried no credentials at all.
        self.token_presented = token_presented

    @property
    def www_authenticate(self) -> str:
        if not self.token_presented:
            return 'Bearer realm="ssf-hub"'
        desc = self.description.replace('"', "'")
        return f'Bearer realm="ssf-hub", error="invalid_token", error_description="{desc}"'


class Forbidden(HubError):
    status_code = 403
    err = "access_denied"


class NotFound(HubError):
    status_code = 404
    err = "not_found"


class Conflict(HubError):
    status_code = 409
    err = "conflict"


class PayloadTooLarge(HubError):
    status_code = 413
    err = "payload_too_large"


class TooManyRequests(HubError):
    status_code = 429
    err = "too_many_requests"

    def __init__(self, description: str, *, retry_after: int = 1) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class Unavailable(HubError):
    status_code = 503
    err = "temporarily_unavailable"

    def __init__(self, description: str, *, retry_after: int = 1) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class StoreUnavailable(Unavailable):
    """The store cannot be reached or written (Redis down, SQLite disk full): an outage."""


class ConfigError(Exception):
    """A setting has a bad value; raised at start-up with a message naming the setting."""

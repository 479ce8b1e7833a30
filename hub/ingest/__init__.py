"""Verified ingest of SETs from trusted upstream issuers (issue #4).

:class:`~hub.ingest.registry.IssuerRegistry` is the trusted-issuer registry (read through from
the store, so changes made by another process take effect within a second);
:class:`~hub.ingest.pipeline.IngestPipeline` accepts one compact SET: verify, read the
dialect, de-duplicate, re-issue one SET per matching stream, all durable before it returns.
``POST /ssf/ingest`` and upstream subscriptions both feed it.
"""

from hub.ingest.pipeline import ControlListener, IngestPipeline, IngestResult
from hub.ingest.registry import IssuerRegistry

__all__ = ["ControlListener", "IngestPipeline", "IngestResult", "IssuerRegistry"]
